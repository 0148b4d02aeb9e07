"""The tables `kmc analyze` and `kmc report` both give, each built once from the detector's results.

Both commands run the same detector; each used to turn its results into sessions, daily hours,
rolling 24 h, day of life and alert rows on its own, and the two drifted (they rounded ties
differently). Here is one builder per table: a small function over the straps' results
(`Strap`, from `straps`) returning a `Table` of typed numpy columns. The commands then only choose
columns and formats: `analyze` writes the DESIGN.md CSVs with fixed decimals, `report` writes
CSV, Parquet and HTML.

  sessions     device, infant_id, start, end, duration_min, effective
  daily        device, infant_id, date, kmc_hours, monitored_hours, off_hours, sessions,
               effective_sessions, observed (>= the minimum monitored hours)
  rolling24    device, infant_id, time, kmc_hours_24h, monitored_hours_24h (each full UTC hour)
  day_of_life  device, infant_id, day_of_life, kmc_hours, monitored_hours (roster straps only)
  alerts       device, infant_id, kind, start, end, extreme_c, alert_time, duration_min

Rows come strap by strap in device order, each strap's in time order (alerts: then by kind).
Numbers are rounded here, once, to their column's `digits` and correctly: the decimal nearest the
computed value (Python's `round`, as the gateway rounds its messages and as a fixed-decimal
format writes it), so a fixed-decimal file and a float file show the same number. numpy's
`np.round` is documented as inexact: it scales by 10**digits first, and so gave 7521 s as 125.4
min where the double, 125.34999..., rounds to 125.3.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import DTypeLike, NDArray

from kmc_host.detect import Daily, StrapResult, daily_hours, day_of_life_hours, rolling_24h
from kmc_host.samples import Samples

from .roster import Infant

HOUR_S = 3600.0


@dataclass
class Table:
    """Columns by name (numpy arrays, equal length). `times` are Unix-second columns (ISO 8601
    UTC in CSV, UTC timestamps in Parquet, local time in HTML); `digits` are the decimals each
    rounded float column holds (what a fixed-decimal writer shows)."""

    name: str
    columns: dict[str, Any]
    times: tuple[str, ...] = ()
    digits: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def rows(self) -> Iterator[dict[str, Any]]:
        names = list(self.columns)
        for k in range(len(self)):
            yield {n: self.columns[n][k] for n in names}

    def take(self, order: NDArray[np.intp]) -> Table:
        """The same table with its rows in `order`."""
        cols = {k: np.asarray(v)[order] for k, v in self.columns.items()}
        return Table(self.name, cols, self.times, self.digits)


@dataclass
class Strap:
    """One strap's results and who wore it: what every table is built from."""

    device: str
    infant_id: str  # the roster's, else the InfluxDB tag, else ""
    infant: Infant | None  # the roster's row, if the strap is in the roster
    result: StrapResult
    daily: Daily  # hours per local calendar day of the facility's zone
    trace: Samples | None = None  # the last 24 h of samples (the report's temperature plot)


def straps(
    detected: Mapping[str, tuple[StrapResult, Samples | None]],
    tz: ZoneInfo,
    roster: Mapping[str, Infant] | None = None,
    infant_tags: Mapping[str, str] | None = None,
) -> list[Strap]:
    """`detect_period`'s results as `Strap`s, in device order, with their daily hours in `tz`."""
    roster = roster or {}
    tags = infant_tags or {}
    out = []
    for device in sorted(detected):
        result, trace = detected[device]
        infant = roster.get(device)
        infant_id = infant.infant_id if infant else tags.get(device, "")
        out.append(Strap(device, infant_id, infant, result, daily_hours(result, tz), trace))
    return out


def rounded(x: NDArray[np.float64], digits: int) -> NDArray[np.float64]:
    """Each value correctly rounded to `digits` decimals (Python's `round`; NaN stays NaN).
    Per value: tables have at most a row per strap-hour, and are written per value anyway."""
    values = np.asarray(x, dtype=np.float64).tolist()
    return np.array([round(v, digits) for v in values], dtype=np.float64)


def _table(
    name: str,
    schema: dict[str, DTypeLike],
    parts: list[dict[str, Any]],
    times: tuple[str, ...] = (),
    digits: dict[str, int] | None = None,
) -> Table:
    """The straps' parts joined column by column, each column of its schema type (an empty
    table too), the `digits` columns rounded."""
    digits = digits or {}
    cols = {}
    for k, dtype in schema.items():
        col = np.concatenate([np.asarray(p[k], dtype) for p in parts] or [np.empty(0, dtype)])
        cols[k] = rounded(col, digits[k]) if k in digits else col
    return Table(name, cols, times, digits)


def _ids(s: Strap, n: int) -> dict[str, list[str]]:
    return {"device": [s.device] * n, "infant_id": [s.infant_id] * n}


IDS: dict[str, DTypeLike] = {"device": str, "infant_id": str}
F64, I64 = np.float64, np.int64


def sessions(strap_list: list[Strap]) -> Table:
    """One row per KMC session."""
    parts = []
    for s in strap_list:
        r = s.result
        parts.append(
            _ids(s, r.session_start.size)
            | {
                "start": r.session_start,
                "end": r.session_end,
                "duration_min": (r.session_end - r.session_start) / 60.0,
                "effective": r.session_effective,
            }
        )
    schema = IDS | {"start": F64, "end": F64, "duration_min": F64, "effective": bool}
    return _table("sessions", schema, parts, ("start", "end"), {"duration_min": 1})


def daily(strap_list: list[Strap], min_monitored_hours: float) -> Table:
    """Hours per strap per local calendar day; `observed`: enough data for the coverage."""
    parts = []
    for s in strap_list:
        d = s.daily
        parts.append(
            _ids(s, len(d.dates))
            | {
                "date": [x.isoformat() for x in d.dates],
                "kmc_hours": d.kmc_hours,
                "monitored_hours": d.monitored_hours,
                "off_hours": d.off_hours,
                "sessions": d.sessions,
                "effective_sessions": d.effective_sessions,
                "observed": d.monitored_hours >= min_monitored_hours,
            }
        )
    hours = ("kmc_hours", "monitored_hours", "off_hours")
    schema = (
        IDS
        | {"date": str}
        | dict.fromkeys(hours, F64)
        | {"sessions": I64, "effective_sessions": I64, "observed": bool}
    )
    return _table("daily", schema, parts, digits=dict.fromkeys(hours, 3))


def rolling24(strap_list: list[Strap]) -> Table:
    """KMC and monitored hours in the 24 h before each full UTC hour of a strap's data."""
    parts = []
    for s in strap_list:
        r = s.result
        if r.monitored_start.size == 0:
            continue
        first, last = np.ceil(r.monitored_start[0] / HOUR_S), np.floor(r.monitored_end[-1] / HOUR_S)
        hours = HOUR_S * np.arange(first, last + 1)
        kmc, mon = rolling_24h(r, hours)
        parts.append(
            _ids(s, hours.size) | {"time": hours, "kmc_hours_24h": kmc, "monitored_hours_24h": mon}
        )
    columns = ("kmc_hours_24h", "monitored_hours_24h")
    schema = IDS | {"time": F64} | dict.fromkeys(columns, F64)
    return _table("rolling24", schema, parts, ("time",), dict.fromkeys(columns, 3))


def day_of_life(strap_list: list[Strap]) -> Table:
    """Hours per day of life (day 1: the first 24 h after birth) of the straps in the roster."""
    parts = []
    for s in strap_list:
        if s.infant is None:
            continue
        days, kmc, mon = day_of_life_hours(s.result, s.infant.birth_time)
        parts.append(
            _ids(s, days.size) | {"day_of_life": days, "kmc_hours": kmc, "monitored_hours": mon}
        )
    columns = ("kmc_hours", "monitored_hours")
    schema = IDS | {"day_of_life": I64} | dict.fromkeys(columns, F64)
    return _table("day_of_life", schema, parts, digits=dict.fromkeys(columns, 3))


def alerts(strap_list: list[Strap]) -> Table:
    """One row per alert episode (nested bands each their own), each strap's by start, then
    kind."""
    parts = []
    for s in strap_list:
        kinds = [(k, e) for k, e in s.result.episodes.items() if len(e)]
        if not kinds:
            continue
        kind = np.concatenate([[k] * len(e) for k, e in kinds])
        start = np.concatenate([e.start for _, e in kinds])
        end = np.concatenate([e.end for _, e in kinds])
        order = np.lexsort((kind, start))
        parts.append(
            _ids(s, kind.size)
            | {
                "kind": kind[order],
                "start": start[order],
                "end": end[order],
                "extreme_c": np.concatenate([e.extreme for _, e in kinds])[order],
                "alert_time": np.concatenate([e.alert_time for _, e in kinds])[order],
                "duration_min": (end - start)[order] / 60.0,
            }
        )
    schema = (
        IDS
        | {"kind": str}
        | dict.fromkeys(("start", "end", "extreme_c", "alert_time", "duration_min"), F64)
    )
    times = ("start", "end", "alert_time")
    return _table("alerts", schema, parts, times, {"extreme_c": 2, "duration_min": 1})
