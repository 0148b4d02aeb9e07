"""`kmc analyze`: a samples file in, the DESIGN.md output files and a human summary out.

The file is streamed through one incremental detector per strap (the same detector the live
gateway runs), so memory stays flat for a ward-month; when the whole file has been read and
checked, the outputs are written, from the tables `kmc report` also gives (tables.py) in these
columns, numbers with fixed decimals:
  sessions.csv  device,start,end,duration_min[,effective]
  daily.csv     device,date,kmc_hours,monitored_hours[,off_hours,sessions,effective_sessions]
  alerts.csv    device,kind,start,end,extreme_c[,alert_time,duration_min]
  rolling24.csv device,time,kmc_hours_24h,monitored_hours_24h   (at each full UTC hour)
and with a roster also
  day_of_life.csv  device,infant_id,day_of_life,kmc_hours,monitored_hours
  coverage.csv     per infant and per cohort (see coverage.py)
and settings.json, the detector settings all of them were made with (settings.py: the digest,
the config file or "defaults", every value), which the summary's first lines name too; the CSVs
keep the DESIGN.md columns and nothing above their header.
Rows go strap by strap. Times are ISO 8601 UTC; dates are local calendar dates of the facility's
time zone.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmc_host.detect import zone
from kmc_host.timefmt import iso_utc_array

from . import tables
from .alarm_load import AlarmLoad, alarm_load
from .coverage import (
    DEFAULT_MIN_MONITORED_H,
    InfantCoverage,
    cohort_coverage,
    coverage_rows,
    infant_coverage,
)
from .detection import detect_period
from .roster import Infant, load_roster
from .samples_io import LoadReport, SampleReader
from .settings import Settings
from .tables import Strap, Table

SESSIONS_HEADER = ["device", "start", "end", "duration_min", "effective"]
DAILY_HEADER = [
    "device",
    "date",
    "kmc_hours",
    "monitored_hours",
    "off_hours",
    "sessions",
    "effective_sessions",
]
ALERTS_HEADER = ["device", "kind", "start", "end", "extreme_c", "alert_time", "duration_min"]
ROLLING_HEADER = ["device", "time", "kmc_hours_24h", "monitored_hours_24h"]
DOL_HEADER = ["device", "infant_id", "day_of_life", "kmc_hours", "monitored_hours"]


@dataclass
class StrapSummary:
    device: str
    samples: int
    days: int
    kmc_hours_per_day: float
    monitored_hours_per_day: float
    sessions: int
    effective_sessions: int
    alerts: Counter[str] = field(default_factory=Counter)


@dataclass
class AnalysisSummary:
    load: LoadReport
    tz: str
    settings: Settings
    straps: list[StrapSummary] = field(default_factory=list)
    infants: list[InfantCoverage] = field(default_factory=list)
    not_in_roster: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    alarms: AlarmLoad | None = None

    def lines(self) -> list[str]:
        """The short human summary `kmc analyze` prints."""
        out = list(self.load.lines())
        out.append(self.settings.line())
        out.append(f"time zone {self.tz}; per strap:")
        out.append(
            f"  {'strap':<12} {'days':>4} {'KMC h/day':>9} {'data h/day':>10} {'sessions':>8} "
            f"{'>=60min':>7}  alerts"
        )
        for s in self.straps:
            alerts = ", ".join(f"{k} {n}" for k, n in sorted(s.alerts.items())) or "none"
            out.append(
                f"  {s.device:<12} {s.days:>4} {s.kmc_hours_per_day:>9.1f} "
                f"{s.monitored_hours_per_day:>10.1f} {s.sessions:>8} {s.effective_sessions:>7}  {alerts}"
            )
        if self.alarms is not None:
            out.append(self.alarms.line())
        if self.infants:
            c = cohort_coverage(self.infants)
            shares = ", ".join(
                f">= {b:g} h: {100 * v:.0f}%"
                for b, v in c.share_infants_reaching.items()
                if not np.isnan(v)
            )
            out.append(
                f"coverage: {c.eligible_infants} eligible infants (< 2000 g) with {c.infant_days} "
                f"observed days; infants reaching {shares or 'n/a'}"
            )
        if self.not_in_roster:
            out.append(f"  not in roster (no coverage): {', '.join(self.not_in_roster)}")
        out.append("wrote " + ", ".join(p.name for p in self.files))
        return out


def analyze_file(
    samples_path: str | Path,
    out_dir: str | Path,
    *,
    tz: str = "UTC",
    roster_path: str | Path | None = None,
    skip_invalid: bool = False,
    settings: Settings | None = None,
    min_monitored_hours: float = DEFAULT_MIN_MONITORED_H,
) -> AnalysisSummary:
    """Run `kmc analyze` with `settings` (None: the defaults, named so in settings.json);
    errors in the inputs raise `SamplesFileError` before any output."""
    settings = settings or Settings()
    cfg = settings.detector
    zone_info = zone(tz)
    roster: dict[str, Infant] = load_roster(roster_path) if roster_path else {}
    out = Path(out_dir)
    reader = SampleReader(samples_path, skip_invalid=skip_invalid)
    detected = reader.consume(lambda chunks: detect_period(chunks, cfg, keep_trace=False))
    straps = tables.straps(detected, zone_info, roster)
    summary = AnalysisSummary(reader.report, tz, settings, alarms=alarm_load(straps))
    for s in straps:
        summary.straps.append(_strap_summary(s))
        if s.infant is not None:
            d = s.daily
            summary.infants.append(
                infant_coverage(
                    s.infant.infant_id,
                    s.device,
                    s.infant.birth_weight_g,
                    d.kmc_hours,
                    d.monitored_hours,
                    min_monitored_hours,
                )
            )
        elif roster:
            summary.not_in_roster.append(s.device)
    files = [
        (tables.sessions(straps), SESSIONS_HEADER),
        (tables.daily(straps, min_monitored_hours), DAILY_HEADER),
        (tables.alerts(straps), ALERTS_HEADER),
        (tables.rolling24(straps), ROLLING_HEADER),
    ]
    if roster_path is not None:
        files.append((tables.day_of_life(straps), DOL_HEADER))
    out.mkdir(parents=True, exist_ok=True)
    for table, columns in files:
        summary.files.append(_write_csv(out / f"{table.name}.csv", table, columns))
    if roster_path is not None:
        header, rows = coverage_rows(summary.infants)
        path = out / "coverage.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        summary.files.append(path)
    summary.files.append(settings.write(out))
    return summary


def _cells(table: Table, name: str) -> list[object]:
    """One column as analyze writes it: times ISO 8601 UTC, rounded numbers with their fixed
    decimals, flags 0/1, no value an empty cell."""
    v = table.columns[name]
    if name in table.times:
        return list(iso_utc_array(v).tolist())
    if name in table.digits:
        d = table.digits[name]
        return ["" if math.isnan(x) else f"{x:.{d}f}" for x in v.tolist()]
    if v.dtype == bool:
        return list(v.astype(int).tolist())
    return list(v.tolist())


def _write_csv(path: Path, table: Table, columns: list[str]) -> Path:
    cells = [_cells(table, c) for c in columns]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(zip(*cells, strict=True))
    return path


def _strap_summary(s: Strap) -> StrapSummary:
    r, d = s.result, s.daily
    n_days = len(d.dates)
    return StrapSummary(
        s.device,
        r.samples,
        n_days,
        float(d.kmc_hours.mean()) if n_days else 0.0,
        float(d.monitored_hours.mean()) if n_days else 0.0,
        int(r.session_start.size),
        int(r.session_effective.sum()),
        Counter({k: len(e) for k, e in r.episodes.items() if len(e)}),
    )
