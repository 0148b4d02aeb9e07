"""Running the detector over per-strap chunks: the one loop `analyze`, `report` and `validate`
share.

The whole input is read before any result: one incremental detector per strap (the gateway's
own), so memory stays flat whatever the length of the recording.
"""

from __future__ import annotations

from collections.abc import Iterator

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
) -> dict[str, tuple[StrapResult, Samples | None]]:
    """Every strap's results over [period) and (keep_trace) its last 24 h of samples.

    The whole input is read before any result: one incremental detector per strap, so memory
    stays flat whatever the length of the recording (plus a day per strap for the trace)."""
    detectors: dict[str, StrapDetector] = {}
    tails: dict[str, _Tail] = {}
    for device, part in within(chunks, period):
        det = detectors.get(device)
        if det is None:
            det = detectors[device] = StrapDetector(device, cfg)
            tails[device] = _Tail()
        det.feed(part)
        if keep_trace:
            tails[device].add(part)
    for det in detectors.values():
        det.finish()
    return {d: (det.result(), tails[d].samples()) for d, det in detectors.items()}
