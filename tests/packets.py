"""The tests' straps: measurement notifications as a strap sends them (docs/protocol.md), for
tests and benchmarks that hand the gateway batches without a radio, and emulated straps (the
firmware's code on bumble) for those that go through BLE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmc_host import protocol as P
from kmc_host.samples import Samples
from kmc_testbed.radio import VirtualRadio
from kmc_testbed.strap import EmulatedStrap, SensorFeed

T2000 = 837_000_000  # 2026-07-10 10:40 UTC in the strap's 2000 epoch
PASSKEY = 271828  # the label passkey of the emulated straps (and the gateway configs) in tests


def records(
    n: int,
    infant: object = 3680,
    outer: object = 2600,
    contact: object = False,
    first_second: int = 0,
) -> np.ndarray:
    """`n` records at 1 Hz from T2000 + first_second, worn and clock set; temperatures in
    hundredths of a degree (scalars or arrays), `contact` a flag or a boolean array."""
    rec = np.zeros(n, P.RECORD)
    rec["time"] = T2000 + first_second + np.arange(n)
    rec["infant"] = infant
    rec["outer"] = outer
    rec["flags"] = P.FLAG_WORN | P.FLAG_CLOCK_SET | np.where(contact, P.FLAG_CONTACT, 0)
    rec["battery"] = 190
    rec["tilt"] = P.NO_TILT
    return rec


def notifications(rec: np.ndarray, batch: int, first_seq: int = 0) -> list[bytes]:
    """The records as notifications of `batch` records each, sequence numbers from first_seq."""
    out = []
    for k in range(0, len(rec), batch):
        part = rec[k : k + batch]
        head = np.zeros(1, P.HEADER)
        head["version"], head["kind"], head["count"] = 1, 1, len(part)
        head["first_seq"] = first_seq + k
        out.append(head.tobytes() + part.tobytes())
    return out


async def emulated_strap(
    radio: VirtualRadio,
    root: Path,
    feed: SensorFeed | None = None,
    *,
    strap_id: str = "KMC-0001",
    t2000: int = T2000,
    name: str = "strap",
    address: str | None = None,
) -> EmulatedStrap:
    """A strap on a new device of `radio` (at `address`: a reboot keeps it), flash in `root`,
    with the tests' label passkey."""
    device = await radio.device(name, address=address)
    return EmulatedStrap(device, strap_id, feed or SensorFeed(), root, t2000, passkey=PASSKEY)


def samples_messages(
    strap: str, bed: str, infant: str, s: Samples, per: int, digits: int | None = None
) -> Iterator[dict[str, Any]]:
    """The gateway's `samples` messages (docs/mqtt.md) for a strap's samples, `per` at a time, as
    the sink receives them; `digits`: readings rounded as the gateway rounds them (None: exact)."""

    def readings(x: np.ndarray) -> list[float | None]:
        return [None if v != v else v if digits is None else round(v, digits) for v in x.tolist()]

    for a in range(0, len(s), per):
        b = min(len(s), a + per)
        yield {
            "v": 1,
            "strap": strap,
            "bed": bed,
            "infant": infant,
            "seq": list(range(a, b)),
            "time": s.time[a:b].tolist(),
            "infant_c": readings(s.infant_c[a:b]),
            "outer_c": readings(s.outer_c[a:b]),
            "contact": s.contact[a:b].tolist(),
            "worn": s.worn[a:b].tolist(),
            "battery_v": readings(s.battery_v[a:b])
            if s.battery_v is not None
            else [None] * (b - a),
            "clock_set": [True] * (b - a),
        }
