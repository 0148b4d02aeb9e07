"""The connection scheduler: more straps than connection slots, over real BLE (bumble).

Emulated straps run the firmware's code; the gateway is the production service with the bleak
backend on bumble and a real Mosquitto. The central's controller holds the connections, so the
number connected at once is read off it, not off the gateway's own bookkeeping.
"""

import asyncio
import time

import pytest
from test_gateway import write_config
from wards import gateway_config, start_gateway, stop_ward, ward

import kmc_host.gateway.service as service
from kmc_host.ble.bumble_backend import central_access
from kmc_host.detect import ConfigError
from kmc_host.gateway.config import AdapterEntry, load_config
from kmc_host.gateway.service import Gateway
from kmc_testbed.radio import VirtualRadio
from servers import Listener, Mosquitto


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def test_ten_straps_share_three_slots_every_sample_once_and_no_signal_lost(
    broker, tmp_path, monkeypatch
):
    # a strap silent for 3 s would be "lost" if waiting for a turn counted as silence
    monkeypatch.setattr(service, "SIGNAL_LOST_S", 3.0)
    listener = Listener(broker.port)
    n, slots = 10, 3

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        straps = await ward(radio, tmp_path, n)
        gw, stop, task = start_gateway(
            gateway_config(tmp_path, broker.port, n, slots, max_age_s=5.0),
            central_access(central),
            straps,
        )
        most = 0
        for _ in range(300):  # 15 s of wall time, 20 samples a second per strap
            for s in straps:
                s.tick()
            most = max(most, len(central.connections))
            await asyncio.sleep(0.05)
        produced = {s.strap.cfg["strap_id"]: s.strap.store.next_seq for s in straps}
        for _ in range(600):
            if all(gw.straps[k].link.stats.samples >= m for k, m in produced.items()):
                break
            await asyncio.sleep(0.05)
        await stop_ward(stop, task, straps)
        return gw, produced, most

    gw, produced, most = asyncio.run(main())
    time.sleep(0.5)
    assert most == slots  # all slots in use, never more (the controller's count)
    for strap, m in produced.items():
        seqs = [q for b in listener.bodies(f"kmc/site1/nicu/{strap}/samples") for q in b["seq"]]
        assert sorted(set(seqs)) == list(range(m)), strap
        link = gw.straps[strap].link
        assert link.stats.duplicates == 0 and link.stats.missing == 0
        assert link.stats.visits >= 2, f"{strap} had {link.stats.visits} turns"
    lost = [
        a
        for s in produced
        for a in listener.bodies(f"kmc/site1/nicu/{s}/alert")
        if a["kind"] == "signal_lost"
    ]
    assert lost == [], [(a, gw.straps[a["strap"]].link.stats) for a in lost]
    listener.close()


def test_a_strap_asking_for_a_visit_gets_a_slot_at_once(broker, tmp_path):
    """max_age_s is long, so no strap is due by age. Each strap is put on its baby at sample 3,
    which its scan response announces (VISIT_NOW): every strap gets a first visit, then three
    keep the slots and the rest wait. A waiting strap taken off its baby asks again, and is
    visited at once; the other waiting straps are not."""
    n, slots, settled_at = 10, 3, 120
    off: dict[int, int] = {}  # strap index -> the sample from which it is off the baby

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        straps = await ward(
            radio,
            tmp_path,
            n,
            worn=lambda k: lambda i: int(i >= 3 and (k not in off or i < off[k])),
        )
        gw, stop, task = start_gateway(
            gateway_config(tmp_path, broker.port, n, slots, max_age_s=600.0),
            central_access(central),
            straps,
        )
        links = [gw.straps[f"KMC-{k + 1:04d}"].link for k in range(n)]
        held = gw.adapters[0].visits
        chosen, before, waited, urgent_before = None, {}, None, 0
        for i in range(1200):  # up to a minute of wall time
            settled = (
                i >= settled_at
                and all(link.reached.is_set() for link in links)  # each had its first turn
                and len(held) == slots
                and all(gw.straps[s].link.drained for s in held)
            )
            if chosen is None and settled:
                waiting = [k for k in range(n) if links[k].strap_id not in held]
                assert len(waiting) == n - slots  # the slots are taken, the rest wait
                chosen = waiting[-1]
                before = {k: links[k].stats.connections for k in waiting}
                urgent_before = gw.scheduler.urgent_visits
                off[chosen] = straps[chosen].feed.i
                took_off = time.monotonic()
            for s in straps:
                s.tick()
            await asyncio.sleep(0.05)
            if chosen is not None and links[chosen].stats.connections > before[chosen]:
                waited = time.monotonic() - took_off
                break
        assert chosen is not None, "the ward never settled: every strap bonded, 3 held"
        others = {k: links[k].stats.connections - c for k, c in before.items() if k != chosen}
        await stop_ward(stop, task, straps)
        return waited, others, gw.scheduler.urgent_visits - urgent_before

    waited, others, urgent = asyncio.run(main())
    assert waited is not None and waited < 8.0, "the strap asking for a visit was not visited"
    assert set(others.values()) == {0}  # only the flag moved it
    assert urgent == 1  # started for its flag (the first visits may start before the flag)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[ble]\nhci = "usb:0"\n[[ble.adapters]]\nname = "hci1"\n', "not both"),
        ('[[ble.adapters]]\nname = "hci1"\nhci = "usb:0"\n', "#1: give exactly one of name"),
        ("[[ble.adapters]]\nmax_connections = 3\n", "#1: give exactly one of name"),
        ('[[ble.adapters]]\nname = "bluetooth0"\n', "#1: name 'bluetooth0' should be"),
        ('[[ble.adapters]]\nname = "hci1"\n[[ble.adapters]]\nname = "hci1"\n', "listed twice"),
        ('[[ble.adapters]]\nname = "hci1"\nmax_connections = 0\n', "#1: max_connections"),
        ('[[ble.adapters]]\nhci = "usb0"\n', "#1: hci 'usb0' should be a transport"),
        ('[[ble.adapters]]\nname = "hci1"\nslots = 3\n', "unknown key"),
        ("[ble]\nadapters = 3\n", "array of tables"),
    ],
)
def test_adapter_entries_are_checked(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path, 1883, extra=extra))


@pytest.mark.parametrize(("value", "ok"), [(4, False), (5, True), (600, True), (601, False)])
def test_max_age_s_range(tmp_path, value, ok):
    path = write_config(tmp_path, 1883)
    path.write_text(path.read_text().replace("data_dir", f"max_age_s = {value}\ndata_dir"))
    if ok:
        assert load_config(path).max_age_s == value
    else:
        with pytest.raises(ConfigError, match="max_age_s must be 5..600"):
            load_config(path)


def test_several_adapters_each_with_their_slots(tmp_path):
    extra = (
        '[[ble.adapters]]\nname = "hci0"\n[[ble.adapters]]\nname = "hci1"\nmax_connections = 10\n'
    )
    path = write_config(tmp_path, 1883, extra=extra)
    path.write_text(path.read_text().replace("data_dir", "max_connections = 5\ndata_dir"))
    cfg = load_config(path)
    assert cfg.radios() == (AdapterEntry("hci0", None, 5), AdapterEntry("hci1", None, 10))
    gw = Gateway(cfg)
    assert [(a.name, a.slots) for a in gw.adapters] == [("hci0", 5), ("hci1", 10)]
    # BlueZ adapters are chosen by name through bleak's bluez argument
    assert [a.access.scanner_args() for a in gw.adapters] == [
        {"bluez": {"adapter": "hci0"}},
        {"bluez": {"adapter": "hci1"}},
    ]
    gw.publisher.outbox.close()


@pytest.mark.parametrize(("value", "ok"), [(4, False), (5, True), (300, True), (301, False)])
def test_status_every_s_range(tmp_path, value, ok):
    path = write_config(tmp_path, 1883)
    path.write_text(path.read_text().replace("data_dir", f"status_every_s = {value}\ndata_dir"))
    if ok:
        assert load_config(path).status_every_s == value
    else:
        with pytest.raises(ConfigError, match="status_every_s must be 5..300"):
            load_config(path)


def test_the_status_says_the_radios_and_the_detector_settings_it_alerts_with(tmp_path):
    """The status carries the configured [detector]: the digest, the offset and the moved
    thresholds, and the heartbeat period; a radio not scanning for ADAPTER_DOWN_AFTER_S is
    down, since when it stopped."""
    extra = (
        '[[ble.adapters]]\nname = "hci0"\n[[ble.adapters]]\nname = "hci1"\n'
        "[detector]\naxillary_offset_c = 0.3\n[detector.thresholds_c]\ncold_stress = 36.4\n"
    )
    path = write_config(tmp_path, 1883, extra=extra)
    path.write_text(path.read_text().replace("data_dir", "status_every_s = 12\ndata_dir"))
    cfg = load_config(path)
    clock = [1000.0]
    gw = Gateway(cfg, now=lambda: 1_783_684_800.0 + clock[0], elapsed=lambda: clock[0])
    try:
        status = gw.status()
        assert status.every_s == 12 and status.detector == {
            "digest": cfg.detector.digest(),
            "axillary_offset_c": 0.3,
            "thresholds_c": {
                "cold_stress": 36.4,
                "moderate_hypothermia": 36.0,
                "severe_hypothermia": 32.0,
                "hyperthermia": 37.5,
            },
        }
        assert [r["scanning"] for r in status.adapters] == [True, True]  # just started
        gw.adapters[0].up = True
        clock[0] += service.ADAPTER_DOWN_AFTER_S
        gw._watch_radios()
        assert gw.status().adapters == [
            {"name": "hci0", "scanning": True, "down_since": None},
            {"name": "hci1", "scanning": False, "down_since": "2026-07-10T12:16:40Z"},
        ]
    finally:
        gw.publisher.outbox.close()
