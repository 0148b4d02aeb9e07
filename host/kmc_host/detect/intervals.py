"""Pure functions on sorted, disjoint time intervals given as (start, end) arrays in seconds.

Sessions are built by these small steps (debounce -> bridge -> minimum length), and hours per day
are measured by them; each is one vectorised numpy expression, tested on intervals with known edges.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


def merge_close(start: F64, end: F64, max_gap: float, *, inclusive: bool) -> tuple[F64, F64]:
    """Merge neighbours whose gap is below `max_gap` (or equal to it when `inclusive`)."""
    if start.size < 2:
        return start, end
    gap = start[1:] - end[:-1]
    keep_apart = gap > max_gap if inclusive else gap >= max_gap
    first = np.concatenate(([True], keep_apart))
    last = np.concatenate((keep_apart, [True]))
    return start[first], end[last]


def drop_short(start: F64, end: F64, min_length: float) -> tuple[F64, F64]:
    """Keep only intervals at least `min_length` long."""
    keep = (end - start) >= min_length
    return start[keep], end[keep]


def covered_before(start: F64, end: F64, at: F64) -> F64:
    """Total interval time before each instant in `at` (the cumulative coverage function)."""
    at = np.asarray(at, dtype=np.float64)
    if start.size == 0:
        return np.zeros(at.shape)
    lengths = end - start
    cum = np.concatenate(([0.0], np.cumsum(lengths)))
    i = np.searchsorted(start, at, side="right")  # intervals starting before `at`
    whole = cum[np.maximum(i - 1, 0)]
    j = np.maximum(i - 1, 0)
    partial = np.clip(at - start[j], 0.0, lengths[j])
    return np.where(i > 0, whole + partial, 0.0)


def seconds_in_bins(start: F64, end: F64, edges: F64) -> F64:
    """Interval time falling in each bin [edges[k], edges[k+1])."""
    return np.diff(covered_before(start, end, edges))


def seconds_in_windows(start: F64, end: F64, window_end: F64, window_s: float) -> F64:
    """Interval time within the window (window_end - window_s, window_end] of each instant."""
    window_end = np.asarray(window_end, dtype=np.float64)
    return covered_before(start, end, window_end) - covered_before(
        start, end, window_end - window_s
    )


def contains(start: F64, end: F64, t: F64) -> NDArray[np.bool_]:
    """Whether each instant of `t` lies inside one of the intervals [start, end)."""
    if start.size == 0:
        return np.zeros(np.shape(t), dtype=bool)
    i = np.searchsorted(start, t, side="right") - 1
    return (i >= 0) & (t < end[np.maximum(i, 0)])
