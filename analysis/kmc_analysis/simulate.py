"""A simulated ward: 1 Hz strap samples with physiological realism, and the ground truth.

Each strap gets a baby (birth time, weight) and a care pattern, then a day plan built from a few
hundred activity segments; the samples are painted from the plan with numpy, one strap at a time.

What is in the signal (each a thing the detector must get right or must ignore):
- KMC sessions, *continuous* (long sessions, short breaks) or *intermittent* (a few per day,
  some shorter than the 60 min WHO minimum); nappy changes (1-3.5 min without contact) inside them;
  brief contact dropouts (1-6 s) and contact flicker while the baby is positioned.
- In the cot: contact glitches (1-3 s), nurse handling (2-8 min of intermittent contact),
  strap detachments (5-40 min, worn == 0, the inner sensor cooling to room air), with the sensor
  settling back after re-attachment (first-order rise, tau 0.5-2.5 min: the slow ones still
  below 36.5 C after 5 min).
- Cooling episodes outside KMC (nadir 34.8-35.9 or 36.1-36.35 C: never within the sensor's
  0.1 C of a band edge), rare warm episodes, a thermoneutral baseline (36.7-37.1 C) with slow
  drift, warming during KMC, caregiver-side temperature on the outer face.
- Sensor noise: 0.02 C by default (a TMP117 averaging 8 conversions), `noise_c` to test more.
- Radio gaps (5 s - 3 min of missing rows, at most 1 min inside KMC, now and then a longer
  one in the cot), sensor
  noise and 0.01 C quantisation, admission part-way through the first day.

Ground truth (what really happened, not what a detector says) goes to a folder, in the same
columns as `kmc analyze` writes: sessions.csv, alerts.csv (cold bands, hyperthermia and
strap_off), daily.csv, plus roster.csv for the babies.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from kmc_host.clinical import STRAP_OFF
from kmc_host.detect import DetectorConfig, local_day_edges, zone
from kmc_host.detect.intervals import seconds_in_bins
from kmc_host.errors import BadInput
from kmc_host.timefmt import iso_utc

DAY = 86400
MIN = 60
DEFAULT_START = "2026-03-02"


@dataclass
class Plan:
    """One strap's truth as intervals, in seconds from the start of the simulation."""

    kmc: list[tuple[int, int]] = field(default_factory=list)
    detached: list[tuple[int, int]] = field(default_factory=list)
    handling: list[tuple[int, int]] = field(default_factory=list)
    cooling: list[tuple[int, int, int, int, float]] = field(default_factory=list)  # a,b,c,e,nadir
    warm: list[tuple[int, int, int, int, float]] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Strap:
    device: str
    infant_id: str
    birth_time: float
    birth_weight_g: float
    t0: float
    time: NDArray[np.int64]
    infant_c: NDArray[np.float64]
    outer_c: NDArray[np.float64]
    contact: NDArray[np.int8]
    worn: NDArray[np.int8]
    battery_v: NDArray[np.float64]
    plan: Plan
    true_infant_c: NDArray[np.float64]
    present: NDArray[np.bool_]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _plan_care(rng: np.random.Generator, admit: int, end: int) -> Plan:
    """Alternate cot and KMC periods from admission to the end of the simulation."""
    plan = Plan()
    continuous = rng.random() < 0.45
    cur = admit + int(_u(rng, 5, 60) * MIN)
    cots: list[tuple[int, int]] = [(admit, min(cur, end))]  # a short run may end in this cot
    while cur < end:
        if continuous:
            length = int(_u(rng, 2.0, 9.0) * 3600)
            gap = int(_u(rng, 15, 75) * MIN)
        else:
            length = int(rng.choice([_u(rng, 20, 55), _u(rng, 60, 180), _u(rng, 60, 240)]) * MIN)
            gap = int(_u(rng, 1.0, 6.0) * 3600)
        s, e = cur, min(cur + length, end)
        if e - s >= 15 * MIN:
            plan.kmc.append((s, e))
        cots.append((e, min(e + gap, end)))
        cur = e + gap
    # Events in the cot, kept clear of session edges so the truth stays unambiguous.
    margin = 12 * MIN
    for a, b in cots:
        lo, hi = a + margin, b - margin
        if hi - lo < 20 * MIN:
            continue
        slots = [[lo, hi]]
        if rng.random() < 0.30:
            _place(rng, slots, int(_u(rng, 2, 8) * MIN), plan.handling)
        if rng.random() < 0.25:
            _place(rng, slots, int(_u(rng, 5, 40) * MIN), plan.detached, pad_after=12 * MIN)
        if rng.random() < 0.35:
            _place_excursion(rng, slots, plan.cooling, (6, 18), (4, 35), (8, 20), _nadir(rng))
        if rng.random() < 0.04:
            _place_excursion(rng, slots, plan.warm, (8, 15), (5, 25), (8, 15), _u(rng, 37.7, 38.2))
        if rng.random() < 0.03:
            _place(rng, slots, int(_u(rng, 8, 30) * MIN), plan.gaps)
    plan.handling.sort()
    plan.detached.sort()
    return plan


def _place_excursion(
    rng: np.random.Generator,
    slots: list[list[int]],
    into: list[tuple[int, int, int, int, float]],
    ramp_in_min: tuple[float, float],
    hold_min: tuple[float, float],
    ramp_out_min: tuple[float, float],
    level: float,
) -> None:
    """A trapezoid temperature excursion to `level` (ramp in, hold, ramp out) in a free slot."""
    ramp_in, hold, ramp_out = (
        int(_u(rng, *r) * MIN) for r in (ramp_in_min, hold_min, ramp_out_min)
    )
    got = _place(rng, slots, ramp_in + hold + ramp_out, None)
    if got is not None:
        a = got[0]
        into.append((a, a + ramp_in, a + ramp_in + hold, a + ramp_in + hold + ramp_out, level))


def _nadir(rng: np.random.Generator) -> float:
    """A cooling nadir at least 0.1 C from the 36.0 C band edge (the sensor's accuracy):
    a dip the sensor cannot place on one side of a threshold makes no fair ground truth."""
    return _u(rng, 34.8, 35.9) if rng.random() < 0.6 else _u(rng, 36.1, 36.35)


def _place(
    rng: np.random.Generator,
    slots: list[list[int]],
    length: int,
    into: list[tuple[int, int]] | None,
    pad_after: int = 2 * MIN,
) -> tuple[int, int] | None:
    """Put an event of `length` into a free slot, keeping it and `pad_after` clear of others."""
    fits = [k for k, (a, b) in enumerate(slots) if b - a >= length + pad_after]
    if not fits:
        return None
    k = int(rng.choice(fits))
    a, b = slots[k]
    s = a + int(rng.integers(0, b - a - length - pad_after + 1))
    e = s + length
    slots[k : k + 1] = [x for x in ([a, s - 2 * MIN], [e + pad_after, b]) if x[1] > x[0]]
    if into is not None:
        into.append((s, e))
    return s, e


def _paint_contact(rng: np.random.Generator, n: int, plan: Plan) -> NDArray[np.int8]:
    contact = np.zeros(n, np.int8)
    for s, e in plan.kmc:
        contact[s:e] = 1
        # positioning flicker in the first seconds
        for _ in range(int(rng.integers(0, 3))):
            k = s + int(rng.integers(0, 20))
            contact[k : k + int(rng.integers(1, 3))] = 0
        # nappy changes every 2-3 h, 1-3.5 min
        k = s + int(_u(rng, 60, 150) * MIN)
        while k < e - 10 * MIN:
            contact[k : k + int(_u(rng, 1, 3.5) * MIN)] = 0
            k += int(_u(rng, 120, 180) * MIN)
        # dropouts of 1-6 s, about every 10 min
        m = rng.poisson((e - s) / 600)
        for k in rng.integers(s, e, m):
            contact[k : k + int(rng.integers(1, 7))] = 0
    for s, e in plan.handling:  # bursts of contact 20-90 s with 5-30 s off
        k = s
        while k < e:
            on = int(rng.integers(20, 90))
            contact[k : min(k + on, e)] = 1
            k += on + int(rng.integers(5, 30))
    glitches = rng.integers(0, n, rng.poisson(n / 3600))
    for k in glitches:
        contact[k : k + int(rng.integers(1, 4))] = 1
    return contact


def _profile(
    t: NDArray[np.float64], a: int, b: int, c: int, e: int, depth: float
) -> NDArray[np.float64]:
    """Trapezoid: 0 before a, ramps to `depth` by b, holds to c, back to 0 by e."""
    return depth * np.interp(t, [a, b, c, e], [0.0, 1.0, 1.0, 0.0], left=0.0, right=0.0)


def simulate_strap(
    rng: np.random.Generator, index: int, days: float, t0: float, width: int, noise_c: float = 0.02
) -> Strap:
    """One strap's samples and truth; `noise_c` is the infant sensor's noise (SD, C)."""
    n = round(days * DAY)  # int() would cut 780.9999 s to 780
    admit = int(_u(rng, 0, 10) * 3600) if index % 3 else 0
    plan = _plan_care(rng, admit, n)
    t = np.arange(n, dtype=np.float64)

    # true skin temperature: a thermoneutral baseline with slow drift, warming in KMC, then the
    # cooling and warm episodes with their nadir / peak set exactly where the plan says
    base = float(np.clip(rng.normal(36.9, 0.08), 36.7, 37.1))
    drift = sum(
        _u(rng, 0.01, 0.04) * np.sin(2 * np.pi * t / _u(rng, 3, 11) / 3600 + _u(rng, 0, 6))
        for _ in range(3)
    )
    in_kmc = np.zeros(n)
    for s, e in plan.kmc:
        in_kmc[s:e] = 1.0
    kmc_warm = 0.15 * np.convolve(in_kmc, np.ones(600) / 600, mode="full")[:n]
    true_c = base + drift + kmc_warm
    for a, b, c, e, nadir in plan.cooling:
        true_c -= _profile(t, a, b, c, e, float(true_c[(b + c) // 2] - nadir))
    for a, b, c, e, peak in plan.warm:
        true_c += _profile(t, a, b, c, e, float(peak - true_c[(b + c) // 2]))

    worn = np.ones(n, np.int8)
    sensor = true_c.copy()
    room = _u(rng, 25.0, 30.0)
    for s, e in plan.detached:
        worn[s:e] = 0
        start_c = sensor[s]
        k = np.arange(e - s)
        sensor[s:e] = room + (start_c - room) * np.exp(-k / _u(rng, 120, 240))
        tau = _u(rng, 30, 150)  # behind silicone: 0.5-2.5 min, often longer than 5 min to settle
        k2 = np.arange(min(15 * MIN, n - e))
        sensor[e : e + k2.size] = true_c[e : e + k2.size] + (
            sensor[e - 1] - true_c[e : e + k2.size]
        ) * np.exp(-k2 / tau)
    infant = np.round(sensor + rng.normal(0, noise_c, n), 2)  # reported in 0.01 C steps

    contact = _paint_contact(rng, n, plan)
    contact[worn == 0] = 0
    outer_true = np.where(contact == 1, _u(rng, 34.8, 35.6), _u(rng, 29.0, 33.0))
    w = min(90, n)  # 90 s of thermal lag on the outer face (a run may be shorter than that)
    outer = np.round(
        np.convolve(outer_true, np.ones(w) / w, mode="same") + rng.normal(0, 0.05, n), 2
    )
    if n > w:  # no lag estimate at the ends: hold the first and last full-window values
        outer[: w // 2] = outer[w // 2]
        outer[-(w // 2) :] = outer[-(w // 2) - 1]

    present = np.zeros(n, bool)
    present[admit:] = True
    gaps = list(plan.gaps)
    starts: list[int] = rng.integers(admit, n, rng.poisson(2 * days)).tolist() if admit < n else []
    for g0 in starts:
        gaps.append((g0, g0 + int(rng.choice([_u(rng, 5, 30), _u(rng, 30, 180)]))))
    in_kmc_b = in_kmc > 0
    for g, (s, e) in enumerate(gaps):
        if in_kmc_b[s:e].any():  # inside KMC a gap stays short enough to be bridged
            e = s + min(e - s, MIN)
            gaps[g] = (s, e)
        present[s:e] = False
    plan.gaps = sorted(gaps)

    battery = np.round(4.15 - 0.25 * ((t - admit) % DAY) / DAY + rng.normal(0, 0.005, n), 3)
    birth = t0 + admit - _u(rng, 0.5, 6) * DAY
    weight = float(np.round(rng.choice([_u(rng, 900, 1999), _u(rng, 2000, 2400)], p=[0.8, 0.2])))
    return Strap(
        f"KMC-{index + 1:0{width}d}",
        f"INF-{index + 1:0{width}d}",
        float(birth),
        weight,
        t0,
        (t0 + t).astype(np.int64),
        infant,
        outer,
        contact,
        worn,
        battery,
        plan,
        true_c,
        present,
    )


# ---- ground truth -------------------------------------------------------------------------


def _truth_episodes(strap: Strap, cfg: DetectorConfig) -> list[tuple[str, float, float, float]]:
    """Cold/warm episodes from the true skin temperature while worn, and strap detachments.
    A radio gap inside an episode (no data, short enough to be bridged and too short for the
    sensor to settle again) does not split it: docs/detector.md."""
    out: list[tuple[str, float, float, float]] = []
    worn = (strap.worn == 1) & strap.present
    longest = min(cfg.bridge_s, cfg.assume_removed_after_gap_s - 2 * cfg.sample_period_s)
    for band in cfg.thermal_bands:
        if band.direction == "below":
            beyond = worn & (strap.true_infant_c < band.threshold)
        else:
            beyond = worn & (strap.true_infant_c > band.threshold)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], beyond.astype(np.int8), [0]))))
        spans = edges.reshape(-1, 2).tolist()
        joined: list[list[int]] = []
        for a, b in spans:
            if joined:
                prev_b = joined[-1][1]
                if a - prev_b <= longest and not strap.present[prev_b:a].any():
                    joined[-1][1] = b  # only missing data between them: one episode
                    continue
            joined.append([a, b])
        for a, b in joined:
            seg = strap.true_infant_c[a:b][strap.present[a:b]]  # what a strap could report
            ext = float(seg.min() if band.direction == "below" else seg.max())
            out.append((band.kind, strap.t0 + a, strap.t0 + b, round(ext, 2)))
    for s, e in strap.plan.detached:
        out.append((STRAP_OFF, strap.t0 + s, strap.t0 + e, float("nan")))
    return out


class TruthWriter:
    """The truth folder, in `kmc analyze`'s columns."""

    def __init__(self, folder: Path, tz: str, cfg: DetectorConfig) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tz = zone(tz)
        self.cfg = cfg
        self._fh = {
            name: (folder / f"{name}.csv").open("w", newline="")
            for name in ("sessions", "alerts", "daily", "roster")
        }
        self._w = {k: csv.writer(v) for k, v in self._fh.items()}
        self._w["sessions"].writerow(["device", "start", "end", "duration_min"])
        self._w["alerts"].writerow(["device", "kind", "start", "end", "extreme_c"])
        self._w["daily"].writerow(["device", "date", "kmc_hours", "monitored_hours"])
        self._w["roster"].writerow(["device", "infant_id", "birth_time", "birth_weight_g"])

    def add(self, s: Strap) -> None:
        for a, b in s.plan.kmc:
            self._w["sessions"].writerow(
                [s.device, iso_utc(s.t0 + a), iso_utc(s.t0 + b), f"{(b - a) / 60:.1f}"]
            )
        for kind, ea, eb, ext in sorted(_truth_episodes(s, self.cfg), key=lambda r: (r[1], r[0])):
            self._w["alerts"].writerow(
                [s.device, kind, iso_utc(ea), iso_utc(eb), "" if np.isnan(ext) else f"{ext:.2f}"]
            )
        self._daily(s)
        self._w["roster"].writerow(
            [s.device, s.infant_id, iso_utc(s.birth_time), f"{s.birth_weight_g:.0f}"]
        )

    def _daily(self, s: Strap) -> None:
        """Hours per local day, on the days the strap has data (none: no row, as analyze)."""
        present_t = s.time[s.present].astype(np.float64)
        if present_t.size == 0:  # a short run that is all radio gap
            return
        dates, edges = local_day_edges(float(present_t[0]), float(present_t[-1]), self.tz)
        ks = np.array([s.t0 + a for a, _ in s.plan.kmc], dtype=np.float64)
        ke = np.array([s.t0 + b for _, b in s.plan.kmc], dtype=np.float64)
        kmc = seconds_in_bins(ks, ke, edges) / 3600
        mon = np.histogram(present_t, bins=edges)[0] / 3600
        for k, d in enumerate(dates):
            self._w["daily"].writerow([s.device, d.isoformat(), f"{kmc[k]:.3f}", f"{mon[k]:.3f}"])

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()


# ---- the ward -----------------------------------------------------------------------------


def strap_table(s: Strap) -> pa.Table:
    keep = s.present
    return pa.table(
        {
            "time": pa.array(s.time[keep]),
            "device": pa.array(np.full(int(keep.sum()), s.device)),
            "infant_c": pa.array(s.infant_c[keep]),
            "outer_c": pa.array(s.outer_c[keep]),
            "contact": pa.array(s.contact[keep]),
            "worn": pa.array(s.worn[keep]),
            "battery_v": pa.array(s.battery_v[keep]),
        }
    )


def start_time(date: str, tz: str) -> float:
    """Local midnight of `date` in `tz`, as Unix seconds."""
    try:
        d = dt.date.fromisoformat(date)
    except ValueError:
        raise BadInput(f"start date {date!r} is not a date (YYYY-MM-DD)") from None
    return dt.datetime.combine(d, dt.time(0), tzinfo=zone(tz)).timestamp()


def simulate_ward(
    out: str | Path,
    devices: int,
    days: float,
    *,
    seed: int = 0,
    tz: str = "UTC",
    start: str = DEFAULT_START,
    truth_dir: str | Path | None = None,
    noise_c: float = 0.02,
    config: DetectorConfig | None = None,
) -> tuple[Path, Path, int]:
    """Write the samples file (CSV or Parquet by extension) and the truth folder; return rows.

    The truth's episodes are judged on the bands of `config` (None: the design's defaults, the
    rules the detector is scored against), its sessions by the care plan."""
    if devices < 1 or days <= 0:
        raise BadInput("need at least one strap and a positive number of days")
    if not 0 <= noise_c <= 0.5:
        raise BadInput("noise_c must be within 0-0.5 C")
    out = Path(out)
    truth = Path(truth_dir) if truth_dir else out.with_name(out.name.split(".")[0] + "_truth")
    rng = np.random.default_rng(seed)
    t0 = start_time(start, tz)
    width = max(2, len(str(devices)))
    truth_w = TruthWriter(truth, tz, config or DetectorConfig())
    out.parent.mkdir(parents=True, exist_ok=True)
    parquet = out.suffix.lower() in (".parquet", ".pq")
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    rows = 0
    try:
        for i in range(devices):
            strap_rng = np.random.default_rng(rng.integers(2**63))
            strap = simulate_strap(strap_rng, i, days, t0, width, noise_c)
            table = strap_table(strap)
            if writer is None:
                writer = (
                    pq.ParquetWriter(out, table.schema)
                    if parquet
                    else pacsv.CSVWriter(out, table.schema)
                )
            writer.write_table(table)
            rows += table.num_rows
            truth_w.add(strap)
    finally:
        if writer is not None:
            writer.close()
        truth_w.close()
    return out, truth, rows
