"""Sensor settling after the strap is put on: no thermal judgement until the reading is the baby's.

A strap put on (again) starts with its inner sensor at room temperature; for a few minutes the
reading climbs towards skin temperature. That is the sensor settling, not the baby warming from
hypothermia, so no thermal alert may start from it (DESIGN.md: none for `settle_s` after the
strap is put on). A sensor behind thicker silicone can take longer than `settle_s`; a reading
still climbing faster than `settle_rise_c_per_min` is still settling, so the window extends
until the climb slows, up to `settle_max_s`. A baby who is really cold plateaus and is judged
as soon as the plateau is reached.

Put on: worn after not worn, after a data gap long enough to be a removal, or at the first
sample ever. The work is one slice per put-on event plus a rate check over the few minutes
after it; chunking never changes the result (the last `settle_rise_window_s` of readings are
carried between chunks).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .config import DetectorConfig

F64 = NDArray[np.float64]


class SettleTracker:
    """Which samples are still settling, chunk by chunk."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self._prev_worn = False
        self._phase_onset: float | None = None  # a put-on whose settling has not ended yet
        self._tail_t: F64 = np.empty(0)
        self._tail_v: F64 = np.empty(0)

    def push(self, t: F64, dt: F64, worn: NDArray[np.bool_], value: F64) -> NDArray[np.bool_]:
        """Mask of the samples still settling (`dt`: time since the previous sample, NaN first)."""
        cfg = self.cfg
        n = t.size
        prev_worn = np.concatenate(([self._prev_worn], worn[:-1]))
        onsets = np.flatnonzero(worn & (~prev_worn | ~(dt < cfg.assume_removed_after_gap_s)))
        phases: list[tuple[float, int]] = []
        if self._phase_onset is not None:
            phases.append((self._phase_onset, 0))
        phases += [(float(t[i]), int(i)) for i in onsets]

        settling = np.zeros(n, bool)
        carry: float | None = None
        if phases:  # readings with the carried ones in front, for the climb over the window
            all_t = np.concatenate((self._tail_t, t))
            all_v = np.concatenate((self._tail_v, value))
            offset = self._tail_t.size
        for k, (onset, first) in enumerate(phases):  # a few per day: not a per-sample loop
            stop = phases[k + 1][1] if k + 1 < len(phases) else n
            lo = max(first, int(np.searchsorted(t, onset + cfg.settle_s, side="left")))
            hi = min(stop, int(np.searchsorted(t, onset + cfg.settle_max_s, side="left")))
            end = self._first_stable(t, all_t, all_v, offset, lo, hi)
            if end is None:
                if hi < stop:
                    end = hi  # settling never takes longer than settle_max_s
                elif stop < n:
                    end = stop  # put on again: a new phase
                else:
                    end, carry = n, onset  # still settling when the chunk ends
            settling[first:end] = True
        self._phase_onset = carry
        self._prev_worn = bool(worn[-1])
        self._keep_tail(t, value)
        return settling

    def _keep_tail(self, t: F64, value: F64) -> None:
        """Carry the readings a later window may reach back to (copies: chunks are freed)."""
        cut = t[-1] - self.cfg.settle_rise_window_s
        k = int(np.searchsorted(t, cut, side="right")) - 1
        if k >= 0:  # the chunk alone covers the window
            self._tail_t, self._tail_v = t[k:].copy(), value[k:].copy()
            return
        old = max(0, int(np.searchsorted(self._tail_t, cut, side="right")) - 1)
        self._tail_t = np.concatenate((self._tail_t[old:], t))
        self._tail_v = np.concatenate((self._tail_v[old:], value))

    def _first_stable(
        self, t: F64, all_t: F64, all_v: F64, offset: int, lo: int, hi: int
    ) -> int | None:
        """First index in [lo, hi) whose reading no longer climbs fast, or None."""
        if lo >= hi:
            return None
        cfg = self.cfg
        j = np.arange(lo, hi)
        ref = np.searchsorted(all_t, t[j] - cfg.settle_rise_window_s, side="right") - 1
        rise = np.where(ref >= 0, all_v[offset + j] - all_v[np.maximum(ref, 0)], 0.0)
        with np.errstate(invalid="ignore"):
            climbing = rise * (60.0 / cfg.settle_rise_window_s) >= cfg.settle_rise_c_per_min
        stable = np.flatnonzero(~climbing)
        return lo + int(stable[0]) if stable.size else None
