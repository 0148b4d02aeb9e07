"""Hours per local calendar day, rolling 24 h, day of life."""

import datetime as dt

import numpy as np
import pytest

from conftest import T0, signal
from kmc_host.detect import daily_hours, day_of_life_hours, detect, rolling_24h, zone

H = 3600


def test_session_across_midnight_counts_for_both_days():
    # T0 is local midnight in Addis Ababa; start 2 h before it
    s = signal((2 * H, 1, 1, 36.9), (22 * H, 0, 1, 36.8), t0=T0 - 2 * H)
    r = detect("S", s)
    assert r.session_start.size == 1
    d = daily_hours(r, zone("Africa/Addis_Ababa"))
    assert [x.isoformat() for x in d.dates] == ["2026-03-01", "2026-03-02"]
    assert d.kmc_hours.tolist() == [2.0, 0.0]
    assert d.monitored_hours.tolist() == [2.0, 22.0]
    # the same recording in UTC: all on one day
    d = daily_hours(r, zone("UTC"))
    assert len(d.dates) == 2 and d.kmc_hours.sum() == 2.0


def test_split_of_a_session_over_midnight():
    s = signal((3 * H, 1, 1, 36.9), t0=T0 - H)
    d = daily_hours(detect("S", s), zone("Africa/Addis_Ababa"))
    assert d.kmc_hours.tolist() == [1.0, 2.0]
    assert d.sessions.tolist() == [1, 1]  # one session, touching both days


def test_dst_day_is_23_hours():
    tz = zone("Europe/London")
    start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=tz).timestamp()  # clocks go forward at 01:00
    s = signal((23 * H, 0, 1, 36.8), t0=start)
    d = daily_hours(detect("S", s), tz)
    assert [x.isoformat() for x in d.dates] == ["2026-03-29"]
    assert d.monitored_hours.tolist() == [23.0]


def test_unknown_zone_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        zone("Mars/Base")


def test_rolling_24h():
    s = signal((H, 1, 1, 36.9), (30 * H, 0, 1, 36.8))
    r = detect("S", s)
    kmc, mon = rolling_24h(r, np.array([T0 + H, T0 + 24 * H, T0 + 25 * H, T0 + 26 * H]))
    assert kmc.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert mon.tolist() == [1.0, 24.0, 24.0, 24.0]


def test_day_of_life():
    birth = T0 - 30 * H  # data starts 30 h after birth: day of life 2
    s = signal((2 * H, 1, 1, 36.9), (20 * H, 0, 1, 36.8))
    days, kmc, mon = day_of_life_hours(detect("S", s), birth)
    assert days.tolist() == [2, 3]
    assert kmc.tolist() == [2.0, 0.0]
    assert mon.tolist() == [18.0, 4.0]
