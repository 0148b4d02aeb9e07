"""Hours per local calendar day, rolling 24 h, and day of life.

A ward counts KMC hours per day of its own clock, so days are local calendar days of an IANA zone
(DST days are 23 or 25 h long). A session that crosses midnight stays one session and gives each
day the hours it spent in it. `monitored_hours` is reported beside every `kmc_hours`: a day with
6 h of data cannot claim 18 h of KMC. Only the day edges are computed in Python (one per day);
the hours are vectorised over intervals.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError
from .intervals import seconds_in_bins, seconds_in_windows
from .strap import StrapResult

F64 = NDArray[np.float64]
DAY_S = 86400.0


def zone(name: str) -> ZoneInfo:
    """The IANA time zone, or a ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {name!r} (use an IANA name such as Africa/Addis_Ababa)"
        ) from exc


def local_day_edges(t0: float, t1: float, tz: ZoneInfo) -> tuple[list[dt.date], F64]:
    """Local dates covering [t0, t1) and the UTC instants of their midnights (len(dates) + 1)."""
    first = dt.datetime.fromtimestamp(t0, tz).date()
    last = dt.datetime.fromtimestamp(max(t0, t1 - 1e-3), tz).date()  # t1 itself is not covered
    dates = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    edges = [dt.datetime.combine(d, dt.time(0), tzinfo=tz).timestamp() for d in dates]
    edges.append(
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), tzinfo=tz).timestamp()
    )
    return dates, np.asarray(edges)


@dataclass(frozen=True)
class Daily:
    """One strap's hours per local day."""

    dates: list[dt.date]
    kmc_hours: F64
    monitored_hours: F64
    off_hours: F64
    sessions: NDArray[np.int64]
    effective_sessions: NDArray[np.int64]


def daily_hours(result: StrapResult, tz: ZoneInfo) -> Daily:
    """Hours per local calendar day over the days this strap has data."""
    if result.monitored_start.size == 0:
        return Daily(
            [], np.empty(0), np.empty(0), np.empty(0), np.empty(0, np.int64), np.empty(0, np.int64)
        )
    dates, edges = local_day_edges(
        float(result.monitored_start[0]), float(result.monitored_end[-1]), tz
    )
    # a session counts on each day it touches; effective ones likewise
    first_day = np.searchsorted(edges, result.session_start, side="right") - 1
    last_day = np.searchsorted(edges, result.session_end, side="left") - 1
    n = len(dates)
    touch = np.zeros(n + 1, np.int64)
    np.add.at(touch, np.clip(first_day, 0, n), 1)
    np.add.at(touch, np.clip(last_day + 1, 0, n), -1)
    sessions = np.cumsum(touch)[:n]
    eff = result.session_effective
    touch_e = np.zeros(n + 1, np.int64)
    np.add.at(touch_e, np.clip(first_day[eff], 0, n), 1)
    np.add.at(touch_e, np.clip(last_day[eff] + 1, 0, n), -1)
    return Daily(
        dates,
        seconds_in_bins(result.session_start, result.session_end, edges) / 3600.0,
        seconds_in_bins(result.monitored_start, result.monitored_end, edges) / 3600.0,
        seconds_in_bins(result.off_start, result.off_end, edges) / 3600.0,
        sessions,
        np.cumsum(touch_e)[:n],
    )


def rolling_24h(result: StrapResult, at: F64) -> tuple[F64, F64]:
    """(kmc_hours, monitored_hours) in the 24 h before each instant of `at`."""
    kmc = seconds_in_windows(result.session_start, result.session_end, at, DAY_S)
    mon = seconds_in_windows(result.monitored_start, result.monitored_end, at, DAY_S)
    return kmc / 3600.0, mon / 3600.0


def day_of_life_hours(result: StrapResult, birth_time: float) -> tuple[NDArray[np.int64], F64, F64]:
    """(day_of_life, kmc_hours, monitored_hours); day 1 is the first 24 h after birth."""
    if result.monitored_start.size == 0:
        return np.empty(0, np.int64), np.empty(0), np.empty(0)
    first = max(0, int((result.monitored_start[0] - birth_time) // DAY_S))
    last = max(first, int((result.monitored_end[-1] - 1e-3 - birth_time) // DAY_S))
    days = np.arange(first, last + 1)
    edges = np.asarray(birth_time + DAY_S * np.arange(first, last + 2), dtype=np.float64)
    kmc = seconds_in_bins(result.session_start, result.session_end, edges) / 3600.0
    mon = seconds_in_bins(result.monitored_start, result.monitored_end, edges) / 3600.0
    return days + 1, kmc, mon
