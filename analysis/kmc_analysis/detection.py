"""Running the detector over per-strap chunks: the one loop `analyze`, `report` and `validate`
share.

The whole input is read before any result: one incremental detector per strap (the gateway's
own), so memory stays flat whatever the length of the recording.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from kmc_host.detect import DetectorConfig, StrapDetector, StrapResult
from kmc_host.samples import Samples

TRACE_S = 86400.0  # the report's temperature trace: the last 24 h of each strap's data


class _Tail:
    """The last `TRACE_S` of one strap's samples, kept as chunks (memory: one day per strap)."""

    def __init__(self) -> None:
        self.parts: list[Samples] = []

    def add(self, chunk: Samples) -> None:
        self.parts.append(chunk)
        cut = chunk.time[-1] - TRACE_S
        while len(self.parts) > 1 and self.parts[0].time[-1] < cut:
            self.parts.pop(0)

    def samples(self) -> Samples | None:
        if not self.parts:
            return None
        whole = Samples.concat(self.parts)
        k = int(np.searchsorted(whole.time, whole.time[-1] - TRACE_S, side="left"))
        return whole.slice(k, len(whole))


def within(
    chunks: Iterator[tuple[str, Samples]], period: tuple[float, float] | None
) -> Iterator[tuple[str, Samples]]:
    """The chunks' samples in [period) (all of them for None); empty chunks left out."""
    for device, chunk in chunks:
        if period is not None:
            a, b = np.searchsorted(chunk.time, period, side="left")
            if a != 0 or b != len(chunk):
                chunk = chunk.slice(int(a), int(b))
        if len(chunk):
            yield device, chunk


def detect_period(
    chunks: Iterator[tuple[str, Samples]],
    cfg: DetectorConfig,
    period: tuple[float, float] | None = None,
    keep_trace: bool = True,
    workers: int | None = None,
) -> dict[str, tuple[StrapResult, Samples | None]]:
    """Every strap's results over [period) and (keep_trace) its last 24 h of samples.

    The whole input is read before any result: one incremental detector per strap, so memory
    stays flat whatever the length of the recording (plus a day per strap for the trace).
    The straps are detected on `workers` threads (default: one a core, at most
    MAX_WORKERS), each strap's chunks in order on one of them (see `_Workers`)."""
    detectors: dict[str, StrapDetector] = {}
    tails: dict[str, _Tail] = {}

    def feed(device: str, part: Samples) -> None:
        detectors[device].feed(part)
        if keep_trace:
            tails[device].add(part)

    with _Workers(feed, default_workers() if workers is None else workers) as pool:
        for device, part in within(chunks, period):
            if device not in detectors:
                detectors[device] = StrapDetector(device, cfg)
                tails[device] = _Tail()
            pool.feed(device, part)
    for det in detectors.values():
        det.finish()
    return {d: (det.result(), tails[d].samples()) for d, det in detectors.items()}


MAX_WORKERS = 4
QUEUED_SAMPLES = 1 << 21  # a worker's backlog, at most (about 80 MB of chunks)


def default_workers() -> int:
    """One detecting thread a core this process may use, at most MAX_WORKERS."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0))))


class _Workers:
    """Chunks fed to per-strap detectors on worker threads, each strap's in the order given.

    Each strap is given to one worker when it first comes (in turn), and its chunks queue
    there: the order of a strap's chunks is kept, and two straps are detected at once on two
    cores, since numpy releases the GIL inside its loops over a chunk's tens of thousands of
    samples. A worker's backlog is bounded (QUEUED_SAMPLES), so memory stays flat. A worker's
    error is raised in the caller at its next `feed` or at the end; an error in the caller
    stops the workers after the chunk each is on. One worker: fed inline, no thread."""

    def __init__(self, feed: Callable[[str, Samples], None], n: int) -> None:
        self._feed = feed
        self._n = n
        self._of: dict[str, int] = {}
        self._queues: list[queue.Queue[tuple[str, Samples] | None]] = []
        self._threads: list[threading.Thread] = []
        self._queued = [0] * n  # samples waiting at each worker
        self._room = threading.Condition()
        self._error: BaseException | None = None
        self._stop = threading.Event()

    def __enter__(self) -> _Workers:
        if self._n > 1:
            for k in range(self._n):
                q: queue.Queue[tuple[str, Samples] | None] = queue.Queue()
                t = threading.Thread(
                    target=self._work, args=(k, q), name=f"kmc-detect-{k}", daemon=True
                )
                self._queues.append(q)
                self._threads.append(t)
                t.start()
        return self

    def feed(self, device: str, part: Samples) -> None:
        if self._n == 1:
            self._feed(device, part)
            return
        k = self._of.setdefault(device, len(self._of) % self._n)
        with self._room:
            while self._queued[k] and self._queued[k] + len(part) > QUEUED_SAMPLES:
                self._raise()
                self._room.wait()
            self._queued[k] += len(part)
        self._raise()
        self._queues[k].put((device, part))

    def _work(self, k: int, q: queue.Queue[tuple[str, Samples] | None]) -> None:
        while (item := q.get()) is not None:
            try:
                if not self._stop.is_set():  # else drained: the caller is leaving
                    self._feed(*item)
            except BaseException as exc:  # raised in the caller
                self._error = self._error or exc
                self._stop.set()
            with self._room:
                self._queued[k] -= len(item[1])
                self._room.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if exc is not None:
            self._stop.set()
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()
        if exc is None:
            self._raise()
