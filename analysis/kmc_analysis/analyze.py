"""`kmc analyze`: a samples file in, the DESIGN.md output files and a human summary out.

The file is streamed through one incremental detector per strap (the same detector the live
gateway runs), so memory stays flat for a ward-month; when the whole file has been read and
checked, the outputs are written:
  sessions.csv  device,start,end,duration_min[,effective]
  daily.csv     device,date,kmc_hours,monitored_hours[,off_hours,sessions,effective_sessions]
  alerts.csv    device,kind,start,end,extreme_c[,alert_time,duration_min]
  rolling24.csv device,time,kmc_hours_24h,monitored_hours_24h   (at each full UTC hour)
and with a roster also
  day_of_life.csv  device,infant_id,day_of_life,kmc_hours,monitored_hours
  coverage.csv     per infant and per cohort (see coverage.py)
Times are ISO 8601 UTC; dates are local calendar dates of the facility's time zone.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from kmc_host.detect import (
    Daily,
    DetectorConfig,
    StrapResult,
    daily_hours,
    day_of_life_hours,
    rolling_24h,
    zone,
)
from kmc_host.timefmt import iso_utc_array

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


def _fmt(x: NDArray[np.float64], digits: int) -> list[str]:
    return ["" if np.isnan(v) else f"{v:.{digits}f}" for v in x.tolist()]


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
    straps: list[StrapSummary] = field(default_factory=list)
    infants: list[InfantCoverage] = field(default_factory=list)
    not_in_roster: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The short human summary `kmc analyze` prints."""
        out = list(self.load.lines())
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


class _Writers:
    """The output CSV files, written strap by strap."""

    def __init__(self, out_dir: Path, with_roster: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._files: list[IO[str]] = []
        self.paths: list[Path] = []
        self.sessions = self._open(out_dir / "sessions.csv", SESSIONS_HEADER)
        self.daily = self._open(out_dir / "daily.csv", DAILY_HEADER)
        self.alerts = self._open(out_dir / "alerts.csv", ALERTS_HEADER)
        self.rolling = self._open(out_dir / "rolling24.csv", ROLLING_HEADER)
        self.dol = self._open(out_dir / "day_of_life.csv", DOL_HEADER) if with_roster else None

    def _open(self, path: Path, header: list[str]) -> Any:
        fh = path.open("w", newline="")
        self._files.append(fh)
        self.paths.append(path)
        w = csv.writer(fh)
        w.writerow(header)
        return w

    def close(self) -> None:
        for fh in self._files:
            fh.close()


def analyze_file(
    samples_path: str | Path,
    out_dir: str | Path,
    *,
    tz: str = "UTC",
    roster_path: str | Path | None = None,
    skip_invalid: bool = False,
    config: DetectorConfig | None = None,
    min_monitored_hours: float = DEFAULT_MIN_MONITORED_H,
) -> AnalysisSummary:
    """Run `kmc analyze`; errors in the inputs raise `SamplesFileError` before any output."""
    cfg = config or DetectorConfig()
    zone_info = zone(tz)
    roster: dict[str, Infant] = load_roster(roster_path) if roster_path else {}
    out = Path(out_dir)
    reader = SampleReader(samples_path, skip_invalid=skip_invalid)
    detected = reader.consume(lambda chunks: detect_period(chunks, cfg, keep_trace=False))
    results = {device: result for device, (result, _) in detected.items()}
    summary = AnalysisSummary(reader.report, tz)
    writers = _Writers(out, roster_path is not None)
    try:
        for device in sorted(results):
            result = results[device]
            daily = daily_hours(result, zone_info)
            summary.straps.append(_write_strap(writers, result, daily))
            infant = roster.get(device)
            if infant is not None:
                summary.infants.append(
                    _write_infant(writers, result, daily, infant, min_monitored_hours)
                )
            elif roster:
                summary.not_in_roster.append(device)
    finally:
        writers.close()
    summary.files = list(writers.paths)
    if roster_path is not None:
        header, rows = coverage_rows(summary.infants)
        path = out / "coverage.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(header)
            w.writerows(rows)
        summary.files.append(path)
    return summary


def _write_strap(w: _Writers, r: StrapResult, daily: Daily) -> StrapSummary:
    dur = (r.session_end - r.session_start) / 60.0
    eff = r.session_effective
    for row in zip(
        [r.device] * dur.size,
        iso_utc_array(r.session_start),
        iso_utc_array(r.session_end),
        _fmt(dur, 1),
        eff.astype(int).tolist(),
        strict=True,
    ):
        w.sessions.writerow(row)

    for k, date in enumerate(daily.dates):
        w.daily.writerow(
            [
                r.device,
                date.isoformat(),
                f"{daily.kmc_hours[k]:.3f}",
                f"{daily.monitored_hours[k]:.3f}",
                f"{daily.off_hours[k]:.3f}",
                int(daily.sessions[k]),
                int(daily.effective_sessions[k]),
            ]
        )

    kinds = [(k, e) for k, e in r.episodes.items() if len(e)]
    alerts: Counter[str] = Counter({k: len(e) for k, e in kinds})
    if kinds:
        kind = np.concatenate([[k] * len(e) for k, e in kinds])
        start = np.concatenate([e.start for _, e in kinds])
        end = np.concatenate([e.end for _, e in kinds])
        ext = np.concatenate([e.extreme for _, e in kinds])
        at = np.concatenate([e.alert_time for _, e in kinds])
        order = np.lexsort((kind, start))
        for row in zip(
            [r.device] * order.size,
            kind[order].tolist(),
            iso_utc_array(start[order]),
            iso_utc_array(end[order]),
            _fmt(ext[order], 2),
            iso_utc_array(at[order]),
            _fmt((end - start)[order] / 60.0, 1),
            strict=True,
        ):
            w.alerts.writerow(row)

    if r.monitored_start.size:
        hours = (
            np.arange(
                np.ceil(r.monitored_start[0] / 3600.0), np.floor(r.monitored_end[-1] / 3600.0) + 1
            )
            * 3600.0
        )
        kmc24, mon24 = rolling_24h(r, hours)
        for hour_row in zip(
            [r.device] * hours.size,
            iso_utc_array(hours),
            _fmt(kmc24, 3),
            _fmt(mon24, 3),
            strict=True,
        ):
            w.rolling.writerow(hour_row)

    n_days = len(daily.dates)
    return StrapSummary(
        r.device,
        r.samples,
        n_days,
        float(daily.kmc_hours.mean()) if n_days else 0.0,
        float(daily.monitored_hours.mean()) if n_days else 0.0,
        int(r.session_start.size),
        int(eff.sum()),
        alerts,
    )


def _write_infant(
    w: _Writers, r: StrapResult, daily: Daily, infant: Infant, min_monitored_hours: float
) -> InfantCoverage:
    days, kmc, mon = day_of_life_hours(r, infant.birth_time)
    assert w.dol is not None
    for k in range(days.size):
        w.dol.writerow([r.device, infant.infant_id, int(days[k]), f"{kmc[k]:.3f}", f"{mon[k]:.3f}"])
    return infant_coverage(
        infant.infant_id,
        r.device,
        infant.birth_weight_g,
        daily.kmc_hours,
        daily.monitored_hours,
        min_monitored_hours,
    )
