"""Threshold bands with persistence and hysteresis: thermal alerts and low battery.

Each valid sample is classed against one band:
  BEYOND   past the threshold (below it for cold bands, above it for heat),
  BACK     back past the threshold by the hysteresis margin,
  BETWEEN  in the hysteresis margin,
  INVALID  not to be judged (strap off, sensor settling, no reading).
A BEYOND run lasting `persist_s` enters the band; the episode starts where that run started.
A BACK run lasting `persist_s` leaves it; the episode ends where that run started. An INVALID run
or a data gap ends an open episode at the last valid sample. The state machine runs over runs,
not samples, so it is a handful of vectorised operations on short arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .config import Band
from .runs import Runs, RunTracker

INVALID, BEYOND, BETWEEN, BACK = 0, 1, 2, 3  # ordered so that classify is two comparisons
ENTER, EXIT = 1, -1
_TOUCH = 1e-9  # runs closer than this are contiguous (floating-point slack)


@dataclass(frozen=True)
class Episodes:
    """Alert episodes of one kind as parallel arrays."""

    kind: str
    start: NDArray[np.float64]
    end: NDArray[np.float64]
    extreme: NDArray[np.float64]
    alert_time: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.start.size)

    @staticmethod
    def empty(kind: str) -> Episodes:
        e = np.empty(0)
        return Episodes(kind, e, e, e, e)

    @staticmethod
    def concat(kind: str, parts: list[Episodes]) -> Episodes:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Episodes.empty(kind)
        return Episodes(
            kind,
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.end for p in parts]),
            np.concatenate([p.extreme for p in parts]),
            np.concatenate([p.alert_time for p in parts]),
        )


def classify(value: NDArray[np.float64], valid: NDArray[np.bool_], band: Band) -> NDArray[np.int8]:
    """Class of each sample against the band (see module docstring).

    `valid` must already exclude missing values (NaN); the class is BEYOND + the number of
    thresholds passed on the way back (0, 1 or 2), then zeroed where not valid.
    """
    with np.errstate(invalid="ignore"):
        if band.direction == "below":
            back = (value >= band.threshold).view(np.int8) + (
                value >= band.threshold + band.hysteresis
            ).view(np.int8)
        else:
            back = (value <= band.threshold).view(np.int8) + (
                value <= band.threshold - band.hysteresis
            ).view(np.int8)
    back += BEYOND
    back *= valid.view(np.int8)
    return back


class BandTracker:
    """Incremental episodes of one band; chunking never changes the result."""

    def __init__(self, band: Band, period: float) -> None:
        self.band = band
        self.runs = RunTracker(period, "min" if band.direction == "below" else "max")
        self._in = False
        self._ep_start = np.nan
        self._ep_extreme = np.nan
        self._last_end = np.nan  # end of the last closed run

    def push(
        self,
        t: NDArray[np.float64],
        brk: NDArray[np.bool_],
        value: NDArray[np.float64],
        valid: NDArray[np.bool_],
    ) -> Episodes:
        """Add a chunk of samples; return the episodes it ended."""
        return self._advance(self.runs.push(t, brk, classify(value, valid, self.band), value))

    def finish(self) -> Episodes:
        """End of the recording: close the open run, and an open episode at the last sample."""
        done = self._advance(self.runs.close())
        if not self._in:
            return done
        last = Episodes(
            self.band.kind,
            np.array([self._ep_start]),
            np.array([self._last_end]),
            np.array([self._ep_extreme]),
            np.array([self._ep_start + self.band.persist_s]),
        )
        self._in = False
        return Episodes.concat(self.band.kind, [done, last])

    def active(self) -> tuple[float, float] | None:
        """(start, extreme) of the episode in progress, counting the still-open run."""
        run = self.runs.open
        fmin = np.fmin if self.band.direction == "below" else np.fmax
        if self._in:
            if run is not None and run.cls == INVALID:
                return None
            if run is not None and run.cls == BACK and run.duration >= self.band.persist_s:
                return None
            ext = self._ep_extreme if run is None else float(fmin(self._ep_extreme, run.extreme))
            return self._ep_start, ext
        if run is not None and run.cls == BEYOND and run.duration >= self.band.persist_s:
            return run.start, run.extreme
        return None

    def _advance(self, runs: Runs) -> Episodes:
        """Run the state machine over closed runs, starting from the carried state."""
        kind = self.band.kind
        n = len(runs)
        if n == 0:
            return Episodes.empty(kind)
        reduce = np.fmin if self.band.direction == "below" else np.fmax
        long_enough = runs.duration >= self.band.persist_s
        run_tag = np.zeros(n, np.int8)
        run_tag[(runs.cls == BEYOND) & long_enough] = ENTER
        run_tag[((runs.cls == BACK) & long_enough) | (runs.cls == INVALID)] = EXIT
        prev_end = np.concatenate(([self._last_end], runs.end[:-1]))
        gap_tag = np.where(runs.start > prev_end + _TOUCH, EXIT, 0).astype(np.int8)

        # Events in time order: for run k, first the gap before it, then the run itself.
        tag = np.stack((gap_tag, run_tag), axis=1).ravel()
        time = np.stack((prev_end, runs.start), axis=1).ravel()
        run_of = np.repeat(np.arange(n), 2)
        ev = np.flatnonzero(tag)
        tag, time, run_of = tag[ev], time[ev], run_of[ev]
        state_before = np.concatenate(([ENTER if self._in else EXIT], tag[:-1]))
        is_start = (tag == ENTER) & (state_before == EXIT)
        is_end = (tag == EXIT) & (state_before == ENTER)

        starts_t, starts_run = time[is_start], run_of[is_start]
        ends_t, ends_run = time[is_end], run_of[is_end]
        carried = self._in
        if carried:  # the first end closes the episode carried in from earlier chunks
            starts_t = np.concatenate(([self._ep_start], starts_t))
            starts_run = np.concatenate(([0], starts_run))
        n_closed = ends_t.size
        # Extreme over runs [start_run, end_run) of each closed episode, then the open one.
        bounds = np.stack((starts_run[:n_closed], ends_run), axis=1).ravel()
        ext_all = np.concatenate((runs.extreme, [np.nan]))
        extreme = reduce.reduceat(ext_all, bounds)[::2] if n_closed else np.empty(0)
        if carried and n_closed:  # a gap right at the chunk start leaves no run of its own
            own = extreme[0] if ends_run[0] > 0 else np.nan
            extreme[0] = reduce(own, self._ep_extreme)
        closed = Episodes(
            kind,
            starts_t[:n_closed],
            ends_t,
            extreme,
            starts_t[:n_closed] + self.band.persist_s,
        )

        still_open = starts_t.size > n_closed
        if still_open:
            first_run = int(starts_run[-1])
            ext = float(reduce.reduce(runs.extreme[first_run:]))
            if carried and n_closed == 0:
                ext = float(reduce(ext, self._ep_extreme))
            else:
                self._ep_start = float(starts_t[-1])
            self._ep_extreme = ext
        self._in = bool(still_open)
        self._last_end = float(runs.end[-1])
        return closed
