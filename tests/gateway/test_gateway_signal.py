"""`signal_lost`: raised after 2 min of silence measured on a monotonic clock, ended with the
same start when data flows again; a host clock stepped by an hour (NTP) raises nothing; a
gateway restart neither forgets an open episode nor a strap that does not come back."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from kmc_host import protocol as P
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import BrokerConfig, TopicTree
from kmc_host.timefmt import iso_utc
from packets import T2000, notifications, records

# every payload the gateway publishes in these tests keeps to the MQTT contract (conftest)
pytestmark = pytest.mark.usefixtures("mqtt_contract")


def batch(first: int, n: int = 10) -> P.Measurement:
    (packet,) = notifications(records(n, first_second=first), n, first_seq=first)
    return P.decode_measurement(packet)


def alerts(gw: Gateway) -> list[dict]:
    return [
        json.loads(m.payload)
        for m in gw.publisher.outbox.oldest(10_000)
        if m.topic.endswith("/alert")
    ]


def gateway(tmp_path: Path, wall: dict, mono: dict) -> Gateway:
    cfg = GatewayConfig(
        TopicTree("kmc", "site1", "ward-a"),
        "UTC",
        tmp_path / "gw",
        BrokerConfig(port=1, client_id="t"),  # never started: messages stay in the outbox
        (StrapEntry("S1", "1", "INF-1"),),
        DetectorConfig(),
    )
    return Gateway(cfg, now=lambda: wall["t"], elapsed=lambda: mono["t"])


async def watch_once(gw: Gateway) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(gw._watchdog(stop, period_s=0.01))
    await asyncio.sleep(0.05)
    stop.set()
    await task


def stop(gw: Gateway) -> None:
    """What a clean stop does after the publisher: keep the silences for the next start."""
    gw._save_silences(*gw.straps.values())
    gw.publisher.outbox.close()


def test_signal_lost_uses_a_monotonic_clock(tmp_path: Path):
    wall = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
    mono = {"t": 1000.0}
    gw = gateway(tmp_path, wall, mono)

    async def main() -> None:
        await gw._on_batch("S1", batch(0))
        wall["t"] += 3600  # the host clock stepped an hour ahead; 10 s really passed
        mono["t"] += 10
        await watch_once(gw)
        assert alerts(gw) == []
        mono["t"] += 121  # now 2 min of real silence
        await watch_once(gw)
        (active,) = alerts(gw)
        assert active["kind"] == "signal_lost" and active["state"] == "active"
        await gw._on_batch("S1", batch(10))
        ended = alerts(gw)[-1]
        assert ended["state"] == "ended" and ended["start"] == active["start"]

    asyncio.run(main())
    gw.publisher.outbox.close()


def test_a_strap_never_heard_from_since_the_start_is_reported(tmp_path: Path):
    wall = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
    mono = {"t": 50.0}
    gw = gateway(tmp_path, wall, mono)
    started = wall["t"]

    async def main() -> None:
        wall["t"] += 100
        mono["t"] += 100
        await watch_once(gw)
        assert alerts(gw) == []  # 100 s: still finding it
        wall["t"] += 30
        mono["t"] += 30
        await watch_once(gw)
        (active,) = alerts(gw)
        assert active["kind"] == "signal_lost" and active["state"] == "active"
        assert active["start"] == iso_utc(started)  # silent since the gateway started

    asyncio.run(main())
    gw.publisher.outbox.close()


def test_a_restart_keeps_an_open_episode_and_ends_it_with_its_start(tmp_path: Path):
    wall = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
    mono = {"t": 1000.0}
    gw = gateway(tmp_path, wall, mono)

    async def first_run() -> dict:
        await gw._on_batch("S1", batch(0))
        wall["t"] += 200
        mono["t"] += 200
        await watch_once(gw)
        (active,) = alerts(gw)
        return active

    active = asyncio.run(first_run())
    stop(gw)
    wall["t"] += 600  # the gateway is down 10 min; a new process, a new monotonic clock
    mono["t"] = 5.0
    gw2 = gateway(tmp_path, wall, mono)

    async def second_run() -> None:
        mono["t"] += 300
        await watch_once(gw2)
        # (the outbox still holds the first run's message: the broker was never there)
        assert alerts(gw2) == [active]  # still the same episode: not raised twice
        await gw2._on_batch("S1", batch(10))
        ended = alerts(gw2)[-1]
        assert len(alerts(gw2)) == 2
        assert ended["state"] == "ended" and ended["start"] == active["start"]

    asyncio.run(second_run())
    stop(gw2)
    gw3 = gateway(tmp_path, wall, mono)  # and after that restart, nothing is open
    assert gw3.straps["S1"].lost_since is None
    gw3.publisher.outbox.close()


def test_a_strap_that_does_not_come_back_after_a_restart_is_reported_from_its_last_data(
    tmp_path: Path,
):
    wall = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
    mono = {"t": 1000.0}
    gw = gateway(tmp_path, wall, mono)

    async def first_run() -> float:
        await gw._on_batch("S1", batch(0))
        return wall["t"]

    last = asyncio.run(first_run())
    stop(gw)  # a clean stop (an update, say): the strap then goes flat meanwhile
    wall["t"] += 300
    mono["t"] = 0.0
    gw2 = gateway(tmp_path, wall, mono)

    async def second_run() -> None:
        mono["t"] += 60
        await watch_once(gw2)
        assert alerts(gw2) == []  # it may still reconnect: timed from this start
        mono["t"] += 61
        await watch_once(gw2)
        (active,) = alerts(gw2)  # (the first run's outbox held samples only)
        assert active["state"] == "active" and active["start"] == iso_utc(last)

    asyncio.run(second_run())
    gw2.publisher.outbox.close()


def test_a_corrupt_silence_file_is_named(tmp_path: Path):
    (tmp_path / "gw").mkdir()
    (tmp_path / "gw" / "silences.json").write_text('{"S1": {"last": "x"}}')
    with pytest.raises(ValueError, match=r"silences.json: strap silence file is corrupt"):
        gateway(tmp_path, {"t": 0.0}, {"t": 0.0})


def test_a_clock_set_back_within_a_batch_drops_the_earlier_samples_not_the_batch(tmp_path):
    """Times 0..4 s, then 2..6 s in one batch (the strap's clock stepped back 3 s): the samples
    not later than every kept one (2, 3, 4) are counted out of order and left out of detection;
    the rest goes on. Before, only neighbours were compared, and 3 after 2 (itself dropped
    after 4) reached the detector, which raised on it."""
    import dataclasses

    import numpy as np

    wall, mono = {"t": T2000 + P.EPOCH_2000_UNIX + 100.0}, {"t": 0.0}
    gw = gateway(tmp_path, wall, mono)
    b = batch(0, 10)
    stepped = b.time.copy()
    stepped[5:] -= 3.0  # 0 1 2 3 4 | 2 3 4 5 6 (+ the epoch)
    b = dataclasses.replace(b, time=stepped)
    st = gw.straps["S1"]
    gw._detect(st, b)
    assert st.out_of_order == 3
    assert st.detector.last_time == float(np.max(stepped))
    stop(gw)
