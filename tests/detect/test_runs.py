import numpy as np

from kmc_host.detect.runs import Runs, RunTracker


def runs_in_chunks(t, brk, cls, value, cuts):
    tr = RunTracker(1.0, "min")
    parts = []
    for a, b in zip([0, *cuts], [*cuts, t.size], strict=True):
        parts.append(tr.push(t[a:b], brk[a:b], cls[a:b], value[a:b]))
    parts.append(tr.close())
    return Runs.concat(parts)


def test_runs_tile_time_and_end_at_next_start():
    t = np.arange(10.0)
    brk = np.zeros(10, bool)
    brk[0] = True
    cls = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 0], np.int8)
    r = runs_in_chunks(t, brk, cls, t.copy(), [])
    assert r.cls.tolist() == [1, 0, 1, 0]
    assert r.start.tolist() == [0, 3, 5, 9]
    assert r.end.tolist() == [3, 5, 9, 10]  # the last sample stands for one period
    assert r.extreme.tolist() == [0, 3, 5, 9]


def test_gap_ends_run_one_period_after_last_sample():
    t = np.array([0.0, 1, 2, 20, 21])
    brk = np.array([True, False, False, True, False])
    r = runs_in_chunks(t, brk, np.ones(5, np.int8), t.copy(), [])
    assert r.start.tolist() == [0, 20] and r.end.tolist() == [3, 22]


def test_any_chunking_gives_the_same_runs():
    rng = np.random.default_rng(3)
    n = 5000
    t = np.cumsum(rng.choice([1.0, 1.0, 1.0, 2.0, 9.0], n))
    brk = np.concatenate(([True], np.diff(t) > 5))
    cls = (rng.random(n) < 0.3).astype(np.int8)
    cls = np.repeat(cls[::7], 7)[:n]
    value = rng.normal(36, 1, n)
    whole = runs_in_chunks(t, brk, cls, value, [])
    for seed in range(10):
        cuts = sorted(
            np.random.default_rng(seed).choice(np.arange(1, n), 40, replace=False).tolist()
        )
        part = runs_in_chunks(t, brk, cls, value, cuts)
        for name in ("cls", "start", "end", "extreme"):
            assert np.array_equal(getattr(whole, name), getattr(part, name)), name
