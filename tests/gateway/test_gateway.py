"""The gateway end to end: emulated straps (firmware on bumble) -> bleak -> detector -> Mosquitto."""

import asyncio
import time
from pathlib import Path

import pytest

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import (
    central_access,
)
from kmc_host.detect import ConfigError
from kmc_host.gateway.config import load_config
from kmc_host.gateway.service import Gateway
from kmc_testbed.radio import VirtualRadio
from kmc_testbed.strap import SensorFeed
from packets import PASSKEY, emulated_strap
from servers import Listener, Mosquitto

# every payload the gateway publishes in these tests keeps to the MQTT contract (conftest)
pytestmark = pytest.mark.usefixtures("mqtt_contract")


def write_config(tmp_path: Path, port: int, straps=("KMC-0001",), extra="") -> Path:
    entries = "".join(
        f'[[straps]]\nid = "{s}"\nbed = "{k + 1}"\ninfant = "INF-{k + 1:04d}"\n'
        f"passkey = {PASSKEY}\n"
        for k, s in enumerate(straps)
    )
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[gateway]\nsite = "site1"\nward = "nicu"\ntimezone = "Africa/Addis_Ababa"\ndata_dir = "{tmp_path / "data"}"\n'
        f'[mqtt]\nport = {port}\nprefix = "kmc"\n{entries}{extra}'
    )
    return path


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def test_samples_sessions_and_a_cold_baby_reach_mqtt(broker, tmp_path):
    cfg = load_config(write_config(tmp_path, broker.port))
    listener = Listener(broker.port)
    n = 1500

    def temp(i):
        return 36.8 if i < 800 else 35.5  # cooling from sample 800 on (after settling)

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        feed = SensorFeed(infant_c=temp, contact=lambda i: int(100 <= i < 1000))
        strap = await emulated_strap(radio, tmp_path / "strap", feed)
        gw = Gateway(
            cfg,
            central_access(central),
            now=lambda: strap.clock.t + P.EPOCH_2000_UNIX,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        await asyncio.wait_for(gw.straps["KMC-0001"].link.connected.wait(), 20)
        await strap.run(n, 0.001)
        for _ in range(1500):
            if gw.straps["KMC-0001"].link.stats.samples == n and gw.publisher.pending() == 0:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task
        return gw

    gw = asyncio.run(main())
    samples_topic = "kmc/site1/nicu/KMC-0001/samples"
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline
        and sum(len(b["seq"]) for b in listener.bodies(samples_topic)) < n
    ):
        time.sleep(0.05)
    seqs = [s for b in listener.bodies(samples_topic) for s in b["seq"]]
    assert sorted(set(seqs)) == list(range(n))  # every sample reached the broker
    stats = gw.stats()["KMC-0001"]
    assert stats["samples"] == n and stats["duplicates"] == 0 and stats["malformed"] == 0
    alerts = listener.bodies("kmc/site1/nicu/KMC-0001/alert")
    cold = [a for a in alerts if a["kind"] == "cold_stress" and a["state"] == "active"]
    assert len(cold) == 1 and cold[0]["bed"] == "1"
    # the episode starts at the first cold sample's time (as the strap stamped it)
    first_cold = min(
        t
        for b in listener.bodies(samples_topic)
        for t, c in zip(b["time"], b["infant_c"], strict=True)
        if c == 35.5
    )
    assert cold[0]["start"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first_cold))
    states = listener.bodies("kmc/site1/nicu/KMC-0001/state")
    assert (
        states[-1]["alerts"] == ["cold_stress", "moderate_hypothermia"]
        and states[-1]["infant"] == "INF-0001"
    )
    sessions = listener.bodies("kmc/site1/nicu/KMC-0001/session")
    assert len(sessions) == 1 and sessions[0]["duration_min"] == 15.0
    daily = listener.bodies("kmc/site1/nicu/KMC-0001/daily")[-1]
    assert daily["date"] == "2026-07-10" and daily["kmc_hours"] == 0.25
    assert 0.38 <= daily["monitored_hours"] <= 0.42  # 1500 s, less the minute it may lag
    assert listener.bodies("kmc/site1/nicu/gateway/status")[-1]["state"] == "offline"
    listener.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[[straps]]\nid = "KMC-0001"\n', "listed twice"),
        ("[detector]\nbridge = 5\n", "unknown detector setting"),
        ("[colour]\nx = 1\n", "unknown key(s) colour"),
        ('[[straps]]\nid = "KMC-0009"\npasskey = 1234567\n', "#2: passkey must be the 6 digits"),
        ('[[straps]]\nid = "KMC-0009"\npasskey = "123456"\n', "#2: passkey"),
        ('[[straps]]\nid = "KMC-0009"\naddress = "24:0A:C4"\n', "#2: address '24:0A:C4' must"),
    ],
)
def test_config_errors_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write_config(tmp_path, 1883, extra=extra))


def test_config_reads_passkey_and_address(tmp_path):
    extra = '[[straps]]\nid = "KMC-0009"\npasskey = 7\naddress = "24:0a:c4:12:34:56"\n'
    cfg = load_config(write_config(tmp_path, 1883, extra=extra))
    assert cfg.straps[0].passkey == PASSKEY and cfg.straps[0].address is None
    assert (cfg.straps[1].passkey, cfg.straps[1].address) == (7, "24:0A:C4:12:34:56")


def test_config_rejects_bad_topic_parts_and_zones(tmp_path):
    path = write_config(tmp_path, 1883)
    path.write_text(path.read_text().replace('ward = "nicu"', 'ward = "nicu/+"'))
    with pytest.raises(
        ConfigError, match=r"\[gateway\]: ward 'nicu/\+' cannot be an MQTT topic part"
    ):
        load_config(path)
    path.write_text(
        path.read_text()
        .replace('ward = "nicu/+"', 'ward = "nicu"')
        .replace("Africa/Addis_Ababa", "Mars/Base")
    )
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Base'"):
        load_config(path)


def test_kmc_gateway_check_and_bad_config_exit_codes(tmp_path):
    import subprocess

    extra = '[ble]\nhci = "usb:0"\n'  # the straps' passkeys: a gateway that can enter them
    path = write_config(tmp_path, 1883, straps=("KMC-0001", "KMC-0002"), extra=extra)
    r = subprocess.run(
        ["kmc", "gateway", "--config", str(path), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "ok: 2 straps, broker 127.0.0.1:1883" in r.stdout
    path.write_text(path.read_text().replace("port = 1883", "port = 99999"))
    r = subprocess.run(["kmc", "gateway", "--config", str(path)], capture_output=True, text=True)
    assert (
        r.returncode == 2
        and "[mqtt]: port must be 1..65535" in r.stderr
        and "Traceback" not in r.stderr
    )


def test_ble_drop_broker_restart_and_gateway_restart_lose_nothing(tmp_path):
    broker = Mosquitto(tmp_path, persistence=True).start()
    cfg = load_config(write_config(tmp_path, broker.port))
    listener = Listener(broker.port)  # persistent session: queued for it while it is away
    time.sleep(0.3)
    topic = "kmc/site1/nicu/KMC-0001/samples"

    def received():
        return {s for b in listener.bodies(topic) for s in b["seq"]}

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await emulated_strap(radio, tmp_path / "strap")
        access = central_access(central)

        def now():
            return strap.clock.t + P.EPOCH_2000_UNIX

        async def wait(predicate, seconds=30):
            for _ in range(int(seconds / 0.05)):
                if predicate():
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("timed out")

        gw = Gateway(cfg, access, now=now)
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        await asyncio.wait_for(gw.straps["KMC-0001"].link.connected.wait(), 20)
        await strap.run(150, 0.002)
        for conn in list(strap.ble._connections.values()):  # the BLE link drops
            await conn.disconnect()
        await strap.run(50, 0.002)
        await wait(lambda: len(received()) == 200)
        assert gw.straps["KMC-0001"].link.stats.connections == 2
        broker.stop()  # the ward's broker goes down for a while
        await strap.run(300, 0.002)
        await wait(lambda: gw.straps["KMC-0001"].link.stats.samples == 500)
        assert gw.publisher.pending() > 0  # held on disk
        broker.start()
        await wait(lambda: len(received()) == 500)
        stop.set()  # the gateway restarts (its cursor and outbox on disk)
        await task
        await strap.run(100, 0.002)
        gw2 = Gateway(cfg, access, now=now)
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(gw2.run(stop2))
        await wait(lambda: len(received()) == 600)
        stop2.set()
        await task2
        return strap

    try:
        strap = asyncio.run(main())
        assert received() == set(range(strap.strap.store.next_seq)) == set(range(600))
    finally:
        listener.close()
        broker.stop()


def test_straps_share_one_adapter_and_its_connection_slots(tmp_path):
    path = write_config(tmp_path, 1883, straps=("KMC-0001", "KMC-0002", "KMC-0003"))
    path.write_text(path.read_text().replace("data_dir", "max_connections = 2\ndata_dir"))
    gw = Gateway(load_config(path))
    assert [(a.name, a.slots) for a in gw.adapters] == [("default", 2)]
    assert gw.scheduler.adapters == gw.adapters and set(gw.scheduler.links) == set(gw.straps)
    gw.publisher.outbox.close()


@pytest.mark.parametrize(
    ("ble", "passkey", "refused"),
    [
        ("", True, True),  # BlueZ, the default: bleak's BlueZ backend ignores a passkey
        ('[ble]\nhci = "usb:0"\n', True, False),  # bumble drives the dongle: it pairs itself
        ("", False, False),  # BlueZ, paired by hand with bluetoothctl
        ('[[ble.adapters]]\nhci = "usb:0"\n[[ble.adapters]]\nname = "hci1"\n', True, True),
    ],
)
def test_a_passkey_the_gateway_cannot_enter_is_refused(tmp_path, ble, passkey, refused):
    """`kmc gateway --check` (and a start) refuses `passkey` on a gateway with a BlueZ adapter,
    naming the strap and what to do, instead of ignoring it; fine with bumble or without it."""
    import subprocess
    import sys

    path = write_config(tmp_path, 1883, extra=ble)
    if not passkey:
        path.write_text(path.read_text().replace(f"passkey = {PASSKEY}\n", ""))
    r = subprocess.run(
        [sys.executable, "-m", "kmc_host", "gateway", "--config", str(path), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if refused:
        assert r.returncode != 0 and "Traceback" not in r.stderr
        said = r.stderr
        assert f"{path} [[straps]] #1 (KMC-0001): passkey cannot be used with BlueZ" in said
        assert "bluetoothctl" in said and "[ble] hci" in said
    else:
        assert r.returncode == 0, r.stderr
        assert f"{path}: ok: 1 straps" in r.stdout
