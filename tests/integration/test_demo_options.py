"""`kmc demo` over the space its options accept, not only the defaults.

Every value in range must run (the scenarios at every run length and strap index, and live runs
at the corners: many straps, runs shorter than an hour, other seeds and speeds); every value
out of range, and every option that does nothing in the chosen mode, is refused with a message
naming it and exit status 2. No error message is ever empty.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_kmc
from kmc_host.cli import main
from kmc_host.errors import StepFailed, describe, doing
from kmc_testbed.cli import MINUTES, STRAPS
from kmc_testbed.scenarios import scenario

FEEDS = ("infant_c", "outer_c", "contact", "worn")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--straps", "0"], "--straps must be within 1..40, not 0"),
        (["--straps", "41"], "--straps must be within 1..40, not 41"),
        (["--minutes", "4"], "--minutes must be within 5..1440, not 4"),
        (["--minutes", "1441"], "--minutes must be within 5..1440, not 1441"),
        (["--speed", "0.5"], "--speed must be within 1..1000, not 0.5"),
        (["--speed", "1001"], "--speed must be within 1..1000, not 1001"),
        (["--ward-port", "70000"], "--ward-port must be within 0..65535, not 70000"),
        (["--broker-port", "0"], "--broker-port must be within 1..65535, not 0"),
        (["--tz", "Nowhere/City"], "unknown time zone 'Nowhere/City'"),
        (["--days", "2"], "--days: only for the offline demo (add --offline)"),
        (["--offline", "--minutes", "30"], "--minutes: only for the live demo"),
        (["--offline", "--hold", "--speed", "9"], "--hold, --speed: only for the live demo"),
        (["--offline", "--straps", "201"], "--straps must be within 1..200, not 201"),
        (["--offline", "--days", "0"], "--days must be within 0.01..31, not 0"),
        (["--hold", "--ward-port", "0"], "--hold keeps the ward screen up: it needs a screen"),
    ],
)
def test_out_of_range_or_misplaced_options_are_refused(args, message, capsys, tmp_path):
    assert main(["demo", *args, "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert f"kmc demo: error: {message}" in err
    assert not (tmp_path / "d").exists()  # refused before anything started


def test_a_negative_seed_is_refused_by_the_parser():
    r = run_kmc("demo", "--seed", "-1")
    assert r.returncode == 2 and "--seed: must be 0 or more, not -1" in r.stderr


def lengths() -> list[int]:
    """Every run length from 5 min to 2 h 10 min, then every 7th minute up to a day."""
    lo, hi = MINUTES
    return [*range(lo, 131), *range(131, hi + 1, 7), hi]


def test_every_scenario_runs_at_every_length():
    """The sensor feed of every strap index (the three scripted scenarios and the simulator's
    straps) at every run length: defined on every second of the run, physiological values."""
    rng = np.random.default_rng(0)
    lo, hi = STRAPS
    for n, minutes in enumerate(lengths()):
        seconds = minutes * 60
        indices = [0, 1, 2, 3 + n % (hi - 3)]  # the simulator's straps (3..39) in turn
        for index in indices:
            what, feed = scenario(index, seconds, seed=n)
            assert what
            ks = [0, 1, 2, 3, seconds - 1, seconds, seconds + 5, *rng.integers(0, seconds, 40)]
            for name in FEEDS:
                values = [getattr(feed, name)(int(k)) for k in ks]
                if name in ("contact", "worn"):
                    assert set(values) <= {0, 1}, (minutes, index, name)
                else:
                    assert all(20.0 <= v <= 42.0 for v in values), (minutes, index, name, values)


def test_the_cooling_scenario_cools_in_every_run():
    """Strap 2's baby gets cold in every run length (the alert the demo is there to show)."""
    for minutes in lengths():
        seconds = minutes * 60
        _, feed = scenario(1, seconds, seed=1)
        temps = np.array([feed.infant_c(k) for k in range(0, seconds + 1, 5)])
        assert temps[0] == 36.8 and temps.min() == pytest.approx(35.6), minutes
        assert np.all(np.diff(temps) <= 0)  # never warmer again in the run


@pytest.mark.parametrize(
    ("straps", "minutes", "speed", "seed"),
    [
        # a whole ward (past the gateway's default 7 slots), the shortest run; runs under
        # 25 min live: test_cli's 22-min demo; every length's feeds: the test above
        (40, 5, 1000, 3),
    ],
)
def test_live_demo_corners_deliver_every_sample(tmp_path, straps, minutes, speed, seed):
    r = run_kmc(
        "demo",
        *("--straps", str(straps), "--minutes", str(minutes)),
        *("--speed", str(speed), "--seed", str(seed)),
        *("--ward-port", "0", "--out", str(tmp_path / "demo")),
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "samples lost: 0" in r.stdout
    n = minutes * 60
    for k in range(1, straps + 1):
        assert f"KMC-{k:04d}: {n}/{n} samples received" in r.stdout
    total = straps * n
    assert f"InfluxDB holds {total} of the {total} samples" in r.stdout


def test_an_error_without_text_names_its_type_and_the_step():
    assert describe(TimeoutError()) == "TimeoutError (no message)"
    assert describe(KeyError("strap")) == "no 'strap'"
    no_text = r"^connecting the straps: TimeoutError \(no message\)$"
    with pytest.raises(StepFailed, match=no_text), doing("connecting the straps"):
        raise TimeoutError()
    # the narrower step is kept
    with pytest.raises(StepFailed, match="^inner: boom$"), doing("outer"), doing("inner"):
        raise RuntimeError("boom")
