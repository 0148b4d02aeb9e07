"""Runs: maximal stretches of samples with the same class and no data gap between them.

Every rule of the detector (contact debouncing, band persistence, strap-off duration) is a rule
about runs, so the detector first turns samples into runs and then reasons on the short run lists.

Time model. Sample i at time t[i] stands for the time until the next sample, [t[i], t[i+1]),
unless a data gap follows it; then, like the last sample of a recording, it stands for one nominal
sampling period. A run therefore spans [t[first], t[next run's first]) or, before a gap,
[t[first], t[last] + period): runs of one signal tile the monitored time exactly, and a session
starts at the time of its first contact sample.

`RunTracker` is incremental: it keeps the still-open last run between chunks, so feeding a
recording in any number of chunks yields exactly the runs of a single pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Reduce = Literal["min", "max", "none"]

_EMPTY_F = np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class Runs:
    """Closed runs as parallel arrays (the scikit-digital-health style of start/stop pairs)."""

    cls: NDArray[np.int8]
    start: NDArray[np.float64]
    end: NDArray[np.float64]
    extreme: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.cls.size)

    @property
    def duration(self) -> NDArray[np.float64]:
        return self.end - self.start

    def slice(self, start: int, stop: int) -> Runs:
        return Runs(
            self.cls[start:stop],
            self.start[start:stop],
            self.end[start:stop],
            self.extreme[start:stop],
        )

    @staticmethod
    def empty() -> Runs:
        return Runs(np.empty(0, np.int8), _EMPTY_F, _EMPTY_F, _EMPTY_F)

    @staticmethod
    def concat(parts: list[Runs]) -> Runs:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Runs.empty()
        if len(parts) == 1:
            return parts[0]
        return Runs(
            np.concatenate([p.cls for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.extreme for p in parts]),
        )


@dataclass
class OpenRun:
    """The last run of the data seen so far: it may still grow with the next chunk."""

    cls: int
    start: float
    last: float  # time of its last sample
    extreme: float
    period: float

    @property
    def end(self) -> float:
        """Where it ends if no sample follows (provisional while the run is open)."""
        return self.last + self.period

    @property
    def duration(self) -> float:
        return self.end - self.start

    def as_runs(self) -> Runs:
        """The run closed as it stands (its end one period after its last sample)."""
        return Runs(
            np.array([self.cls], np.int8),
            np.array([self.start]),
            np.array([self.end]),
            np.array([self.extreme]),
        )


def _combine(a: float, b: float, reduce: Reduce) -> float:
    if reduce == "min":
        return float(np.fmin(a, b))
    if reduce == "max":
        return float(np.fmax(a, b))
    return float("nan")


class RunTracker:
    """Turns chunks of classified samples into closed runs, carrying the open run over.

    period: the nominal sampling period, the time the sample before a gap stands for.
    reduce: which extreme of `value` each run keeps ("min" for cold bands, "max" for heat).
    """

    def __init__(self, period: float, reduce: Reduce = "none") -> None:
        self.period = period
        self.reduce: Reduce = reduce
        self.open: OpenRun | None = None

    def push(
        self,
        t: NDArray[np.float64],
        brk: NDArray[np.bool_],
        cls: NDArray[np.int8],
        value: NDArray[np.float64] | None = None,
    ) -> Runs:
        """Add a chunk; return the runs it closed. `brk[i]` marks a data gap before sample i."""
        n = t.size
        if n == 0:
            return Runs.empty()
        boundary = brk.copy()
        boundary[1:] |= cls[1:] != cls[:-1]
        if self.open is None or cls[0] != self.open.cls:
            boundary[0] = True
        first = np.flatnonzero(boundary)
        starts = first if first.size and first[0] == 0 else np.concatenate(([0], first))
        lasts = np.concatenate((starts[1:] - 1, [n - 1]))
        run_cls = cls[starts].astype(np.int8)
        run_start = t[starts].astype(np.float64)
        run_last = t[lasts].astype(np.float64)
        # a run ends where the next one starts, or one period after its last sample before a gap
        next_start = run_start[1:]
        run_end = np.where(brk[starts[1:]], run_last[:-1] + self.period, next_start)
        if self.reduce == "min" and value is not None:
            run_ext = np.fmin.reduceat(value, starts).astype(np.float64)
        elif self.reduce == "max" and value is not None:
            run_ext = np.fmax.reduceat(value, starts).astype(np.float64)
        else:
            run_ext = np.full(starts.size, np.nan)

        closed: list[Runs] = []
        if self.open is not None:
            if boundary[0]:
                old = self.open
                end = old.end if brk[0] else float(t[0])
                closed.append(
                    Runs(
                        np.array([old.cls], np.int8),
                        np.array([old.start]),
                        np.array([end]),
                        np.array([old.extreme]),
                    )
                )
            else:  # the chunk's first run continues the open run
                run_start[0] = self.open.start
                run_ext[0] = _combine(self.open.extreme, float(run_ext[0]), self.reduce)
        closed.append(Runs(run_cls[:-1], run_start[:-1], run_end, run_ext[:-1]))
        self.open = OpenRun(
            int(run_cls[-1]),
            float(run_start[-1]),
            float(run_last[-1]),
            float(run_ext[-1]),
            self.period,
        )
        return Runs.concat(closed)

    def close(self) -> Runs:
        """End of the recording: the open run is final."""
        if self.open is None:
            return Runs.empty()
        runs = self.open.as_runs()
        self.open = None
        return runs
