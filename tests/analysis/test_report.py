"""`kmc report`: tables agree with `kmc analyze`, the period filter, the roster's admission
time, the HTML with its plots, and the same report read back from a real InfluxDB."""

from __future__ import annotations

import csv
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import read_csv as read
from conftest import run_kmc as run
from conftest import ward_a
from kmc_analysis.samples_io import load_straps
from kmc_analysis.simulate import simulate_ward
from kmc_host.sink.influx import InfluxConfig, InfluxQL, V1Writer
from kmc_host.sink.schema import to_lines
from packets import samples_messages
from servers import InfluxDB

TZ = "Africa/Nairobi"


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    samples, truth, _ = simulate_ward(base / "s.parquet", 4, 3.0, seed=11, tz=TZ)
    roster = read(truth / "roster.csv")
    # an admission time for one infant: 2 h before its strap's first sample
    with (base / "roster.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, [*roster[0], "admission_time"])
        w.writeheader()
        for k, row in enumerate(roster):
            w.writerow(row | {"admission_time": "2026-03-01T19:00:00Z" if k == 0 else ""})
    return base, samples


def test_report_tables_agree_with_analyze(ward):
    base, samples = ward
    out = base / "rep"
    r = run(
        "report",
        str(samples),
        "--roster",
        str(base / "roster.csv"),
        *ward_a(TZ),
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "4 straps; 4 eligible infants" in r.stdout
    a = run(
        "analyze",
        str(samples),
        "--roster",
        str(base / "roster.csv"),
        "--tz",
        TZ,
        "--out",
        str(base / "ana"),
    )
    assert a.returncode == 0, a.stderr

    sessions = read(out / "sessions.csv")
    ana = read(base / "ana" / "sessions.csv")
    assert [(s["device"], s["start"], s["end"]) for s in sessions] == [
        (s["device"], s["start"], s["end"]) for s in ana
    ]
    daily = read(out / "daily.csv")
    assert [(d["device"], d["date"], float(d["kmc_hours"])) for d in daily] == [
        (d["device"], d["date"], float(d["kmc_hours"])) for d in read(base / "ana" / "daily.csv")
    ]
    coverage = {c["scope"] + c["infant_id"]: c for c in read(base / "ana" / "coverage.csv")}
    cohort = read(out / "cohort.csv")[0]
    for band in ("8h", "18h", "20h"):
        for key in (f"share_infants_reaching_{band}", f"share_days_ge_{band}"):
            assert float(cohort[key]) == pytest.approx(float(coverage["cohort"][key]), abs=1e-3)
    assert int(cohort["eligible_infants"]) == int(coverage["cohort"]["eligible_infants"]) == 4
    # the cohort's mean KMC hours: the mean of the infants' unrounded means, as coverage.csv's
    assert float(cohort["mean_kmc_hours"]) == float(coverage["cohort"]["mean_kmc_hours"])
    infants = read(out / "infants.csv")
    for row in infants:
        assert float(row["mean_kmc_hours"]) == pytest.approx(
            float(coverage["infant" + row["infant_id"]]["mean_kmc_hours"]), abs=1e-3
        )
    # admission: from the roster for the first infant, else the first data
    assert infants[0]["admission_from"] == "roster"
    assert infants[0]["admission_time"] == "2026-03-01T19:00:00Z"
    first = min(s["start"] for s in sessions if s["device"] == infants[0]["device"])
    assert infants[0]["first_kmc"] == first
    assert {r["admission_from"] for r in infants[1:]} == {"first data"}
    # alarms per baby-day: thermal episodes over monitored days
    alerts = read(out / "alerts.csv")
    thermal = [
        a
        for a in alerts
        if a["device"] == infants[1]["device"]
        and a["kind"] != "strap_off"
        and a["kind"] != "battery_low"
    ]
    assert int(infants[1]["thermal_alerts"]) == len(thermal)
    assert float(infants[1]["thermal_alerts_per_baby_day"]) == pytest.approx(
        len(thermal) / float(infants[1]["baby_days"]), rel=1e-2
    )
    # ward coverage: per date, the eligible infants with an observed day
    wc = read(out / "ward_coverage.csv")
    observed = [d for d in daily if d["observed"] == "1"]
    for row in wc:
        day = [d for d in observed if d["date"] == row["date"]]
        assert int(row["eligible_infants_observed"]) == len(day)
        assert float(row["share_ge_8h"]) == pytest.approx(
            sum(float(d["kmc_hours"]) >= 8 for d in day) / len(day), abs=1e-3
        )
    # every table both commands write: the same rows and, in every column analyze writes,
    # the same values (analyze writes fixed decimals, report shortest floats: same numbers)
    for name, key in SHARED_TABLES.items():
        ana_rows, rep_rows = read(base / "ana" / f"{name}.csv"), read(out / f"{name}.csv")
        assert ana_rows, name
        _same_values(name, ana_rows, rep_rows, key)
    # each command's row order: analyze strap by strap, report's alerts by time across straps
    ana_alerts = read(base / "ana" / "alerts.csv")
    assert [(a["device"], a["start"]) for a in ana_alerts] == sorted(
        (a["device"], a["start"]) for a in ana_alerts
    )
    assert [a["start"] for a in alerts] == sorted(a["start"] for a in alerts)
    # Parquet holds the same rows, times as UTC timestamps
    table = pq.read_table(out / "sessions.parquet")
    assert table.num_rows == len(sessions)
    assert str(table.schema.field("start").type) == "timestamp[ms, tz=UTC]"
    assert pq.read_table(out / "daily.parquet").column("kmc_hours").to_pylist() == [
        float(d["kmc_hours"]) for d in daily
    ]


SHARED_TABLES = {  # the tables both `kmc analyze` and `kmc report` write, and a row's key
    "sessions": ("device", "start"),
    "daily": ("device", "date"),
    "rolling24": ("device", "time"),
    "day_of_life": ("device", "day_of_life"),
    "alerts": ("device", "kind", "start"),
}


def _value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def _same_values(name, ana_rows, rep_rows, key):
    """Same rows (by key) and, in each of analyze's columns (all of them in report's table too),
    the same value."""
    ana = {tuple(r[k] for k in key): r for r in ana_rows}
    rep = {tuple(r[k] for k in key): r for r in rep_rows}
    assert len(ana) == len(ana_rows) and ana.keys() == rep.keys(), name
    assert set(ana_rows[0]) <= set(rep_rows[0]), name
    differ = [
        (k, column, row[column], rep[k][column])
        for k, row in ana.items()
        for column in row
        if _value(row[column]) != _value(rep[k][column])
    ]
    assert differ == [], name


def test_report_html_is_self_contained_with_plots(ward):
    base, samples = ward
    out = base / "rep"
    if not (out / "report.html").exists():
        test_report_tables_agree_with_analyze(ward)
    page = (out / "report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert len(images) == 1 + 2 * 4  # ward coverage; per infant: daily hours and 24 h trace
    assert "ward coverage per day" in images
    assert sum("temperature, last 24 h" in a for a in images) == 4
    assert "http://" not in page and "https://" not in page  # nothing fetched when opened
    assert "site1 / ward-a" in page


def test_report_html_shows_every_time_in_the_wards_zone(ward):
    """One zone on the page: the tables' times are local like the charts', and the page and
    the headers say so; the CSVs stay in UTC (ISO 8601 with Z), as their docs say."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    base, samples = ward
    out = base / "rep"
    if not (out / "report.html").exists():
        test_report_tables_agree_with_analyze(ward)
    page = (out / "report.html").read_text()
    assert f"All times are local time in {TZ} (UTC+03:00 today)" in page
    assert "<th>start (local)</th><th>end (local)</th>" in page
    rows = read(out / "sessions.csv")
    assert rows

    def fmt(iso: str, zone: dt.tzinfo) -> str:
        assert iso.endswith("Z")  # the CSV: UTC
        t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    local, utc = ZoneInfo(TZ), dt.UTC
    for row in rows:
        start, end = fmt(row["start"], local), fmt(row["end"], local)
        assert f"<tr><td>{start}</td><td>{end}</td>" in page, row
        start_utc, end_utc = fmt(row["start"], utc), fmt(row["end"], utc)
        assert f"<tr><td>{start_utc}</td><td>{end_utc}</td>" not in page, row


def test_report_period_keeps_only_those_local_days(ward, tmp_path):
    base, samples = ward
    r = run(
        "report",
        str(samples),
        "--tz",
        TZ,
        "--from",
        "2026-03-03",
        "--to",
        "2026-03-03",
        "--out",
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert {d["date"] for d in read(tmp_path / "daily.csv")} == {"2026-03-03"}
    for d in read(tmp_path / "daily.csv"):
        assert float(d["monitored_hours"]) <= 24.0
    assert "no roster" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--from", "March"], "--from 'March' is not a date"),
        (["--from", "2026-03-04", "--to", "2026-03-01"], "--to is before --from"),
        ([], "either a samples file or --influx"),
    ],
)
def test_report_bad_arguments_are_one_clear_line(ward, tmp_path, args, words):
    base, samples = ward
    files = [str(samples)] if args else []
    r = run("report", *files, *args, "--out", str(tmp_path))
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr


def test_report_from_influxdb_equals_report_from_the_file(ward, tmp_path, monkeypatch):
    """Samples stored as the sink stores them, read back with InfluxQL: the same report, read
    as CSV a strap-day a query (the default) and as JSON a day of every strap a query (the
    previous way, KMC_INFLUX_READ=json)."""
    base, samples = ward
    _, straps = load_straps(samples)
    server = InfluxDB(tmp_path).start()
    try:
        cfg = InfluxConfig(url=server.url, database="kmc")
        InfluxQL(cfg).run("CREATE DATABASE kmc")
        writer = V1Writer(cfg)
        for k, (device, s) in enumerate(sorted(straps.items())):
            # as the gateway's messages would arrive, readings exact (the report must match)
            for msg in samples_messages(device, str(k), f"PSEUDO-{k}", s, 20_000):
                lines = to_lines(f"kmc/site1/ward-a/{device}/samples", json.dumps(msg).encode())
                for c in range(0, len(lines), 5000):
                    writer.write(lines[c : c + 5000])
        assert server.count("kmc_sample", "seq") == sum(len(s) for s in straps.values())
        (tmp_path / "influx.toml").write_text(f'[influx]\nurl = "{server.url}"\ndatabase = "kmc"\n')
        r = run(
            "report",
            "--influx",
            str(tmp_path / "influx.toml"),
            "--site",
            "site1",
            "--ward",
            "ward-a",
            "--tz",
            TZ,
            "--out",
            str(tmp_path / "db"),
        )
        assert r.returncode == 0, r.stderr
        f = run("report", str(samples), "--tz", TZ, "--out", str(tmp_path / "file"))
        assert f.returncode == 0, f.stderr
        for name in ("sessions", "daily", "alerts"):
            db = read(tmp_path / "db" / f"{name}.csv")
            fl = read(tmp_path / "file" / f"{name}.csv")
            drop = lambda rows: [{k: v for k, v in r.items() if k != "infant_id"} for r in rows]  # noqa: E731
            assert drop(db) == drop(fl), name
        assert {r["infant_id"] for r in read(tmp_path / "db" / "infants.csv")} == {
            f"PSEUDO-{k}" for k in range(4)
        }
        monkeypatch.setenv("KMC_INFLUX_READ", "json")
        j = run(
            "report",
            "--influx",
            str(tmp_path / "influx.toml"),
            *ward_a(TZ),
            "--out",
            str(tmp_path / "json"),
        )
        assert j.returncode == 0, j.stderr
        for name in ("sessions", "daily", "alerts", "infants"):
            assert read(tmp_path / "json" / f"{name}.csv") == read(tmp_path / "db" / f"{name}.csv")
        monkeypatch.setenv("KMC_INFLUX_READ", "fast")
        bad = run(
            "report", "--influx", str(tmp_path / "influx.toml"), "--out", str(tmp_path / "bad")
        )
        assert (
            bad.returncode == 2 and "KMC_INFLUX_READ='fast': expected 'csv' or 'json'" in bad.stderr
        )
        monkeypatch.delenv("KMC_INFLUX_READ")
        other = run(
            "report",
            "--influx",
            str(tmp_path / "influx.toml"),
            "--ward",
            "ward-b",
            "--out",
            str(tmp_path / "none"),
        )
        assert other.returncode == 2 and "no samples in InfluxDB" in other.stderr
    finally:
        server.stop()


def test_the_commands_reading_a_source_do_not_use_outer_c(ward, tmp_path):
    """InfluxSource leaves outer_c out of its queries (sources.SAMPLE_FIELDS), so what the
    report and the FHIR export make must not depend on it: the same samples with outer_c
    blanked give the same tables, the same page's plots and the same bundle."""
    base, samples = ward
    table = pq.read_table(samples)
    blank = table.set_column(
        table.schema.get_field_index("outer_c"),
        "outer_c",
        pa.nulls(table.num_rows, table.schema.field("outer_c").type),
    )
    pq.write_table(blank, tmp_path / "blank.parquet")
    outs = {}
    for name, path in (("kept", samples), ("blank", tmp_path / "blank.parquet")):
        out = tmp_path / name
        r = run("report", str(path), *ward_a(TZ), "--out", str(out))
        assert r.returncode == 0, r.stderr
        e = run("export", "fhir", str(path), *ward_a(TZ), "--out", str(out / "bundle.json"))
        assert e.returncode == 0, e.stderr
        outs[name] = out
    csvs = sorted(p.name for p in outs["kept"].glob("*.csv"))
    assert len(csvs) >= 8
    for name in csvs:
        assert read(outs["kept"] / name) == read(outs["blank"] / name), name
    images = [
        re.findall(r'src="data:image/png;base64,([^"]+)"', (o / "report.html").read_text())
        for o in outs.values()
    ]
    assert images[0] and images[0] == images[1]
    bundles = [json.loads((o / "bundle.json").read_text()) for o in outs.values()]
    assert bundles[0]["entry"] and bundles[0]["entry"] == bundles[1]["entry"]
