"""`kmc report`: the researchers' and programme managers' report for a period, site and ward.

Samples (from a file, or read back from InfluxDB by `sources.influx_chunks`) go through the same
incremental detector as the gateway and `kmc analyze`; the results become tables, the first five
built by tables.py for both commands (here with every column, alerts in time order across straps):

  sessions       one row per KMC session
  daily          KMC and monitored hours per infant per local calendar day (+ `observed`)
  rolling24      KMC hours in the 24 h before each full hour
  day_of_life    hours per day of life (needs the roster's birth time)
  alerts         one row per alert episode
  infants        per infant: hours, sessions, coverage bands, time from admission to first KMC,
                 thermal alerts per baby-day
  cohort         the ward's indicators over eligible infants (< 2000 g): share reaching 8/18/20 h
                 (coverage.cohort_coverage, as analyze's coverage.csv), median hours from
                 admission to first KMC, thermal alerts per baby-day
  ward_coverage  per date: eligible infants observed and the share meeting 8/18/20 h

Each table is written as CSV and Parquet (`write_tables`); `report_html.write_html` turns the same
tables into a self-contained HTML page with plots. Definitions: coverage.py and docs/report.md.
The detector settings (`Report.settings`: a ward's `[detector]`, or the defaults) are those of the
detection, of the thermal counts here and of the page's temperature lines; the Parquet files carry
their digest and values in their schema metadata, the page in its method paragraph.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kmc_host.clinical import STRAP_OFF
from kmc_host.detect import DetectorConfig, StrapResult, zone
from kmc_host.errors import BadInput
from kmc_host.samples import Samples
from kmc_host.timefmt import iso_utc_array

from . import tables
from .coverage import (
    BANDS_H,
    DEFAULT_MIN_MONITORED_H,
    ELIGIBLE_BELOW_G,
    InfantCoverage,
    cohort_coverage,
    infant_coverage,
)
from .detection import detect_period
from .roster import Infant
from .settings import Settings
from .tables import Strap, Table

DAY_S = 86400.0


@dataclass
class Report:
    title: str
    site: str
    ward: str
    tz: str
    period: tuple[float, float] | None
    source: str
    settings: Settings
    min_monitored_hours: float
    straps: list[Strap]
    tables: dict[str, Table] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    has_roster: bool = False

    @property
    def config(self) -> DetectorConfig:
        return self.settings.detector

    def thermal_kinds(self) -> list[str]:
        """The kinds of the detector's thermal bands (the WHO four): what `thermal_alerts`
        counts."""
        return [b.kind for b in self.config.thermal_bands]


# -- the report


def build_report(
    detected: dict[str, tuple[StrapResult, Samples | None]],
    *,
    tz: str = "UTC",
    roster: dict[str, Infant] | None = None,
    infant_tags: dict[str, str] | None = None,
    site: str = "",
    ward: str = "",
    period: tuple[float, float] | None = None,
    source: str = "",
    settings: Settings | None = None,
    min_monitored_hours: float = DEFAULT_MIN_MONITORED_H,
) -> Report:
    """The report of what `detect_period` found with `settings` (None: the defaults)."""
    roster = roster or {}
    straps = tables.straps(detected, zone(tz), roster, infant_tags)
    title = "KMC report" + (f": {site}" if site else "") + (f" / {ward}" if ward else "")
    rep = Report(
        title,
        site,
        ward,
        tz,
        period,
        source,
        settings or Settings(),
        min_monitored_hours,
        straps,
        has_roster=bool(roster),
    )
    if roster:
        missing = sorted(set(detected) - set(roster))
        if missing:
            rep.notes.append(f"straps not in the roster (no coverage): {', '.join(missing)}")
    else:
        rep.notes.append(
            "no roster: birth weights unknown, so every strap counts in the cohort indicators"
        )
    alerts = tables.alerts(straps)  # strap by strap; the report's are in time order instead
    by_time = np.lexsort((alerts.columns["kind"], alerts.columns["start"]))  # stable
    rep.tables = {
        t.name: t
        for t in (
            tables.sessions(straps),
            tables.daily(straps, min_monitored_hours),
            tables.rolling24(straps),
            tables.day_of_life(straps),
            alerts.take(by_time),
        )
    }
    infants, coverage = _infants(straps, min_monitored_hours, bool(roster), rep.thermal_kinds())
    rep.tables["infants"] = infants
    rep.tables["cohort"] = _cohort(infants, coverage)
    rep.tables["ward_coverage"] = _ward_coverage(rep.tables["daily"], infants)
    return rep


def _infants(
    straps: list[Strap], min_h: float, with_roster: bool, thermal_kinds: list[str]
) -> tuple[Table, list[InfantCoverage]]:
    """Per infant: the `infants` table and the coverage indicators the cohort is built from
    (without a roster every strap counts as eligible); `thermal_alerts` counts the episodes of
    `thermal_kinds`."""
    coverage = []
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "device",
            "infant_id",
            "birth_weight_g",
            "eligible",
            "days",
            "observed_days",
            "mean_kmc_hours",
            "mean_monitored_hours",
            "sessions",
            "effective_sessions",
            *(f"days_ge_{b:g}h" for b in BANDS_H),
            *(f"reaches_{b:g}h" for b in BANDS_H),
            "admission_time",
            "admission_from",
            "first_kmc",
            "hours_to_first_kmc",
            "baby_days",
            "thermal_alerts",
            "thermal_alerts_per_baby_day",
            "strap_off_alerts",
        )
    }
    for s in straps:
        if with_roster and s.infant is None:
            continue
        r, d = s.result, s.daily
        weight = s.infant.birth_weight_g if s.infant else np.nan
        cov = infant_coverage(s.infant_id, s.device, weight, d.kmc_hours, d.monitored_hours, min_h)
        if s.infant is None:
            cov = replace(cov, eligible=True)
        coverage.append(cov)
        first_data = float(r.monitored_start[0]) if r.monitored_start.size else np.nan
        if s.infant is not None and s.infant.admission_time is not None:
            admitted, source = s.infant.admission_time, "roster"
        else:
            admitted, source = first_data, "first data"
        first_kmc = float(r.session_start[0]) if r.session_start.size else np.nan
        baby_days = float(d.monitored_hours.sum()) / 24.0
        thermal = sum(len(r.episodes[k]) for k in thermal_kinds if k in r.episodes)
        cols["device"].append(s.device)
        cols["infant_id"].append(s.infant_id)
        cols["birth_weight_g"].append(weight)
        cols["eligible"].append(bool(cov.eligible))
        cols["days"].append(len(d.dates))
        cols["observed_days"].append(cov.observed_days)
        cols["mean_kmc_hours"].append(round(cov.mean_kmc_hours, 3))
        observed = d.monitored_hours >= min_h
        cols["mean_monitored_hours"].append(
            round(float(d.monitored_hours[observed].mean()), 3) if observed.any() else np.nan
        )
        cols["sessions"].append(int(r.session_start.size))
        cols["effective_sessions"].append(int(r.session_effective.sum()))
        for b in BANDS_H:
            cols[f"days_ge_{b:g}h"].append(cov.days_meeting[b])
            cols[f"reaches_{b:g}h"].append(cov.reaches(b))
        cols["admission_time"].append(admitted)
        cols["admission_from"].append(source)
        cols["first_kmc"].append(first_kmc)
        cols["hours_to_first_kmc"].append(round((first_kmc - admitted) / 3600.0, 2))
        cols["baby_days"].append(round(baby_days, 3))
        cols["thermal_alerts"].append(thermal)
        cols["thermal_alerts_per_baby_day"].append(
            round(thermal / baby_days, 3) if baby_days > 0 else np.nan
        )
        cols["strap_off_alerts"].append(len(r.episodes.get(STRAP_OFF, ())))
    arrays = {
        k: np.asarray(v, dtype=object if k in ("device", "infant_id", "admission_from") else None)
        for k, v in cols.items()
    }
    return Table("infants", arrays, ("admission_time", "first_kmc")), coverage


def _cohort(infants: Table, coverage: list[InfantCoverage]) -> Table:
    """The ward's indicators over eligible infants with an observed day: the coverage ones as
    `kmc analyze` computes them (`cohort_coverage`), then time to first KMC and alert rates."""
    cov = cohort_coverage(coverage)
    row: dict[str, Any] = {
        "eligible_infants": cov.eligible_infants,
        "infant_days": cov.infant_days,
        "mean_kmc_hours": round(cov.mean_kmc_hours, 3),
    }
    for b in BANDS_H:
        row[f"share_infants_reaching_{b:g}h"] = round(cov.share_infants_reaching[b], 3)
        row[f"share_days_ge_{b:g}h"] = round(cov.share_days_meeting[b], 3)
    c = infants.columns
    counted = (
        np.asarray(c["eligible"], bool) & (np.asarray(c["observed_days"], np.int64) > 0)
        if len(infants)
        else np.empty(0, bool)
    )
    n = int(counted.sum())
    to_kmc = np.asarray(c["hours_to_first_kmc"], float)[counted]
    to_kmc = to_kmc[np.isfinite(to_kmc)]
    row["median_hours_to_first_kmc"] = round(float(np.median(to_kmc)), 2) if to_kmc.size else np.nan
    row["infants_with_kmc"] = int(to_kmc.size)
    baby_days = float(np.asarray(c["baby_days"], float)[counted].sum()) if n else 0.0
    thermal = int(np.asarray(c["thermal_alerts"], np.int64)[counted].sum()) if n else 0
    row["baby_days"] = round(baby_days, 2)
    row["thermal_alerts"] = thermal
    row["thermal_alerts_per_baby_day"] = round(thermal / baby_days, 3) if baby_days else np.nan
    return Table("cohort", {k: np.asarray([v]) for k, v in row.items()})


def _ward_coverage(daily: Table, infants: Table) -> Table:
    """Per local date: eligible infants with an observed day, their mean KMC hours and the share
    meeting each band: the ward's coverage over time."""
    elig = {
        str(d)
        for d, e in zip(infants.columns["device"], infants.columns["eligible"], strict=True)
        if e
    }
    c = daily.columns
    if len(daily):
        keep = np.isin(
            np.asarray(c["device"], dtype=object).astype(str), sorted(elig)
        ) & np.asarray(c["observed"], bool)
        dates = np.asarray(c["date"], dtype=object)[keep].astype(str)
        kmc = np.asarray(c["kmc_hours"], float)[keep]
    else:
        dates, kmc = np.empty(0, str), np.empty(0)
    uniq, inv = np.unique(dates, return_inverse=True)
    n = np.bincount(inv, minlength=uniq.size)
    cols: dict[str, Any] = {
        "date": uniq.astype(object),
        "eligible_infants_observed": n,
        "mean_kmc_hours": np.round(np.bincount(inv, kmc, uniq.size) / np.maximum(n, 1), 3),
    }
    for b in BANDS_H:
        met = np.bincount(inv, (kmc >= b).astype(float), uniq.size)
        cols[f"share_ge_{b:g}h"] = np.round(met / np.maximum(n, 1), 3)
    return Table("ward_coverage", cols)


# -- output files


def _csv_value(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return "" if np.isnan(v) else v
    if isinstance(v, np.bool_ | bool):
        return int(v)
    return v


PARQUET_DIGEST = b"kmc_sense.detector_digest"
PARQUET_SETTINGS = b"kmc_sense.detector_settings"


def write_tables(rep: Report, out: Path) -> list[Path]:
    """Every table as `<name>.csv` and `<name>.parquet`; each Parquet file names the detector
    settings in its schema metadata (the digest, and settings.json's record as JSON): CSV has no
    place for it that every reader skips."""
    out.mkdir(parents=True, exist_ok=True)
    metadata = {
        PARQUET_DIGEST: rep.settings.digest.encode(),
        PARQUET_SETTINGS: json.dumps(rep.settings.record()).encode(),
    }
    written = []
    for table in rep.tables.values():
        columns = dict(table.columns)
        csv_cols = {  # NaN times are empty cells
            k: (iso_utc_array(v).tolist() if k in table.times else list(v))
            for k, v in columns.items()
        }
        path = out / f"{table.name}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(list(columns))
            names = list(csv_cols)
            for row in range(len(table)):
                w.writerow([_csv_value(csv_cols[n][row]) for n in names])
        written.append(path)
        arrays = {}
        for k, v in columns.items():
            if k in table.times:
                t = np.asarray(v, float)
                ms = np.where(np.isnan(t), 0, np.round(t * 1000)).astype(np.int64)
                arrays[k] = pa.array(ms, pa.timestamp("ms", tz="UTC"), mask=np.isnan(t))
            elif np.asarray(v).dtype == object or np.asarray(v).dtype.kind in "US":
                arrays[k] = pa.array([str(x) for x in v], pa.string())
            else:
                arrays[k] = pa.array(np.asarray(v))
        path = out / f"{table.name}.parquet"
        pq.write_table(pa.table(arrays).replace_schema_metadata(metadata), path)
        written.append(path)
    return written


def period_from_dates(first: str | None, last: str | None, tz: str) -> tuple[float, float] | None:
    """`--from 2026-07-01 --to 2026-07-07`: local dates, both included, as [start, end) UTC."""
    if first is None and last is None:
        return None
    zi = zone(tz)

    def midnight(text: str, what: str, days_after: int = 0) -> float:
        try:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=days_after)
        except ValueError:
            raise BadInput(f"{what} {text!r} is not a date (YYYY-MM-DD)") from None
        return dt.datetime.combine(day, dt.time(0), tzinfo=zi).timestamp()

    start = midnight(first, "--from") if first else -np.inf
    end = midnight(last, "--to", 1) if last else np.inf  # a DST day has 23 or 25 hours
    if end <= start:
        raise BadInput("--to is before --from")
    return float(start), float(end)


__all__ = [
    "ELIGIBLE_BELOW_G",
    "Report",
    "Table",
    "build_report",
    "detect_period",
    "period_from_dates",
    "write_tables",
]
