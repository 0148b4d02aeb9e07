"""The gateway's disk nearly full (its outbox on a 3 MB tmpfs, mostly taken by a ballast file,
the broker down): the gateway keeps running, stops taking batches at its reserve so the straps
keep their samples, and once the broker is back and the outbox drains, every sample arrives
exactly once. Emulated straps (the firmware's code) over bumble, a real Mosquitto."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import (
    central_access,
)
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import BrokerConfig, TopicTree
from kmc_testbed.radio import VirtualRadio
from packets import PASSKEY, emulated_strap
from servers import Listener, Mosquitto

# every payload the gateway publishes in these tests keeps to the MQTT contract (conftest)
pytestmark = pytest.mark.usefixtures("mqtt_contract")

SAMPLES = 1200


@pytest.fixture
def small_disk(tmp_path: Path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        free = shutil.disk_usage(mnt).free
        (mnt / "ballast").write_bytes(b"\0" * (free - 2_000_000))
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_outbox_disk_nearly_full_keeps_the_samples_on_the_straps(small_disk: Path, tmp_path):
    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq", persistence=True).start()
    listener = Listener(broker.port)
    broker.stop()  # down from the start: the outbox can only grow

    async def main() -> tuple[dict, int, bool]:
        radio = VirtualRadio()
        central = await radio.device("gateway")
        straps = [
            await emulated_strap(
                radio, tmp_path / f"strap{k}", strap_id=f"KMC-000{k + 1}", name=f"s{k}"
            )
            for k in range(2)
        ]
        clock = straps[0].clock
        cfg = GatewayConfig(
            TopicTree("kmc", "site1", "ward-a"),
            "UTC",
            small_disk / "gw",
            BrokerConfig(port=broker.port, client_id="disk-gateway"),
            tuple(StrapEntry(s.strap.cfg["strap_id"], passkey=PASSKEY) for s in straps),
            DetectorConfig(),
            outbox_reserve_mb=1.0,
        )
        gateway = Gateway(
            cfg,
            central_access(central),
            now=lambda: clock.t + P.EPOCH_2000_UNIX,
            scan_timeout=2.0,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        for _ in range(SAMPLES):
            for s in straps:
                s.tick()
            await asyncio.sleep(0.002)
        full = sum(st.link.stats.store_full for st in gateway.straps.values())
        alive = not task.done()
        broker.start()  # the broker is back: the outbox drains, its pages are free again
        for _ in range(4000):
            got = {sid: set() for sid in gateway.straps}
            for b in listener.bodies(leaf="samples"):
                got[b["strap"]].update(b["seq"])
            if all(len(v) >= SAMPLES for v in got.values()):
                break
            for s in straps:
                s.tick()  # the ward goes on
            await asyncio.sleep(0.05)
        stop.set()
        await task
        for s in straps:
            s.close()
        return got, full, alive

    try:
        got, full, alive = asyncio.run(main())
    finally:
        listener.close()
        broker.stop()
    assert alive, "the gateway stopped when its disk filled"
    assert full > 0, "the outbox never reached its reserve: the test did not fill the disk"
    for sid, seqs in got.items():
        assert set(range(SAMPLES)) <= seqs, sid  # nothing lost; duplicates are harmless (set)
    per_strap = [b for b in listener.bodies(leaf="samples")]
    seen: dict[tuple[str, int], int] = {}
    for b in per_strap:
        for q in b["seq"]:
            seen[(b["strap"], q)] = seen.get((b["strap"], q), 0) + 1
    assert max(seen.values()) <= 2  # at least once: a batch retried after the full disk at most
