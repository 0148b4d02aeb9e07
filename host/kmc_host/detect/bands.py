"""Threshold bands with persistence and hysteresis: thermal alerts and low battery.

Each valid sample is classed against one band:
  BEYOND   past the threshold (below it for cold bands, above it for heat),
  BACK     back past the threshold by the hysteresis margin,
  BETWEEN  in the hysteresis margin,
  INVALID  not to be judged (strap off, sensor settling, no reading).
Runs join into stretches across excursions shorter than `glitch_s` (noise around a threshold).
A BEYOND stretch lasting `persist_s` enters the band; the episode starts where it started.
A BACK stretch lasting `persist_s` leaves it; the episode ends where that stretch started. An
INVALID run or a data gap ends an open episode at the last valid sample, except a gap of at
most `bridge_s` with BEYOND readings on both sides: the baby was beyond the threshold before
and after the missing minutes, so it is one episode, raised once (docs/detector.md). The state
machine runs over stretches, not samples, so it is a handful of vectorised operations on short
arrays.
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


def merge_glitches(runs: Runs, glitch_s: float, reduce: np.ufunc, final: bool) -> tuple[Runs, int]:
    """Stretches of runs: a short excursion between two runs of the same side is bridged.

    A valid run shorter than `glitch_s`, between two contiguous BEYOND (or two BACK) runs, is
    sensor noise around a threshold: it joins its neighbours into one stretch, so persistence
    is not reset by a single noisy reading. Returns the stretches of the first k runs and k:
    unless `final`, the last stretch (and a short run that may yet turn out to be a glitch,
    with the stretch before it) waits for the next runs.
    """
    n = len(runs)
    if n == 0:
        return runs, 0
    c = runs.cls
    contiguous = runs.start[1:] <= runs.end[:-1] + _TOUCH  # run j+1 follows run j directly
    label = c.copy()
    if n >= 3:
        j = np.arange(1, n - 1)
        side = c[j - 1]
        glitch = (
            (c[j] != INVALID)
            & (runs.duration[j] < glitch_s)
            & (side == c[j + 1])
            & ((side == BEYOND) | (side == BACK))
            & contiguous[j - 1]
            & contiguous[j]
        )
        label[j[glitch]] = side[glitch]
    new = np.concatenate(([True], (label[1:] != label[:-1]) | ~contiguous))
    first = np.flatnonzero(new)
    k = n
    if not final:
        k = int(first[-1])
        last_alone = k == n - 1
        if (
            last_alone
            and k > 0
            and c[k] != INVALID
            and runs.duration[k] < glitch_s
            and contiguous[k - 1]
            and label[k - 1] in (BEYOND, BACK)
        ):
            k = int(first[-2])
        first = first[first < k]
    if k == 0:
        return Runs.empty(), 0
    last = np.concatenate((first[1:] - 1, [k - 1]))
    stretches = Runs(
        label[first], runs.start[first], runs.end[last], reduce.reduceat(runs.extreme[:k], first)
    )
    return stretches, k


@dataclass(frozen=True)
class _State:
    """The band state machine between chunks."""

    inside: bool = False
    ep_start: float = np.nan
    ep_extreme: float = np.nan
    last_end: float = np.nan  # end of the last stretch processed
    last_cls: int = INVALID  # class of the last stretch processed


def _machine(
    st: Runs, state: _State, band: Band, reduce: np.ufunc, bridge_s: float
) -> tuple[Episodes, _State]:
    """Run the state machine over stretches from `state`; return ended episodes and new state."""
    kind = band.kind
    n = len(st)
    if n == 0:
        return Episodes.empty(kind), state
    long_enough = st.duration >= band.persist_s
    run_tag = np.zeros(n, np.int8)
    run_tag[(st.cls == BEYOND) & long_enough] = ENTER
    run_tag[((st.cls == BACK) & long_enough) | (st.cls == INVALID)] = EXIT
    prev_end = np.concatenate(([state.last_end], st.end[:-1]))
    prev_cls = np.concatenate(([state.last_cls], st.cls[:-1]))
    gap = st.start - prev_end
    bridged = (gap <= bridge_s + _TOUCH) & (prev_cls == BEYOND) & (st.cls == BEYOND)
    gap_tag = np.where((gap > _TOUCH) & ~bridged, EXIT, 0).astype(np.int8)

    # Events in time order: for stretch k, first the gap before it, then the stretch itself.
    tag = np.stack((gap_tag, run_tag), axis=1).ravel()
    time = np.stack((prev_end, st.start), axis=1).ravel()
    run_of = np.repeat(np.arange(n), 2)
    ev = np.flatnonzero(tag)
    tag, time, run_of = tag[ev], time[ev], run_of[ev]
    state_before = np.concatenate(([ENTER if state.inside else EXIT], tag[:-1]))
    is_start = (tag == ENTER) & (state_before == EXIT)
    is_end = (tag == EXIT) & (state_before == ENTER)

    starts_t, starts_run = time[is_start], run_of[is_start]
    ends_t, ends_run = time[is_end], run_of[is_end]
    carried = state.inside
    if carried:  # the first end closes the episode carried in from earlier chunks
        starts_t = np.concatenate(([state.ep_start], starts_t))
        starts_run = np.concatenate(([0], starts_run))
    n_closed = ends_t.size
    # Extreme over stretches [start, end) of each closed episode, then the open one.
    bounds = np.stack((starts_run[:n_closed], ends_run), axis=1).ravel()
    ext_all = np.concatenate((st.extreme, [np.nan]))
    extreme = reduce.reduceat(ext_all, bounds)[::2] if n_closed else np.empty(0)
    if carried and n_closed:  # a gap right at the start leaves no stretch of its own
        own = extreme[0] if ends_run[0] > 0 else np.nan
        extreme[0] = reduce(own, state.ep_extreme)
    closed = Episodes(
        kind, starts_t[:n_closed], ends_t, extreme, starts_t[:n_closed] + band.persist_s
    )
    inside = starts_t.size > n_closed
    ep_start, ep_extreme = state.ep_start, state.ep_extreme
    if inside:
        ext = float(reduce.reduce(st.extreme[int(starts_run[-1]) :]))
        if carried and n_closed == 0:
            ext = float(reduce(ext, state.ep_extreme))
        else:
            ep_start = float(starts_t[-1])
        ep_extreme = ext
    return closed, _State(inside, ep_start, ep_extreme, float(st.end[-1]), int(st.cls[-1]))


class BandTracker:
    """Incremental episodes of one band; chunking never changes the result. `bridge_s`: the
    longest data gap an episode survives when it is beyond the threshold on both sides (0: a
    gap always ends it)."""

    def __init__(self, band: Band, period: float, bridge_s: float = 0.0) -> None:
        self.band = band
        self.bridge_s = bridge_s
        self.runs = RunTracker(period, "min" if band.direction == "below" else "max")
        self._reduce: np.ufunc = np.fmin if band.direction == "below" else np.fmax
        self._pending = Runs.empty()  # closed runs whose stretch is not complete yet
        self._state = _State()
        self._told_until = -np.inf  # start of the last episode handed out before its run closed

    def push(
        self,
        t: NDArray[np.float64],
        brk: NDArray[np.bool_],
        value: NDArray[np.float64],
        valid: NDArray[np.bool_],
    ) -> Episodes:
        """Add a chunk of samples; return the episodes it ended."""
        done = self._advance(
            self.runs.push(t, brk, classify(value, valid, self.band), value), False
        )
        return Episodes.concat(self.band.kind, [done, self._ended_early()])

    def _ended_early(self) -> Episodes:
        """An episode that the still-open run has already ended, handed out now.

        The run that ends an episode (back past the threshold for `persist_s`, or invalid) may
        stay open for hours while the baby stays warm; its episode cannot change any more (the
        open run is too long to be a glitch, and the runs before it are closed), so a live
        gateway says "ended" when the rule is met rather than when the run finally closes. The
        same episode is not handed out again when the run closes (`_told_until`)."""
        run = self.runs.open
        if run is None or run.cls not in (BACK, INVALID):
            return Episodes.empty(self.band.kind)
        if not (self._state.inside or len(self._pending)):
            return Episodes.empty(self.band.kind)
        parts = Runs.concat([self._pending, run.as_runs()])
        stretches, _ = merge_glitches(parts, self.band.glitch_s, self._reduce, True)
        episodes, _ = _machine(stretches, self._state, self.band, self._reduce, self.bridge_s)
        return self._untold(episodes, remember=True)

    def _untold(self, episodes: Episodes, remember: bool = False) -> Episodes:
        fresh = episodes.start > self._told_until
        if not fresh.all():
            episodes = Episodes(
                episodes.kind,
                episodes.start[fresh],
                episodes.end[fresh],
                episodes.extreme[fresh],
                episodes.alert_time[fresh],
            )
        if remember and len(episodes):
            self._told_until = float(episodes.start[-1])
        return episodes

    def finish(self) -> Episodes:
        """End of the recording: close the open run, and an open episode at the last sample."""
        done = self._advance(self.runs.close(), True)
        st = self._state
        if not st.inside:
            return done
        last = Episodes(
            self.band.kind,
            np.array([st.ep_start]),
            np.array([st.last_end]),
            np.array([st.ep_extreme]),
            np.array([st.ep_start + self.band.persist_s]),
        )
        self._state = _State(last_end=st.last_end, last_cls=st.last_cls)
        return Episodes.concat(self.band.kind, [done, last])

    def active(self) -> tuple[float, float] | None:
        """(start, extreme) of the episode in progress, counting the runs not yet final."""
        parts = [self._pending]
        if self.runs.open is not None:
            parts.append(self.runs.open.as_runs())
        stretches, _ = merge_glitches(Runs.concat(parts), self.band.glitch_s, self._reduce, True)
        _, st = _machine(stretches, self._state, self.band, self._reduce, self.bridge_s)
        return (st.ep_start, st.ep_extreme) if st.inside else None

    def push_invalid(self, t: NDArray[np.float64], brk: NDArray[np.bool_]) -> Episodes:
        """A chunk with nothing to judge (e.g. no battery reading): one INVALID class."""
        return self._advance(self.runs.push(t, brk, np.zeros(t.size, np.int8)), False)

    def _advance(self, runs: Runs, final: bool) -> Episodes:
        if len(runs) == 0 and not final:  # nothing closed: nothing can change
            return Episodes.empty(self.band.kind)
        runs = Runs.concat([self._pending, runs])
        stretches, k = merge_glitches(runs, self.band.glitch_s, self._reduce, final)
        self._pending = runs.slice(k, len(runs))
        episodes, self._state = _machine(
            stretches, self._state, self.band, self._reduce, self.bridge_s
        )
        return self._untold(episodes)
