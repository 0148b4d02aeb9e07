"""Scoring detector output against the simulator's ground truth.

Used by the tests (across many seeds) and by `kmc demo` to show how well the detector did.
The criteria are those the team agreed for the detector:
- sessions: each truth session matched by one detected session with both edges within
  `edge_tol_s` (default 3 min), and no detected session without a truth partner;
- daily hours: |detected - truth| KMC hours per local day within `hours_tol` (0.25 h);
- cold episodes of at least `min_cold_s` (6 min): an alert of the same kind starting within
  `edge_tol_s` of the truth start;
- false thermal alerts: every detected thermal episode must match a truth episode of the same
  kind on the same strap (its start no earlier than `edge_tol_s` before the truth start and no
  later than the truth end), wherever it is; those that start within `settle_window_s` after a
  strap goes back on are also counted apart (`false_after_reattach`), as the re-attachment
  criterion (no thermal alert while the sensor settles).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kmc_host.clinical import COLD, STRAP_OFF, THERMAL

from .samples_io import parse_time_value


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@dataclass
class Score:
    truth_sessions: int = 0
    matched_sessions: int = 0
    extra_sessions: int = 0
    worst_edge_s: float = 0.0
    days: int = 0
    days_within: int = 0
    worst_day_h: float = 0.0
    cold_episodes: int = 0
    cold_alerted: int = 0
    worst_alert_delay_s: float = 0.0
    detected_thermal: int = 0
    false_thermal: int = 0
    reattachments: int = 0
    false_after_reattach: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def perfect(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [
            f"sessions matched {self.matched_sessions}/{self.truth_sessions} "
            f"(extra {self.extra_sessions}, worst edge {self.worst_edge_s / 60:.1f} min)",
            f"daily KMC hours within tolerance {self.days_within}/{self.days} "
            f"(worst {self.worst_day_h:.3f} h)",
            f"cold episodes >= 6 min alerted {self.cold_alerted}/{self.cold_episodes} "
            f"(worst delay {self.worst_alert_delay_s / 60:.1f} min)",
            f"false thermal alerts {self.false_thermal}/{self.detected_thermal}, "
            f"of which after {self.reattachments} re-attachments: {self.false_after_reattach}",
        ]


def score(
    truth_dir: Path,
    out_dir: Path,
    *,
    edge_tol_s: float = 180.0,
    hours_tol: float = 0.25,
    min_cold_s: float = 360.0,
    settle_window_s: float = 600.0,
) -> Score:
    """Compare `kmc analyze` output in `out_dir` with the simulator's truth in `truth_dir`."""
    sc = Score()
    ts, ds = _read(truth_dir / "sessions.csv"), _read(out_dir / "sessions.csv")
    for dev in sorted({r["device"] for r in ts} | {r["device"] for r in ds}):
        t = np.array(
            [
                [parse_time_value(r["start"]), parse_time_value(r["end"])]
                for r in ts
                if r["device"] == dev
            ]
        ).reshape(-1, 2)
        d = np.array(
            [
                [parse_time_value(r["start"]), parse_time_value(r["end"])]
                for r in ds
                if r["device"] == dev
            ]
        ).reshape(-1, 2)
        used = np.zeros(len(d), bool)
        for a, b in t:
            sc.truth_sessions += 1
            err = np.maximum(np.abs(d[:, 0] - a), np.abs(d[:, 1] - b)) if len(d) else np.empty(0)
            ok = np.flatnonzero((err <= edge_tol_s) & ~used)
            if ok.size:
                used[ok[0]] = True
                sc.matched_sessions += 1
                sc.worst_edge_s = max(sc.worst_edge_s, float(err[ok[0]]))
            else:
                sc.problems.append(f"{dev}: truth session {a:.0f}-{b:.0f} not matched")
        sc.extra_sessions += int((~used).sum())
        for a, b in d[~used]:
            sc.problems.append(f"{dev}: detected session {a:.0f}-{b:.0f} has no truth partner")

    truth_days = {
        (r["device"], r["date"]): float(r["kmc_hours"]) for r in _read(truth_dir / "daily.csv")
    }
    det_days = {
        (r["device"], r["date"]): float(r["kmc_hours"]) for r in _read(out_dir / "daily.csv")
    }
    for key, hours in truth_days.items():
        sc.days += 1
        diff = abs(det_days.get(key, 0.0) - hours)
        sc.worst_day_h = max(sc.worst_day_h, diff)
        if diff <= hours_tol:
            sc.days_within += 1
        else:
            sc.problems.append(f"{key}: KMC hours {det_days.get(key)} vs truth {hours}")

    ta, da = _read(truth_dir / "alerts.csv"), _read(out_dir / "alerts.csv")
    det: dict[tuple[str, str], list[float]] = {}
    for r in da:
        det.setdefault((r["device"], r["kind"]), []).append(parse_time_value(r["start"]))
    for r in ta:
        if r["kind"] not in COLD:
            continue
        a, b = parse_time_value(r["start"]), parse_time_value(r["end"])
        if b - a < min_cold_s:
            continue
        sc.cold_episodes += 1
        starts = np.array(det.get((r["device"], r["kind"]), []))
        delay = np.abs(starts - a) if starts.size else np.empty(0)
        if delay.size and delay.min() <= edge_tol_s:
            sc.cold_alerted += 1
            sc.worst_alert_delay_s = max(sc.worst_alert_delay_s, float(delay.min()))
        else:
            sc.problems.append(f"{r['device']}: {r['kind']} from {r['start']} not alerted")
    truth_thermal: dict[tuple[str, str], list[tuple[float, float]]] = {}
    put_back_on: dict[str, list[float]] = {}
    for r in ta:
        a, b = parse_time_value(r["start"]), parse_time_value(r["end"])
        if r["kind"] in THERMAL:
            truth_thermal.setdefault((r["device"], r["kind"]), []).append((a, b))
        elif r["kind"] == STRAP_OFF:
            sc.reattachments += 1
            put_back_on.setdefault(r["device"], []).append(b)
    for d_ in da:
        if d_["kind"] not in THERMAL:
            continue
        sc.detected_thermal += 1
        s = parse_time_value(d_["start"])
        truth = truth_thermal.get((d_["device"], d_["kind"]), [])
        if any(a - edge_tol_s <= s <= b for a, b in truth):
            continue
        sc.false_thermal += 1
        where = "no truth episode"
        if any(on <= s <= on + settle_window_s for on in put_back_on.get(d_["device"], [])):
            sc.false_after_reattach += 1
            where = "right after re-attachment"
        sc.problems.append(f"{d_['device']}: false {d_['kind']} at {d_['start']} ({where})")
    return sc
