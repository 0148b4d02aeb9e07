"""`kmc validate`: agreement with an observer log whose errors we know."""

from __future__ import annotations

import csv
import datetime as dt

import numpy as np
import pytest

from conftest import read_csv as read
from conftest import run_kmc as run
from kmc_analysis.samples_io import parse_time_value
from kmc_analysis.simulate import simulate_ward

TZ = "Africa/Kampala"


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    base = tmp_path_factory.mktemp("validate")
    samples, truth, _ = simulate_ward(base / "s.parquet", 3, 2.0, seed=4, tz=TZ)
    return base, samples, read(truth / "sessions.csv")


def test_an_observer_who_logs_3_min_late_one_session_missing_and_one_invented(ward, tmp_path):
    base, samples, truth = ward
    log = [dict(s) for s in truth]
    dropped = log.pop(5)  # the observer missed it: the strap's session is "extra"
    for row in log:  # every start logged 3 min late: the strap is 3 min "early"
        row["start"] = iso(parse_time_value(row["start"]) + 180)
    # an invented session in the middle of the night on a day the strap saw no KMC then
    last = truth[-1]
    fake_start = parse_time_value(last["end"]) + 2 * 3600
    log.append({"device": last["device"], "start": iso(fake_start), "end": iso(fake_start + 1800)})
    with (tmp_path / "log.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["device", "start", "end"])
        w.writeheader()
        w.writerows({k: r[k] for k in ("device", "start", "end")} for r in log)

    r = run(
        "validate",
        str(samples),
        str(tmp_path / "log.csv"),
        "--tz",
        TZ,
        "--out",
        str(tmp_path / "out"),
    )
    assert r.returncode == 0, r.stderr
    assert (
        f"observed sessions: {len(log)}; matched {len(log) - 1}, missed by the strap 1; "
        "extra strap sessions on observed days 1" in r.stdout
    )
    summary = read(tmp_path / "out" / "agreement.csv")[0]
    assert float(summary["median_start_error_min"]) == -3.0
    assert float(summary["median_end_error_min"]) == 0.0
    rows = read(tmp_path / "out" / "session_agreement.csv")
    extra = [x for x in rows if x["match"] == "extra"]
    assert [(x["device"], x["detected_start"]) for x in extra] == [
        (dropped["device"], dropped["start"])
    ]
    # per-day hours: detected from `kmc analyze`, observed summed here; Bland-Altman from them
    a = run("analyze", str(samples), "--tz", TZ, "--out", str(tmp_path / "ana"))
    assert a.returncode == 0
    detected = {
        (d["device"], d["date"]): float(d["kmc_hours"])
        for d in read(tmp_path / "ana" / "daily.csv")
    }
    daily = read(tmp_path / "out" / "daily_agreement.csv")
    diffs = []
    for d in daily:
        assert float(d["detected_h"]) == pytest.approx(
            detected.get((d["device"], d["date"]), 0.0), abs=2e-3
        )
        diffs.append(float(d["detected_h"]) - float(d["observed_h"]))
    assert float(summary["bias_h"]) == pytest.approx(np.mean(diffs), abs=2e-3)
    assert float(summary["loa_upper_h"]) == pytest.approx(
        np.mean(diffs) + 1.96 * np.std(diffs, ddof=1), abs=2e-3
    )
    assert float(summary["bias_h"]) > 0  # late starts, a missed session: the strap counts more
    total_obs = sum(float(d["observed_h"]) for d in daily)
    assert float(summary["sensitivity"]) == pytest.approx(
        (total_obs - 0.5) / total_obs, abs=1e-3
    )  # only the invented half hour was not seen by the strap


@pytest.mark.parametrize(
    "text, words",
    [
        ("who,start,end\nx,1,2\n", "needs columns device (or infant_id), start, end"),
        ("device,start,end\nKMC-01,yesterday,2\n", "line 2: unparsable time"),
        ("device,start,end\nKMC-01,1772500000,1772400000\n", "line 2: end is not after start"),
        (
            "device,start,end\nKMC-01,1772400000,1772500000\nKMC-01,1772450000,1772550000\n",
            "line 3: session overlaps the one on line 2",
        ),
        ("infant_id,start,end\nINF-01,1,2\n", "needs --roster"),
    ],
)
def test_bad_observer_logs_are_named(ward, tmp_path, text, words):
    _, samples, _ = ward
    (tmp_path / "log.csv").write_text(text)
    r = run("validate", str(samples), str(tmp_path / "log.csv"))
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr
    assert "log.csv" in r.stderr


def test_hours_per_day_are_the_calendars_bins_on_the_observed_days():
    """validate bins by kmc_host.detect.calendar (as analyze does): per local day, across a
    DST change (a 23 h day), on days with a gap between them, the time each day holds."""
    from zoneinfo import ZoneInfo

    from kmc_analysis.validate import _hours_per_day

    tz = ZoneInfo("Europe/London")  # clocks go forward on 2026-03-29
    rng = np.random.default_rng(5)
    t0 = dt.datetime(2026, 3, 27, tzinfo=tz).timestamp()
    for whole_seconds in (True, False):
        bounds = t0 + np.cumsum(rng.uniform(60, 20000, 40))
        if whole_seconds:
            bounds = np.round(bounds)
        start, end = bounds[0::2], bounds[1::2]
        touched = np.concatenate((start, end - 1e-3)).tolist()
        days = sorted({dt.datetime.fromtimestamp(t, tz).date() for t in touched})
        days.pop(1)  # the observer skipped a day
        span = (
            dt.datetime.combine(days[0], dt.time(0), tzinfo=tz).timestamp(),
            dt.datetime.combine(days[-1] + dt.timedelta(days=1), dt.time(0), tzinfo=tz).timestamp(),
        )
        expected = []
        for day in days:
            a = dt.datetime.combine(day, dt.time(0), tzinfo=tz).timestamp()
            b = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz).timestamp()
            expected.append(
                np.clip(np.minimum(end, b) - np.maximum(start, a), 0, None).sum() / 3600
            )
        got = _hours_per_day(start, end, days, span, tz)
        assert got.tolist() == pytest.approx(expected, abs=1e-12)
        if whole_seconds:
            assert got.tolist() == expected
    assert dt.date(2026, 3, 29) in days
