"""Loading samples files: formats, row order, and every kind of bad input."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from kmc_analysis import samples_io
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


def test_skip_invalid_parses_a_bad_piece_again_the_checking_way(tmp_path, monkeypatch):
    """With bad rows skipped, only the pieces holding them are parsed again as text: the read
    stays typed, and the rows kept, the counts and the lines listed are the checking parse's."""
    monkeypatch.setattr(samples_io, "CSV_TYPED_PIECE_BYTES", 256)  # many pieces
    monkeypatch.setattr(samples_io, "CSV_TYPED_BLOCK_BYTES", 128)
    body = (
        rows(30)
        + "1772401000,A,99,35,1,1\n"
        + "1772401001,A,36,35,0x1,1\n"
        + "1772401002,A,36,35,1,1\n"
        + "1772400001,B,36.1,35,1,1\n"
        + rows(30, t0=1772402000)
    )
    path = write(tmp_path, body)
    typed, chunks = _read(path, skip_invalid=True)
    checking, expected = _read(path, skip_invalid=True, typed=False)
    assert typed.typed  # no second read of the whole file
    assert typed.report.skipped == {"temperature outside 10-45 C": 1, "flag not 0/1": 1}
    assert typed.report.lines() == checking.report.lines()
    assert _per_strap(chunks) == _per_strap(expected)


def _per_strap(chunks):
    """Each strap's samples joined (the parses cut chunks in different places)."""
    out: dict[str, list[list[float]]] = {}
    for d, c in chunks:
        cols = out.setdefault(d, [[], [], []])
        for col, v in zip(cols, (c.time, c.infant_c, c.contact), strict=True):
            col.extend(np.asarray(v, float).tolist())
    return {d: [[None if x != x else x for x in col] for col in cols] for d, cols in out.items()}


def _same_outcome(path, **kw):
    """The typed and the checking parse agree: the same chunks and report, or the same error."""
    outcomes = []
    for typed in (True, False):
        reader = SampleReader(path, typed=typed, **kw)
        try:
            outcomes.append((reader.report.lines(), _per_strap(reader.consume(list))))
        except SamplesFileError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]
    return outcomes[0]


def test_a_truncated_gzip_file_is_one_clear_error(tmp_path):
    data = gzip.compress((HEADER + rows(2000)).encode())
    path = tmp_path / "s.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    got = _same_outcome(path)
    assert isinstance(got, str) and str(path) in got


def test_cr_only_line_ends_are_read(tmp_path):
    path = tmp_path / "s.csv"
    path.write_bytes((HEADER + rows(5)).replace("\n", "\r").encode())
    lines, straps = _same_outcome(path)
    assert len(straps["A"][0]) == 5


def test_text_not_utf8_in_a_column_no_check_reads_is_refused_as_before(tmp_path):
    header = "time,device,infant_c,outer_c,contact,worn,tilt_deg\n"
    body = "".join(f"{1772400000 + i},A,36.5,35,1,1,12\n" for i in range(400))
    path = tmp_path / "s.csv"
    path.write_bytes((header + body).encode() + b"1772409999,A,36.5,35,1,1,\xff\n")
    got = _same_outcome(path)
    assert "line 402: not UTF-8 text (byte 0xff)" in got


def test_the_first_error_named_is_the_checking_parses(tmp_path, monkeypatch):
    """A duplicate early and a bad value later in the same checking batch: the checking parse
    names the bad value (values are checked before duplicates, batch by batch); so must the
    typed parse, whose pieces are cut elsewhere."""
    monkeypatch.setattr(samples_io, "CSV_TYPED_PIECE_BYTES", 256)
    monkeypatch.setattr(samples_io, "CSV_TYPED_BLOCK_BYTES", 128)
    body = rows(10) + "1772400009,A,36.1,35,1,1\n" + rows(50, t0=1772401000)
    body += "1772409999,A,99,35,1,1\n"
    got = _same_outcome(write(tmp_path, body))
    assert "line 63: temperature outside 10-45 C" in got


@pytest.mark.parametrize(
    "text",
    [HEADER.rstrip("\n"), HEADER, HEADER + rows(3).rstrip("\n"), ""],
    ids=["header-no-newline", "header-only", "no-final-newline", "empty"],
)
def test_short_files_read_alike(tmp_path, text):
    _same_outcome(write(tmp_path, text, header=""))


def test_a_line_longer_than_a_piece(tmp_path, monkeypatch):
    monkeypatch.setattr(samples_io, "CSV_TYPED_PIECE_BYTES", 64)
    header = "time,device,infant_c,outer_c,contact,worn,seq\n"
    body = "".join(
        f"{1772400000 + i},A,36.5,35,1,1,{'9' * (150 if i == 3 else 1)}\n" for i in range(8)
    )
    lines, straps = _same_outcome(write(tmp_path, body, header=header))
    assert len(straps["A"][0]) == 8


def test_kmc_csv_parse_chooses_the_parse_and_is_checked(tmp_path, monkeypatch):
    path = write(tmp_path, rows(3))
    monkeypatch.setenv("KMC_CSV_PARSE", "checking")
    assert not SampleReader(path).typed
    monkeypatch.setenv("KMC_CSV_PARSE", "typed")
    assert SampleReader(path).typed
    monkeypatch.setenv("KMC_CSV_PARSE", "fast")
    with pytest.raises(BadInput, match="KMC_CSV_PARSE='fast': expected 'typed' or 'checking'"):
        SampleReader(path)
