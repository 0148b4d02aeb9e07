"""A straightforward pandas implementation of the same detection rules, for comparison only.

This is how the rules would usually be written with pandas: read the file into one DataFrame,
sort, group by strap, group consecutive samples into runs with diff/cumsum and groupby, and
loop over runs and episodes in Python for merging, the band state machine and hours per day.
It implements the DESIGN.md defaults (no configuration) and writes the same
sessions.csv / daily.csv / alerts.csv columns, so `bench_analyze.py` can check that both agree
before it compares their speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

GAP_S, PERIOD_S = 5.0, 1.0
DROPOUT_S, MIN_CONTACT_S, BRIDGE_S, MIN_SESSION_S = 10.0, 30.0, 300.0, 600.0
SETTLE_S, REMOVED_GAP_S, STRAP_OFF_S = 300.0, 300.0, 120.0
PERSIST_S, HYST, GLITCH_S = 60.0, 0.1, 10.0
SETTLE_MAX_S, RISE_WINDOW_S, RISE_C_PER_MIN = 900.0, 120.0, 0.03
BANDS = [
    ("cold_stress", 36.5, "below"),
    ("moderate_hypothermia", 36.0, "below"),
    ("severe_hypothermia", 32.0, "below"),
    ("hyperthermia", 37.5, "above"),
]


def runs_of(g: pd.DataFrame, key: pd.Series) -> pd.DataFrame:
    """Consecutive samples with the same key and no gap, with [start, end) times."""
    brk = ~(g["time"].diff() <= GAP_S)
    run_id = (brk | (key != key.shift())).cumsum()
    runs = (
        g.assign(key=key, brk=brk, run=run_id)
        .groupby("run")
        .agg(
            key=("key", "first"),
            start=("time", "first"),
            last=("time", "last"),
            brk=("brk", "first"),
        )
    )
    next_start = runs["start"].shift(-1)
    next_brk = runs["brk"].shift(-1, fill_value=True)
    runs["end"] = np.where(next_brk, runs["last"] + PERIOD_S, next_start)
    return runs


def merge(intervals: list[list[float]], max_gap: float, inclusive: bool) -> list[list[float]]:
    out: list[list[float]] = []
    for s, e in intervals:
        if out and ((s - out[-1][1] <= max_gap) if inclusive else (s - out[-1][1] < max_gap)):
            out[-1][1] = e
        else:
            out.append([s, e])
    return out


def sessions_of(g: pd.DataFrame) -> list[list[float]]:
    ev = ((g["contact"] == 1) & (g["worn"] == 1)).astype(int)
    runs = runs_of(g, ev)
    contact = [[r.start, r.end] for r in runs.itertuples() if r.key == 1]
    contact = merge(contact, DROPOUT_S, inclusive=False)
    contact = [c for c in contact if c[1] - c[0] >= MIN_CONTACT_S]
    sessions = merge(contact, BRIDGE_S, inclusive=True)
    return [s for s in sessions if s[1] - s[0] >= MIN_SESSION_S]


def judged(g: pd.DataFrame) -> pd.Series:
    """Worn and past the settling time after the strap was put on (extended while climbing)."""
    worn = g["worn"] == 1
    dt = g["time"].diff()
    put_on = worn & (~worn.shift(fill_value=False) | ~(dt < REMOVED_GAP_S))
    t = g["time"].to_numpy()
    v = g["infant_c"].to_numpy()
    onsets = list(np.flatnonzero(put_on.to_numpy()))
    settle_until = np.full(len(g), -np.inf)
    for k, i in enumerate(onsets):  # loop over put-on events
        stop = onsets[k + 1] if k + 1 < len(onsets) else len(g)
        end = stop
        for j in range(int(np.searchsorted(t, t[i] + SETTLE_S)), stop):
            if t[j] >= t[i] + SETTLE_MAX_S:
                end = j
                break
            ref = int(np.searchsorted(t, t[j] - RISE_WINDOW_S, side="right")) - 1
            rise = v[j] - v[ref] if ref >= 0 else 0.0
            if not rise * 60.0 / RISE_WINDOW_S >= RISE_C_PER_MIN:
                end = j
                break
        settle_until[i:end] = np.inf
    return worn & ~pd.Series(settle_until == np.inf, index=g.index)


def band_episodes(
    g: pd.DataFrame, ok: pd.Series, thr: float, direction: str
) -> list[tuple[float, float, float]]:
    temp = g["infant_c"]
    beyond = (temp < thr) if direction == "below" else (temp > thr)
    back = (temp >= thr + HYST) if direction == "below" else (temp <= thr - HYST)
    cls = pd.Series(np.select([~ok | temp.isna(), beyond, back], [0, 2, 3], 1), index=g.index)
    runs = runs_of(g, cls)
    runs["dur"] = runs["end"] - runs["start"]
    runs["extreme"] = (
        g.assign(run=(~(g["time"].diff() <= GAP_S) | (cls != cls.shift())).cumsum())
        .groupby("run")["infant_c"]
        .agg("min" if direction == "below" else "max")
        .values
    )
    # excursions shorter than GLITCH_S between two runs of the same side join them
    rows = list(runs.itertuples())
    labels = [r.key for r in rows]
    for j in range(1, len(rows) - 1):
        a, x, b = rows[j - 1], rows[j], rows[j + 1]
        if (
            x.key != 0
            and x.dur < GLITCH_S
            and a.key == b.key
            and a.key in (2, 3)
            and x.start <= a.end + 1e-9
            and b.start <= x.end + 1e-9
        ):
            labels[j] = a.key
    pick = np.fmin if direction == "below" else np.fmax
    stretches: list[dict] = []
    for r, label in zip(rows, labels, strict=True):
        last = stretches[-1] if stretches else None
        if last is not None and last["key"] == label and r.start <= last["end"] + 1e-9:
            last["end"] = r.end
            last["extreme"] = pick(last["extreme"], r.extreme)
        else:
            stretches.append({"key": label, "start": r.start, "end": r.end, "extreme": r.extreme})
    episodes = []
    inside, start, ext, prev_end, prev_key = False, 0.0, np.nan, None, None
    for st in stretches:
        dur = st["end"] - st["start"]
        gap = st["start"] - prev_end if prev_end is not None else 0.0
        # a data gap ends an episode, unless it is short and beyond on both sides
        bridged = gap <= BRIDGE_S + 1e-9 and prev_key == 2 and st["key"] == 2
        if inside and gap > 1e-9 and not bridged:
            episodes.append((start, prev_end, ext))
            inside = False
        if inside:
            if st["key"] == 0 or (st["key"] == 3 and dur >= PERSIST_S):
                episodes.append((start, st["start"], ext))
                inside = False
            else:
                ext = pick(ext, st["extreme"])
        elif st["key"] == 2 and dur >= PERSIST_S:
            inside, start, ext = True, st["start"], st["extreme"]
        prev_end, prev_key = st["end"], st["key"]
    if inside:
        episodes.append((start, prev_end, ext))
    return episodes


def iso(t: float) -> str:
    return pd.Timestamp(round(t), unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def analyze(samples: Path, out: Path, tz: str) -> None:
    df = pd.read_parquet(samples) if samples.suffix == ".parquet" else pd.read_csv(samples)
    if not pd.api.types.is_numeric_dtype(df["time"]):  # ISO 8601 times
        since = pd.to_datetime(df["time"], utc=True) - pd.Timestamp(0, tz="UTC")
        df["time"] = since / pd.Timedelta(seconds=1)
    df = df.sort_values(["device", "time"], kind="stable").reset_index(drop=True)
    df["time"] = df["time"].astype(float)
    out.mkdir(parents=True, exist_ok=True)
    sess_rows, daily_rows, alert_rows = [], [], []
    for device, g in df.groupby("device", sort=True):
        sessions = sessions_of(g)
        for s, e in sessions:
            sess_rows.append((device, iso(s), iso(e), round((e - s) / 60, 1)))
        mon = runs_of(g, pd.Series(0, index=g.index))
        first = pd.Timestamp(mon["start"].iloc[0], unit="s", tz="UTC").tz_convert(tz).normalize()
        last = (
            pd.Timestamp(mon["end"].iloc[-1] - 1e-3, unit="s", tz="UTC").tz_convert(tz).normalize()
        )
        for day in pd.date_range(first, last, freq="D"):
            a, b = day.timestamp(), (day + pd.DateOffset(days=1)).timestamp()
            kmc = sum(max(0.0, min(e, b) - max(s, a)) for s, e in sessions)
            seen = sum(max(0.0, min(r.end, b) - max(r.start, a)) for r in mon.itertuples())
            daily_rows.append(
                (device, day.date().isoformat(), round(kmc / 3600, 3), round(seen / 3600, 3))
            )
        ok = judged(g)
        for kind, thr, direction in BANDS:
            for s, e, x in band_episodes(g, ok, thr, direction):
                alert_rows.append((device, kind, iso(s), iso(e), round(x, 2)))
        worn_runs = runs_of(g, g["worn"])
        for r in worn_runs.itertuples():
            if r.key == 0 and r.end - r.start >= STRAP_OFF_S:
                alert_rows.append((device, "strap_off", iso(r.start), iso(r.end), np.nan))
    pd.DataFrame(sess_rows, columns=["device", "start", "end", "duration_min"]).to_csv(
        out / "sessions.csv", index=False
    )
    pd.DataFrame(daily_rows, columns=["device", "date", "kmc_hours", "monitored_hours"]).to_csv(
        out / "daily.csv", index=False
    )
    pd.DataFrame(alert_rows, columns=["device", "kind", "start", "end", "extreme_c"]).to_csv(
        out / "alerts.csv", index=False
    )


if __name__ == "__main__":
    analyze(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "UTC")
