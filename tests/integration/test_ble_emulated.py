"""The strap firmware, emulated in CPython on bumble, reached with unchanged bleak code.

No radio and no BlueZ: bleak's BleakScanner/BleakClient run with the bumble backend over a
virtual link, against the firmware's own GATT server, store and sampler.
"""

import asyncio

import numpy as np
from bleak import BleakClient, BleakScanner

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import BumbleBleakClient, BumbleBleakScanner
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
