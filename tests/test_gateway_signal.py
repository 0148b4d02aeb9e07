"""`signal_lost`: raised after 2 min of silence measured on a monotonic clock, ended with the
same start when data flows again; a host clock stepped by an hour (NTP) raises nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from kmc_host import protocol as P
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.publisher import BrokerConfig, TopicTree
from kmc_host.gateway.service import Gateway
from packets import T2000, notifications, records


def batch(first: int, n: int = 10) -> P.Measurement:
    (packet,) = notifications(records(n, first_second=first), n, first_seq=first)
    return P.decode_measurement(packet)


def alerts(gw: Gateway) -> list[dict]:
    return [
        json.loads(m.payload)
        for m in gw.publisher.outbox.oldest(10_000)
        if m.topic.endswith("/alert")
    ]


def test_signal_lost_uses_a_monotonic_clock(tmp_path: Path):
    wall = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
    mono = {"t": 1000.0}
    cfg = GatewayConfig(
        TopicTree("kmc", "site1", "ward-a"),
        "UTC",
        tmp_path / "gw",
        BrokerConfig(port=1, client_id="t"),  # never started: messages stay in the outbox
        (StrapEntry("S1", "1", "INF-1"),),
        DetectorConfig(),
    )
    gw = Gateway(cfg, now=lambda: wall["t"], elapsed=lambda: mono["t"])

    async def watch_once() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gw._watchdog(stop, period_s=0.01))
        await asyncio.sleep(0.05)
        stop.set()
        await task

    async def main() -> None:
        await gw._on_batch("S1", batch(0))
        wall["t"] += 3600  # the host clock stepped an hour ahead; 10 s really passed
        mono["t"] += 10
        await watch_once()
        assert alerts(gw) == []
        mono["t"] += 121  # now 2 min of real silence
        await watch_once()
        (active,) = alerts(gw)
        assert active["kind"] == "signal_lost" and active["state"] == "active"
        await gw._on_batch("S1", batch(10))
        ended = alerts(gw)[-1]
        assert ended["state"] == "ended" and ended["start"] == active["start"]

    asyncio.run(main())
    gw.publisher.outbox.close()
