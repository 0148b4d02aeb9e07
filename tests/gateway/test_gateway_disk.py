"""The gateway's disk nearly full (its outbox on a 3 MB tmpfs, all but 2 MB taken by a ballast
file, the broker down): the gateway keeps running, refuses batches at its 1 MB reserve so the
straps keep their samples, and once the broker is back and the outbox drains, every sample
arrives, none more than twice. Emulated straps (the firmware's code) over bumble, a real
Mosquitto. The tmpfs is mounted directly (root) or, where this process may not mount, the test
runs again as root of a user namespace of its own (kmc_testbed.smalldisk); where neither can
mount, it skips, except under CI=true, where it fails."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
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
from kmc_testbed.smalldisk import (
    SmallDiskUnavailable,
    small_tmpfs,
    userns_command,
    userns_unavailable,
)
from packets import PASSKEY, emulated_strap
from servers import Listener, Mosquitto

# every payload the gateway publishes in these tests keeps to the MQTT contract (conftest)
pytestmark = pytest.mark.usefixtures("mqtt_contract")

SAMPLES = 1200


INNER = "KMC_TEST_IN_USERNS"  # set in the re-run inside a user namespace


def cannot_run(reason: str) -> None:
    reason = f"cannot mount a small tmpfs here: {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run this test: as root, or with user namespaces allowed)")
    pytest.skip(reason)


def run_in_userns(request: pytest.FixtureRequest, direct: str) -> None:
    """This test again, as root of a user namespace with a mount namespace of its own."""
    if os.environ.get(INNER):
        pytest.fail(f"cannot mount a tmpfs even as root of a user namespace: {direct}")
    why = userns_unavailable()
    if why is not None:
        cannot_run(f"{direct}; {why}")
    argv = [sys.executable, "-m", "pytest", request.node.nodeid, "-q", "-n", "0", "-s"]
    argv += ["-p", "no:cacheprovider"]
    r = subprocess.run(
        userns_command(argv),
        cwd=request.config.rootpath,
        env={**os.environ, INNER: "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(r.stdout[-3000:], r.stderr[-2000:])
    assert r.returncode == 0, f"the test in a user namespace failed (mount here: {direct})"
    assert re.search(r"^1 passed", r.stdout, re.M), "the test did not run in the user namespace"


@pytest.fixture
def small_disk(tmp_path: Path, request: pytest.FixtureRequest):
    """A 3 MB tmpfs with all but 2 MB taken by a ballast file; None when the test has just
    run in a user namespace instead (and passed there)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        with small_tmpfs(mnt, 3) as disk:
            print(
                f"small disk: 3 MB tmpfs at {disk}{' (user namespace)' * bool(os.environ.get(INNER))}"
            )
            free = shutil.disk_usage(disk).free
            (disk / "ballast").write_bytes(b"\0" * (free - 2_000_000))
            yield disk
            return
    except SmallDiskUnavailable as e:
        direct = str(e)
    run_in_userns(request, direct)
    yield None


def test_outbox_disk_nearly_full_keeps_the_samples_on_the_straps(small_disk: Path | None, tmp_path):
    if small_disk is None:
        return  # it ran, and passed, in a user namespace (run_in_userns)
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
