"""`kmc analyze`, `kmc simulate` and `kmc demo` as a user runs them."""

import pytest

from conftest import read_csv as read
from conftest import run_kmc as run


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    base = tmp_path_factory.mktemp("ward")
    r = run(
        "simulate",
        "--devices",
        "4",
        "--days",
        "2",
        "--out",
        str(base / "s.csv"),
        "--seed",
        "5",
        "--tz",
        "Africa/Nairobi",
    )
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout
    return base


def test_simulate_writes_samples_truth_and_roster(ward):
    assert (ward / "s.csv").stat().st_size > 1_000_000
    for name in ("sessions.csv", "alerts.csv", "daily.csv", "roster.csv"):
        assert (ward / "s_truth" / name).exists()
    assert len(read(ward / "s_truth" / "roster.csv")) == 4


def test_analyze_writes_the_contract_files(ward, tmp_path):
    out = tmp_path / "out"
    r = run(
        "analyze",
        str(ward / "s.csv"),
        "--out",
        str(out),
        "--tz",
        "Africa/Nairobi",
        "--roster",
        str(ward / "s_truth" / "roster.csv"),
    )
    assert r.returncode == 0, r.stderr
    with (out / "sessions.csv").open() as fh:
        assert fh.readline().strip().startswith("device,start,end,duration_min")
    with (out / "daily.csv").open() as fh:
        assert fh.readline().strip().startswith("device,date,kmc_hours,monitored_hours")
    with (out / "alerts.csv").open() as fh:
        assert fh.readline().strip().startswith("device,kind,start,end,extreme_c")
    sessions = read(out / "sessions.csv")
    assert (
        sessions and sessions[0]["start"].endswith("Z") and float(sessions[0]["duration_min"]) >= 10
    )
    cov = read(out / "coverage.csv")
    assert [r["scope"] for r in cov] == ["infant"] * 4 + ["cohort"]
    assert read(out / "day_of_life.csv")
    # the summary: per strap days, KMC h/day, sessions, alerts
    assert "KMC h/day" in r.stdout and "KMC-01" in r.stdout and "coverage:" in r.stdout


def test_analyze_bad_input_is_one_clear_line_and_exit_2(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(
        "time,device,infant_c,outer_c,contact,worn\n1772400000,A,36.5,35,1,1\n1772400001,A,36.5,35,1,maybe\n"
    )
    r = run("analyze", str(p), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{p}: line 3: flag not 0/1: worn 'maybe'" in r.stderr
    assert not (tmp_path / "o" / "sessions.csv").exists()


def test_analyze_unknown_zone_and_missing_file(tmp_path):
    r = run(
        "analyze", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "--tz", "Nowhere/City"
    )
    assert r.returncode == 2 and "unknown time zone 'Nowhere/City'" in r.stderr
    r = run("analyze", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "file not found" in r.stderr and "Traceback" not in r.stderr


def test_bad_roster_names_its_line(ward, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "device,infant_id,birth_time,birth_weight_g\nKMC-01,I1,2026-03-01T00:00:00Z,1500\nKMC-02,I2,yesterday,1500\n"
    )
    r = run("analyze", str(ward / "s.csv"), "--out", str(tmp_path / "o"), "--roster", str(roster))
    assert r.returncode == 2 and f"{roster}: line 3: unparsable birth_time 'yesterday'" in r.stderr


def test_demo_runs_end_to_end(tmp_path):
    r = run("demo", "--offline", "--straps", "3", "--days", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "sessions matched" in r.stdout and "coverage:" in r.stdout
    assert (tmp_path / "analysis" / "alerts.csv").exists()


def test_live_demo_delivers_every_sample_and_the_cold_alert(tmp_path):
    """`kmc demo`: emulated straps -> BLE (bumble) -> gateway -> MQTT broker, then the summary."""
    r = run("demo", "--straps", "2", "--minutes", "22", "--speed", "400", "--out", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "samples lost: 0" in r.stdout
    assert "alert cold_stress on KMC-0002" in r.stdout
    assert "KMC-0001: 1320/1320 samples received" in r.stdout
    # the demo stores what the broker delivered and analyses it offline: the same cold episode
    assert (tmp_path / "samples.csv").exists() and (tmp_path / "analysis" / "alerts.csv").exists()
    assert any(
        line.startswith("  KMC-0002") and "cold_stress 1" in line for line in r.stdout.splitlines()
    )
    # the store: every sample in InfluxDB through kmc sink, and the report read back from it
    # (stored as kmc_sample, or kmc_sample_unclocked when taken before the clock was set)
    assert (
        "InfluxDB holds 2640 of the 2640 samples the straps took; 0 messages rejected" in r.stdout
    )
    alerts = read(tmp_path / "report" / "alerts.csv")
    assert [(a["device"], a["infant_id"]) for a in alerts if a["kind"] == "cold_stress"] == [
        ("KMC-0002", "INF-0002")
    ]
    assert (tmp_path / "report" / "report.html").stat().st_size > 10_000


def test_live_demo_refuses_a_folder_holding_an_earlier_run(tmp_path):
    """A second run on the same folder would mix two runs' strap flash, cursors and database."""
    (tmp_path / "gateway").mkdir()
    r = run("demo", "--out", str(tmp_path))
    assert r.returncode == 2 and "is not empty" in r.stderr and "--out" in r.stderr


LATIN1 = "device,infant_id,birth_time,birth_weight_g\nKMC-0001,Zo\xeb,2026-03-01T00:00:00Z,1500\n"


@pytest.mark.parametrize(
    "command, named",
    [
        (("report", "{samples}", "--roster", "{bad}", "--out", "{out}"), "{bad}"),
        (("export", "fhir", "{samples}", "--roster", "{bad}", "--out", "{out}/x.json"), "{bad}"),
        (("validate", "{samples}", "{bad}"), "{bad}"),
        (("validate", "{samples}", "{log}", "--roster", "{bad}"), "{bad}"),
        (("simulate", "--start", "2026-02-30", "--out", "{out}/s.csv"), "'2026-02-30'"),
        (("simulate", "--start", "notadate", "--out", "{out}/s.csv"), "'notadate'"),
    ],
)
def test_files_that_are_not_text_and_dates_that_are_not_dates_exit_2(
    ward, tmp_path, command, named
):
    """A roster or observer log saved as Latin-1, a start date that does not exist: one line
    naming the file or the value, exit 2, never a traceback."""
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(LATIN1.encode("latin-1"))
    log = tmp_path / "log.csv"
    log.write_text("device,start,end\nKMC-0001,1772398800,1772402400\n")
    fill = {"samples": str(ward / "s.csv"), "bad": str(bad), "log": str(log), "out": tmp_path}
    r = run(*(part.format(**fill) for part in command))
    assert r.returncode == 2, r.stderr
    assert named.format(**fill) in r.stderr and "Traceback" not in r.stderr
    assert "not UTF-8 text" in r.stderr or "is not a date" in r.stderr
