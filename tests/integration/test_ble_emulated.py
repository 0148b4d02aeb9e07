"""The strap firmware, emulated in CPython on bumble, reached with unchanged bleak code.

No radio and no BlueZ: bleak's BleakScanner/BleakClient run with the bumble backend over a
virtual link, against the firmware's own GATT server, store and sampler.
"""

import asyncio

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from bumble.device import Peer

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import BumbleBleakClient, BumbleBleakScanner
from kmc_host.ble.bumble_backend import _gatt_cache as gatt_cache
from kmc_testbed.radio import VirtualRadio
from kmc_testbed.strap import SensorFeed
from packets import PASSKEY, T2000, emulated_strap


class Gateway:
    """The least a gateway does: find, connect, set the clock, resume, collect."""

    def __init__(self, central):
        self.central = central
        self.batches = []
        self.responses = []

    async def find(self, strap_id):
        def match(device, adv):
            return P.KMC_SERVICE_UUID in adv.service_uuids and adv.local_name == strap_id

        device = await BleakScanner.find_device_by_filter(
            match, timeout=5, backend=BumbleBleakScanner, central=self.central
        )
        assert device is not None, f"{strap_id} not found"
        return device

    async def session(self, device, resume_from, unix_now, work):
        async with BleakClient(
            device, backend=BumbleBleakClient, central=self.central, pair=True, passkey=PASSKEY
        ) as client:
            assert client.mtu_size == 247
            await client.start_notify(
                P.MEASUREMENT_UUID, lambda c, d: self.batches.append(P.decode_measurement(d))
            )
            await client.start_notify(
                P.CONTROL_UUID, lambda c, d: self.responses.append(P.decode_response(bytes(d)))
            )
            await client.write_gatt_char(P.CONTROL_UUID, P.set_clock(unix_now), response=True)
            await client.write_gatt_char(P.CONTROL_UUID, P.resume_from(resume_from), response=True)
            status = P.decode_status(bytes(await client.read_gatt_char(P.STATUS_UUID)))
            await work()
            return status

    def seqs(self):
        return [int(s) for b in self.batches for s in b.seq]


def test_bleak_over_bumble_reaches_the_firmware_and_loses_nothing_across_a_disconnect(tmp_path):
    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await emulated_strap(
            radio, tmp_path, SensorFeed(contact=lambda i: int(i >= 100)), strap_id="KMC-0007"
        )
        gw = Gateway(central)
        await strap.run(300)  # five minutes before any gateway is near
        device = await gw.find("KMC-0007")
        unix_now = T2000 + P.EPOCH_2000_UNIX + 300

        async def first_visit():
            await strap.drain()
            await strap.run(20, 0.001)

        status = await gw.session(device, 0, unix_now, first_visit)
        assert (status.oldest_seq, status.newest_seq) == (0, 299)
        assert gw.responses[:2] == [(P.OP_SET_CLOCK, "ok"), (P.OP_RESUME_FROM, "ok")]
        got = gw.seqs()
        assert got == list(range(len(got))) and len(got) >= 300
        await strap.run(600)  # ten minutes out of range
        device = await gw.find("KMC-0007")  # advertising again after the disconnect
        await gw.session(device, got[-1] + 1, unix_now + 700, strap.drain)
        return gw, strap

    gw, strap = asyncio.run(main())
    seqs = gw.seqs()
    assert seqs == list(range(920))  # every sample exactly once, through the disconnect
    time = np.concatenate([b.time for b in gw.batches])
    contact = np.concatenate([b.contact for b in gw.batches])
    clock_set = np.concatenate([b.clock_set for b in gw.batches])
    assert not clock_set[:300].any() and clock_set[300:].all()  # set by the first visit
    assert time[0] == T2000 + P.EPOCH_2000_UNIX and np.all(np.diff(time[300:]) == 1)
    assert contact[:100].sum() == 0 and contact[101:].all()
    assert np.allclose(np.concatenate([b.infant_c for b in gw.batches]), 36.8)
    assert strap.strap.ble.sent_packets >= 920 // 19


def test_a_bonded_strap_is_not_discovered_again_unless_its_table_proves_stale(
    tmp_path, monkeypatch
):
    """The bumble backend keeps a bonded strap's GATT table: the second connection reads
    Status with no service discovery. A table that no longer fits (the strap's firmware
    updated under its bond; here the cached handles moved out of its table) fails with an ATT
    error, which drops the cache, and the next connection discovers the table again."""
    discoveries = []
    discover = Peer.discover_services

    async def counted(self, *args, **kwargs):  # the real discovery, counted
        discoveries.append(1)
        return await discover(self, *args, **kwargs)

    monkeypatch.setattr(Peer, "discover_services", counted)

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await emulated_strap(radio, tmp_path, SensorFeed(), strap_id="KMC-0008")
        await strap.run(5)
        gw = Gateway(central)

        async def status_read():
            device = await gw.find("KMC-0008")
            async with BleakClient(
                device, backend=BumbleBleakClient, central=central, pair=True, passkey=PASSKEY
            ) as client:
                return P.decode_status(bytes(await client.read_gatt_char(P.STATUS_UUID)))

        first = await status_read()
        after_first = len(discoveries)
        second = await status_read()
        after_second = len(discoveries)
        (address,) = gatt_cache(central)  # one bonded peer cached
        gatt_cache(central)[address] = [
            (h + 1000, e + 1000, u, [(ch + 1000, ce + 1000, cu, p, []) for ch, ce, cu, p, _ in cs])
            for h, e, u, cs in gatt_cache(central)[address]
        ]
        with pytest.raises(BleakError, match="INVALID_HANDLE|ATT"):
            await status_read()
        stale_dropped = address not in gatt_cache(central)
        third = await status_read()
        strap.close()
        return first, second, third, after_first, after_second, len(discoveries), stale_dropped

    first, second, third, n1, n2, n3, dropped = asyncio.run(main())
    assert first == second == third and first.newest_seq >= 3  # the same Status each time
    assert (n1, n2, n3) == (1, 1, 2) and dropped
