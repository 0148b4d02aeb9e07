"""`kmc validate SAMPLES OBSERVER_LOG.csv`: does the strap agree with a human observer?

Units that adopt the strap validate it first against direct observation: an observer (or the
ward's KMC register, time-stamped) logs when each baby's skin-to-skin session started and ended.
This compares those with the sessions the detector finds in the same babies' samples:

- session level: each observed session is paired with the detected session that overlaps it
  most (one-to-one, largest overlap first); the start and end errors are detected minus observed,
  in minutes (positive: the strap was late). Observed sessions with no partner are missed;
  detected ones with no partner, on days the observer covered, are extra.
- time level: the share of observed KMC time the strap also called KMC (sensitivity) and the
  share of the strap's KMC time the observer also logged (positive predictive value).
- day level: KMC hours per infant per local day from each source, and Bland-Altman agreement of
  the differences (detected - observed): bias, SD and 95 % limits of agreement (bias +- 1.96 SD).

The observer log: `device,start,end` (or `infant_id,start,end` with a roster to map infants to
straps); times in ISO 8601 with offset or Unix seconds. Only days present in the log count:
the observer is assumed to have covered those days whole.

The agreement is that of the detector with the settings it ran with (`--config`, else the
defaults): `agreement.csv` names their digest in its `detector_digest` column, and settings.json
beside it holds every value.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from kmc_host.detect import StrapResult, local_day_edges, zone
from kmc_host.detect.intervals import seconds_in_bins
from kmc_host.timefmt import iso_utc_array

from .roster import Infant
from .samples_io import NOT_TEXT, SamplesFileError, parse_time_value
from .settings import Settings


@dataclass
class ObservedSessions:
    device: str
    start: NDArray[np.float64]
    end: NDArray[np.float64]
    lines: list[int]


def load_observer_log(
    path: str | Path, roster: dict[str, Infant] | None = None
) -> dict[str, ObservedSessions]:
    """Observed sessions by strap; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise SamplesFileError(path, None, "observer log not found")
    by_infant = {i.infant_id: d for d, i in (roster or {}).items()}
    rows: dict[str, list[tuple[float, float, int]]] = {}
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            names = [n.strip() for n in (reader.fieldnames or [])]
            reader.fieldnames = names
            key = "device" if "device" in names else "infant_id" if "infant_id" in names else None
            if key is None or "start" not in names or "end" not in names:
                raise SamplesFileError(
                    path, 1, "observer log needs columns device (or infant_id), start, end"
                )
            if key == "infant_id" and not by_infant:
                raise SamplesFileError(
                    path, 1, "an infant_id log needs --roster to find the straps"
                )
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise SamplesFileError(path, line, "more fields than the header has")
                who = (row[key] or "").strip()
                if not who:
                    raise SamplesFileError(path, line, f"{key} is empty")
                device = who if key == "device" else by_infant.get(who)
                if device is None:
                    raise SamplesFileError(path, line, f"infant {who!r} is not in the roster")
                try:
                    start = parse_time_value((row["start"] or "").strip())
                    end = parse_time_value((row["end"] or "").strip())
                except ValueError:
                    raise SamplesFileError(
                        path,
                        line,
                        f"unparsable time in start {row['start']!r} or end {row['end']!r} "
                        "(Unix seconds or ISO 8601 with offset)",
                    ) from None
                if end <= start:
                    raise SamplesFileError(path, line, "end is not after start")
                rows.setdefault(device, []).append((start, end, line))
    except UnicodeDecodeError:
        raise SamplesFileError(path, None, NOT_TEXT) from None
    out = {}
    for device, items in rows.items():
        items.sort()
        for (_, e0, l0), (s1, _, l1) in zip(items, items[1:], strict=False):
            if s1 < e0:
                raise SamplesFileError(
                    path, l1, f"session overlaps the one on line {l0} for strap {device}"
                )
        out[device] = ObservedSessions(
            device,
            np.array([s for s, _, _ in items]),
            np.array([e for _, e, _ in items]),
            [ln for _, _, ln in items],
        )
    return out


@dataclass
class Agreement:
    session_rows: list[dict[str, object]] = field(default_factory=list)
    daily_rows: list[dict[str, object]] = field(default_factory=list)
    observed_sessions: int = 0
    matched: int = 0
    missed: int = 0
    extra: int = 0
    observed_h: float = 0.0
    detected_h: float = 0.0
    both_h: float = 0.0
    not_in_samples: list[str] = field(default_factory=list)

    @property
    def sensitivity(self) -> float:
        return self.both_h / self.observed_h if self.observed_h else float("nan")

    @property
    def ppv(self) -> float:
        return self.both_h / self.detected_h if self.detected_h else float("nan")

    def edge_errors(self, which: str) -> NDArray[np.float64]:
        v = [r[f"{which}_error_min"] for r in self.session_rows if r["match"] == "matched"]
        return np.asarray(v, dtype=float)

    def bland_altman(self) -> dict[str, float]:
        d = np.asarray([r["difference_h"] for r in self.daily_rows], dtype=float)
        if d.size == 0:
            return {"n": 0, "bias_h": np.nan, "sd_h": np.nan, "lower_h": np.nan, "upper_h": np.nan}
        sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
        bias = float(d.mean())
        return {
            "n": int(d.size),
            "bias_h": bias,
            "sd_h": sd,
            "lower_h": bias - 1.96 * sd,
            "upper_h": bias + 1.96 * sd,
        }

    def lines(self) -> list[str]:
        out = [
            f"observed sessions: {self.observed_sessions}; matched {self.matched}, "
            f"missed by the strap {self.missed}; extra strap sessions on observed days {self.extra}"
        ]
        for which in ("start", "end"):
            e = self.edge_errors(which)
            if e.size:
                out.append(
                    f"{which} error (strap - observer, min): median {np.median(e):+.1f}, "
                    f"mean {e.mean():+.1f}, 95% of |error| <= {np.percentile(np.abs(e), 95):.1f}"
                )
        out.append(
            f"KMC time: observed {self.observed_h:.1f} h, strap {self.detected_h:.1f} h, both "
            f"{self.both_h:.1f} h; sensitivity {100 * self.sensitivity:.1f}%, "
            f"positive predictive value {100 * self.ppv:.1f}%"
        )
        ba = self.bland_altman()
        if ba["n"]:
            out.append(
                f"KMC hours per infant-day (n={ba['n']}): bias {ba['bias_h']:+.2f} h, "
                f"limits of agreement {ba['lower_h']:+.2f} to {ba['upper_h']:+.2f} h "
                f"(SD {ba['sd_h']:.2f} h)"
            )
        if self.not_in_samples:
            out.append(f"not in the samples (left out): {', '.join(self.not_in_samples)}")
        return out


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _union_overlap(s0: NDArray, e0: NDArray, s1: NDArray, e1: NDArray) -> float:
    """Seconds covered by both interval sets (each sorted and non-overlapping)."""
    total = 0.0
    j = 0
    for a, b in zip(s0.tolist(), e0.tolist(), strict=True):
        while j < s1.size and e1[j] <= a:
            j += 1
        k = j
        while k < s1.size and s1[k] < b:
            total += _overlap(a, b, float(s1[k]), float(e1[k]))
            k += 1
    return total


def _hours_per_day(
    start: NDArray, end: NDArray, days: list[dt.date], span: tuple[float, float], tz: ZoneInfo
) -> NDArray[np.float64]:
    """Hours of the intervals (sorted, disjoint) on each of `days`, local dates in order within
    `span` (the UTC instants of the first one's midnight and the midnight after the last one);
    binned by the detector's own calendar, as `kmc analyze` counts its daily hours."""
    dates, edges = local_day_edges(span[0], span[1], tz)
    hours = seconds_in_bins(start, end, edges) / 3600.0
    return hours[[(day - dates[0]).days for day in days]]


def compare(
    results: dict[str, StrapResult], observed: dict[str, ObservedSessions], tz: str = "UTC"
) -> Agreement:
    zi = zone(tz)
    ag = Agreement()
    for device in sorted(observed):
        obs = observed[device]
        ag.observed_sessions += obs.start.size
        if device not in results:
            ag.not_in_samples.append(device)
            ag.missed += obs.start.size
            continue
        r = results[device]
        days = sorted(
            {
                dt.datetime.fromtimestamp(t, zi).date()
                for t in np.concatenate((obs.start, obs.end - 1e-3)).tolist()
            }
        )
        day_start = dt.datetime.combine(days[0], dt.time(0), tzinfo=zi).timestamp()
        day_end = dt.datetime.combine(
            days[-1] + dt.timedelta(days=1), dt.time(0), tzinfo=zi
        ).timestamp()
        on_days = np.array(
            [
                dt.datetime.fromtimestamp(s, zi).date() in days
                or dt.datetime.fromtimestamp(e - 1e-3, zi).date() in days
                for s, e in zip(r.session_start.tolist(), r.session_end.tolist(), strict=True)
            ],
            dtype=bool,
        )
        det_s, det_e = r.session_start[on_days], r.session_end[on_days]
        # pair sessions one to one, largest overlap first
        pairs = [
            (_overlap(o0, o1, d0, d1), i, j)
            for i, (o0, o1) in enumerate(zip(obs.start.tolist(), obs.end.tolist(), strict=True))
            for j, (d0, d1) in enumerate(zip(det_s.tolist(), det_e.tolist(), strict=True))
        ]
        partner: dict[int, int] = {}
        used: set[int] = set()
        for ov, i, j in sorted(pairs, reverse=True):
            if ov > 0 and i not in partner and j not in used:
                partner[i] = j
                used.add(j)
        obs_start, obs_end = iso_utc_array(obs.start).tolist(), iso_utc_array(obs.end).tolist()
        det_start, det_end = iso_utc_array(det_s).tolist(), iso_utc_array(det_e).tolist()
        for i in range(obs.start.size):
            row: dict[str, object] = {
                "device": device,
                "observer_line": obs.lines[i],
                "observed_start": obs_start[i],
                "observed_end": obs_end[i],
            }
            mate = partner.get(i)
            if mate is None:
                ag.missed += 1
                row |= {
                    "match": "missed",
                    "detected_start": "",
                    "detected_end": "",
                    "start_error_min": "",
                    "end_error_min": "",
                }
            else:
                ag.matched += 1
                row |= {
                    "match": "matched",
                    "detected_start": det_start[mate],
                    "detected_end": det_end[mate],
                    "start_error_min": round((det_s[mate] - obs.start[i]) / 60.0, 2),
                    "end_error_min": round((det_e[mate] - obs.end[i]) / 60.0, 2),
                }
            ag.session_rows.append(row)
        for j in range(det_s.size):
            if j not in used:
                ag.extra += 1
                ag.session_rows.append(
                    {
                        "device": device,
                        "observer_line": "",
                        "observed_start": "",
                        "observed_end": "",
                        "match": "extra",
                        "detected_start": det_start[j],
                        "detected_end": det_end[j],
                        "start_error_min": "",
                        "end_error_min": "",
                    }
                )
        # time level, within the observed days
        cs = np.clip(r.session_start, day_start, day_end)
        ce = np.clip(r.session_end, day_start, day_end)
        keep = ce > cs
        span = (day_start, day_end)
        obs_h = _hours_per_day(obs.start, obs.end, days, span, zi)
        det_h = _hours_per_day(cs[keep], ce[keep], days, span, zi)
        ag.observed_h += float(obs_h.sum())
        ag.detected_h += float(det_h.sum())
        ag.both_h += _union_overlap(obs.start, obs.end, cs[keep], ce[keep]) / 3600.0
        for k, day in enumerate(days):
            ag.daily_rows.append(
                {
                    "device": device,
                    "date": day.isoformat(),
                    "observed_h": round(float(obs_h[k]), 3),
                    "detected_h": round(float(det_h[k]), 3),
                    "difference_h": round(float(det_h[k] - obs_h[k]), 3),
                    "mean_h": round(float(det_h[k] + obs_h[k]) / 2, 3),
                }
            )
    return ag


def write_agreement(ag: Agreement, out: Path, settings: Settings) -> list[Path]:
    """session_agreement.csv, daily_agreement.csv, agreement.csv (the summary, with the
    detector's digest) and settings.json in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in (("session_agreement", ag.session_rows), ("daily_agreement", ag.daily_rows)):
        path = out / f"{name}.csv"
        with path.open("w", newline="") as fh:
            if rows:
                w = csv.DictWriter(fh, list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        written.append(path)
    path = out / "agreement.csv"
    ba = ag.bland_altman()
    summary = {
        "observed_sessions": ag.observed_sessions,
        "matched": ag.matched,
        "missed": ag.missed,
        "extra": ag.extra,
        "median_start_error_min": _median(ag.edge_errors("start")),
        "median_end_error_min": _median(ag.edge_errors("end")),
        "observed_hours": round(ag.observed_h, 3),
        "detected_hours": round(ag.detected_h, 3),
        "sensitivity": round(ag.sensitivity, 4),
        "ppv": round(ag.ppv, 4),
        "infant_days": ba["n"],
        "bias_h": round(ba["bias_h"], 3),
        "sd_h": round(ba["sd_h"], 3),
        "loa_lower_h": round(ba["lower_h"], 3),
        "loa_upper_h": round(ba["upper_h"], 3),
        "detector_digest": settings.digest,
    }
    with path.open("w", newline="") as fh:
        plain = csv.writer(fh)
        plain.writerow(list(summary))
        plain.writerow(
            ["" if isinstance(v, float) and np.isnan(v) else v for v in summary.values()]
        )
    written.append(path)
    written.append(settings.write(out))
    return written


def _median(x: NDArray[np.float64]) -> float:
    return round(float(np.median(x)), 2) if x.size else float("nan")
