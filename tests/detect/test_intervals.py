import numpy as np
import pytest

from kmc_host.detect.intervals import (
    contains,
    covered_before,
    drop_short,
    merge_close,
    seconds_in_bins,
    seconds_in_windows,
)

S = np.array([0.0, 100.0, 130.0, 1000.0])
E = np.array([50.0, 120.0, 400.0, 1010.0])


def test_merge_close_exclusive_and_inclusive():
    s, e = merge_close(S, E, 10.0, inclusive=False)  # gap 10 is not < 10
    assert s.tolist() == [0, 100, 130, 1000] and e.tolist() == [50, 120, 400, 1010]
    s, e = merge_close(S, E, 10.0, inclusive=True)  # gap 10 <= 10 merges
    assert s.tolist() == [0, 100, 1000] and e.tolist() == [50, 400, 1010]
    s, e = merge_close(S, E, 600.0, inclusive=True)
    assert s.tolist() == [0] and e.tolist() == [1010]


def test_drop_short_keeps_exact_minimum():
    s, e = drop_short(S, E, 20.0)
    assert s.tolist() == [0, 100, 130] and e.tolist() == [50, 120, 400]


def test_covered_before_and_bins():
    at = np.array([-5.0, 0.0, 25.0, 60.0, 110.0, 2000.0])
    assert covered_before(S, E, at).tolist() == [0, 0, 25, 50, 60, 50 + 20 + 270 + 10]
    assert seconds_in_bins(S, E, np.array([0.0, 100.0, 200.0, 2000.0])).tolist() == [50, 90, 210]
    assert covered_before(np.empty(0), np.empty(0), at).tolist() == [0] * 6


def test_windows():
    got = seconds_in_windows(S, E, np.array([120.0, 1010.0]), 100.0)
    assert got.tolist() == [30.0 + 20.0, 10.0]  # (20, 120] holds 20..50 and 100..120


@pytest.mark.parametrize(
    ("t", "inside"),
    [(0.0, True), (49.9, True), (50.0, False), (99.0, False), (1009.0, True), (-1.0, False)],
)
def test_contains_half_open(t, inside):
    assert contains(S, E, np.array([t]))[0] == inside
