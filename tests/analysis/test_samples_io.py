"""Loading samples files: formats, row order, and every kind of bad input."""

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kmc_analysis.samples_io import SampleReader, SamplesFileError, load_straps
from kmc_host.errors import BadInput

HEADER = "time,device,infant_c,outer_c,contact,worn\n"


def write(tmp_path: Path, body: str, header: str = HEADER, name: str = "s.csv") -> Path:
    p = tmp_path / name
    p.write_text(header + body)
    return p


def load(path, **kw):
    return load_straps(path, **kw)


def rows(n, device="A", t0=1_772_400_000, step=1):
    return "".join(f"{t0 + i * step},{device},36.{i % 9},35.0,{i % 2},1\n" for i in range(n))


def test_csv_many_straps_interleaved(tmp_path):
    body = "".join(
        a + b
        for a, b in zip(rows(50, "A").splitlines(True), rows(50, "B").splitlines(True), strict=True)
    )
    report, straps = load(write(tmp_path, body))
    assert sorted(straps) == ["A", "B"]
    assert len(straps["A"]) == 50 and report.kept == 100 and report.repairs == []
    assert straps["A"].contact.tolist()[:4] == [0, 1, 0, 1]
    assert straps["B"].time[0] == 1_772_400_000


def test_iso_times_with_offset_and_unix_are_the_same_instant(tmp_path):
    body = "2026-03-01T21:00:00Z,A,36.5,35,1,1\n2026-03-02T00:00:01+03:00,A,36.5,35,1,1\n1772398802.0,A,36.5,35,1,1\n"
    _, straps = load(write(tmp_path, body))
    assert straps["A"].time.tolist() == [1772398800.0, 1772398801.0, 1772398802.0]


def test_unsorted_rows_are_sorted_and_the_repair_is_stated(tmp_path):
    lines = rows(20).splitlines(True)
    body = "".join(lines[10:] + lines[:10])
    report, straps = load(write(tmp_path, body))
    assert np.all(np.diff(straps["A"].time) > 0)
    assert report.repairs and "sorted" in report.repairs[0] and "strap A" in report.repairs[0]
    assert any("repaired" in line for line in report.lines())


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x-time,A,36.5,35,1,1", "line 4: unparsable time: time 'x-time'"),
        ("2026-03-01T21:00:00,A,36.5,35,1,1", "line 4: unparsable time"),
        ("1772400999,A,51.2,35,1,1", "line 4: temperature outside 10-45 C: infant_c '51.2'"),
        ("1772400999,A,36.5,9.0,1,1", "line 4: temperature outside 10-45 C: outer_c '9.0'"),
        ("1772400999,A,warm,35,1,1", "line 4: unparsable number: infant_c 'warm'"),
        ("1772400999,A,36.5,35,2,1", "line 4: flag not 0/1: contact '2'"),
        ("1772400999,A,36.5,35,1,yes", "line 4: flag not 0/1: worn 'yes'"),
        ("1772400999,A,36.5,35,,1", "line 4: missing value: contact is empty"),
        (",A,36.5,35,1,1", "line 4: missing value: time is empty"),
        ("1772400999,,36.5,35,1,1", "line 4: missing value: device is empty"),
        ("946684800,A,36.5,35,1,1", "line 4: time before 2015"),
        ("1772400999,A,36.5,35,1", "line 4: malformed CSV"),
    ],
)
def test_bad_values_name_file_line_and_problem(tmp_path, line, expected):
    path = write(tmp_path, rows(2) + line + "\n" + rows(2, t0=1_772_500_000))
    with pytest.raises(SamplesFileError) as err:
        load(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)
    # the typed parse stopped and the checking parse named it: the same words as its own
    with pytest.raises(SamplesFileError) as checking:
        SampleReader(path, typed=False).consume(list)
    assert str(err.value) == str(checking.value)


def _read(path, **kw):
    reader = SampleReader(path, **kw)
    chunks = reader.consume(list)
    return reader, chunks


@pytest.mark.parametrize("name", ["s.csv", "s.csv.gz"])
def test_a_clean_csv_is_read_typed_and_equal_to_the_checking_parse(tmp_path, name):
    """ISO times with offsets, strap ids with spaces, empty readings, optional columns left
    unconverted: the typed parse takes it all (it does not fall back) and gives the same
    chunks and report as the checking parse."""
    header = "time,device,infant_c,outer_c,contact,worn,seq,battery_v,contact_raw\n"
    body = "".join(
        f"2026-03-01T{10 + i // 60:02d}:{i % 60:02d}:00+01:00, A ,36.{i % 9},35,{i % 2},1,{i},3.9,x\n"
        for i in range(120)
    ) + "".join(f"2026-03-02T00:00:0{i}Z,B,,35.5,1,0,,,\n" for i in range(5))
    path = tmp_path / name
    data = (header + body).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    typed, chunks = _read(path)
    assert typed.typed  # no fall back
    checking, expected = _read(path, typed=False)
    assert typed.report.lines() == checking.report.lines()
    assert [d for d, _ in chunks] == [d for d, _ in expected] == ["A", "B"]
    for (_, got), (_, want) in zip(chunks, expected, strict=True):
        for col in ("time", "infant_c", "outer_c", "contact", "worn", "battery_v"):
            np.testing.assert_array_equal(getattr(got, col), getattr(want, col))


def test_unix_times_are_read_typed(tmp_path):
    typed, chunks = _read(write(tmp_path, rows(5) + rows(3, "B")))
    assert typed.typed and [len(c) for _, c in chunks] == [5, 3]


def test_skip_invalid_falls_back_to_the_checking_parse_with_its_counts(tmp_path):
    body = (
        rows(3) + "1772401000,A,99,35,1,1\n" + "1772401001,A,36,35,0x1,1\n" + rows(2, t0=1772402000)
    )
    typed, chunks = _read(write(tmp_path, body), skip_invalid=True)
    assert not typed.typed  # the bad rows sent it to the checking parse
    assert typed.report.skipped == {"temperature outside 10-45 C": 1, "flag not 0/1": 1}
    assert sum(len(c) for _, c in chunks) == 5


def test_duplicate_device_time_names_both_lines(tmp_path):
    body = rows(3) + "1772400001,A,36.1,35,1,1\n"
    with pytest.raises(
        SamplesFileError, match=r"line 5: duplicate \(device, time\): strap A .* already on line 3"
    ):
        load(write(tmp_path, body))


def test_same_time_on_two_straps_is_fine(tmp_path):
    _, straps = load(write(tmp_path, rows(3, "A") + rows(3, "B")))
    assert len(straps) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("time,device,infant_c,outer_c,contact\n", "line 1: missing column(s): worn"),
        ("time,device,infant_c,outer_c,contact,worn,mood\n", "line 1: unknown column(s): mood"),
        ("", "line 1: empty file"),
    ],
)
def test_bad_header(tmp_path, header, expected):
    with pytest.raises(SamplesFileError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load(write(tmp_path, rows(2) if header else "", header=header))


def test_skip_invalid_reports_counts_kinds_and_lines(tmp_path):
    body = (
        rows(3)
        + "1772401000,A,99,35,1,1\n"
        + "1772401001,A,36,35,7,1\n"
        + "1772400001,A,36.1,35,1,1\n"
        + rows(2, t0=1772402000)
    )
    report, straps = load(write(tmp_path, body), skip_invalid=True)
    assert len(straps["A"]) == 5
    assert report.skipped == {
        "temperature outside 10-45 C": 1,
        "flag not 0/1": 1,
        "duplicate (device, time)": 1,
    }
    assert report.skipped_lines["temperature outside 10-45 C"] == [5]
    assert report.skipped_lines["duplicate (device, time)"] == [7]
    text = "\n".join(report.lines())
    assert "skipped 1 rows: flag not 0/1 (lines 6)" in text
    assert report.rows == 8 and report.kept == 5


def test_optional_columns_and_raw_pad_readings_are_accepted(tmp_path):
    header = "time,device,infant_c,outer_c,contact,worn,seq,tilt_deg,battery_v,contact_raw,pad_inner_raw\n"
    body = "1772400000,A,36.5,35,1,1,17,12,3.9,410,388\n1772400001,A,36.5,35,1,1,18,,,411,\n"
    report, straps = load(write(tmp_path, body, header=header))
    assert len(straps["A"]) == 2 and straps["A"].battery_v is not None


def test_missing_temperature_is_kept_and_counted(tmp_path):
    report, straps = load(write(tmp_path, rows(2) + "1772401000,A,,35,1,1\n"))
    assert np.isnan(straps["A"].infant_c[-1])
    assert report.missing_infant_c == 1


def test_parquet_with_timestamps_and_battery(tmp_path):
    t = pa.array(np.array([1772398800, 1772398801], dtype="datetime64[s]")).cast(
        pa.timestamp("s", tz="UTC")
    )
    table = pa.table(
        {
            "time": t,
            "device": ["A", "A"],
            "infant_c": [36.5, 36.6],
            "outer_c": [35.0, 35.0],
            "contact": [True, False],
            "worn": [1, 1],
            "battery_v": [3.9, 3.9],
        }
    )
    pq.write_table(table, tmp_path / "s.parquet")
    _, straps = load(tmp_path / "s.parquet")
    a = straps["A"]
    assert a.time.tolist() == [1772398800.0, 1772398801.0]
    assert (
        a.contact.tolist() == [1, 0]
        and a.battery_v is not None
        and a.battery_v.tolist() == [3.9, 3.9]
    )


def test_parquet_bad_value_names_row(tmp_path):
    table = pa.table(
        {
            "time": [1772398800, 1772398801],
            "device": ["A", "A"],
            "infant_c": [36.5, 60.0],
            "outer_c": [35.0, 35.0],
            "contact": [1, 1],
            "worn": [1, 1],
        }
    )
    pq.write_table(table, tmp_path / "s.parquet")
    with pytest.raises(SamplesFileError, match=r"s.parquet: line 2: temperature outside"):
        load(tmp_path / "s.parquet")


def test_gzip_csv(tmp_path):
    p = tmp_path / "s.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(HEADER + rows(5))
    _, straps = load(p)
    assert len(straps["A"]) == 5


def test_not_a_samples_file(tmp_path):
    p = tmp_path / "s.txt"
    p.write_text("hello")
    with pytest.raises(SamplesFileError, match="unknown file type"):
        load(p)
    with pytest.raises(SamplesFileError, match="file not found"):
        load(tmp_path / "nope.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(SamplesFileError, match="not a readable Parquet file"):
        load(tmp_path / "bad.parquet")


def test_large_file_in_many_batches(tmp_path):
    n = 300_000
    t = 1_772_400_000 + np.arange(n)
    body = "\n".join(f"{x},{'AB'[x % 2]},36.5,35.0,1,1" for x in t.tolist()) + "\n"
    report, straps = load(write(tmp_path, body))
    assert report.kept == n and len(straps["A"]) == n // 2


def test_kmc_csv_parse_chooses_the_parse_and_is_checked(tmp_path, monkeypatch):
    path = write(tmp_path, rows(3))
    monkeypatch.setenv("KMC_CSV_PARSE", "checking")
    assert not SampleReader(path).typed
    monkeypatch.setenv("KMC_CSV_PARSE", "typed")
    assert SampleReader(path).typed
    monkeypatch.setenv("KMC_CSV_PARSE", "fast")
    with pytest.raises(BadInput, match="KMC_CSV_PARSE='fast': expected 'typed' or 'checking'"):
        SampleReader(path)
