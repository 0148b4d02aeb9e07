"""The straps detected on worker threads: the same results as one thread, each strap's chunks
in their order, a worker's error raised in the caller, a caller's error stopping the workers."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import assert_same_results
from kmc_analysis import detection
from kmc_analysis.detection import detect_period
from kmc_analysis.samples_io import SampleReader
from kmc_analysis.simulate import simulate_ward
from kmc_host.detect import DetectorConfig, StrapDetector
from kmc_host.samples import Samples


@pytest.fixture(scope="module")
def ward(tmp_path_factory):
    path = tmp_path_factory.mktemp("workers") / "s.parquet"
    simulate_ward(path, 5, 1.0, seed=3, truth_dir=path.parent / "truth")
    return path


def _chunks(path, size=5000):
    """The file's chunks cut small and taken strap after strap in turn, as a gateway log
    interleaves them: every worker has several straps, each strap many chunks."""
    per_strap = [
        [(d, s.slice(a, min(a + size, len(s)))) for a in range(0, len(s), size)]
        for d, s in SampleReader(path).consume(list)
    ]
    out = []
    for k in range(max(len(p) for p in per_strap)):
        out += [p[k] for p in per_strap if k < len(p)]
    return out


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_what_one_thread_gives(ward, workers):
    chunks = _chunks(ward)
    one = detect_period(iter(chunks), DetectorConfig(), workers=1)
    many = detect_period(iter(chunks), DetectorConfig(), workers=workers)
    assert list(one) == list(many)  # the straps in the order they came
    for device in one:
        assert_same_results(one[device][0], many[device][0])
        np.testing.assert_array_equal(one[device][1].time, many[device][1].time)


def test_each_straps_chunks_are_fed_in_order_on_one_thread(ward, monkeypatch):
    fed: dict[str, list[tuple[float, str]]] = {}
    feed = StrapDetector.feed

    def recording(self, chunk):
        fed.setdefault(self.device, []).append(
            (float(chunk.time[0]), threading.current_thread().name)
        )
        return feed(self, chunk)

    monkeypatch.setattr(StrapDetector, "feed", recording)
    detect_period(iter(_chunks(ward)), DetectorConfig(), workers=2)
    assert len(fed) == 5
    threads = set()
    for calls in fed.values():
        starts = [t for t, _ in calls]
        assert starts == sorted(starts) and len(starts) > 10
        assert len({name for _, name in calls}) == 1  # one worker a strap
        threads |= {name for _, name in calls}
    assert threads == {"kmc-detect-0", "kmc-detect-1"}


def test_a_workers_error_is_raised_in_the_caller(ward, monkeypatch):
    def broken(self, chunk):
        raise RuntimeError(f"detector of {self.device} broke")

    monkeypatch.setattr(StrapDetector, "feed", broken)
    with pytest.raises(RuntimeError, match="detector of KMC-0[1-5] broke"):
        detect_period(iter(_chunks(ward)), DetectorConfig(), workers=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("kmc-detect")]


@pytest.mark.parametrize("room", [20_000, 10_000_000], ids=["caller-waits-for-room", "all-queued"])
def test_a_callers_error_stops_the_workers_with_a_backlog(ward, monkeypatch, room):
    """The reader fails mid-file (a strap's rows going back in time, say) while the workers
    hold a backlog: the error reaches the caller, the workers leave the rest of their backlog
    undetected (they finish the chunk each is on) and none is left running."""
    monkeypatch.setattr(detection, "QUEUED_SAMPLES", room)
    chunks = _chunks(ward)
    fed = []
    feed = StrapDetector.feed

    def slow(self, chunk):
        time.sleep(0.02)
        fed.append(chunk)
        return feed(self, chunk)

    monkeypatch.setattr(StrapDetector, "feed", slow)

    def failing():
        yield from chunks
        raise LookupError("the reader stopped")

    with pytest.raises(LookupError, match="the reader stopped"):
        detect_period(failing(), DetectorConfig(), workers=2)
    assert not [t for t in threading.enumerate() if t.name.startswith("kmc-detect")]
    if room > len(chunks) * 5000:  # everything was queued when the error came
        assert len(fed) < len(chunks) // 2, f"{len(fed)} of {len(chunks)} chunks fed"


def test_an_empty_input_and_one_sample():
    assert detect_period(iter([]), DetectorConfig(), workers=2) == {}
    one = Samples(
        np.array([1.78e9]),
        np.array([36.5]),
        np.array([30.0]),
        np.array([1], np.int8),
        np.array([1], np.int8),
    )
    got = detect_period(iter([("S", one)]), DetectorConfig(), workers=2)
    assert list(got) == ["S"] and got["S"][0].samples == 1
