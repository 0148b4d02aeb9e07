"""VISIT_NOW over the air: the strap firmware (emulated on bumble) puts its status byte in its
scan response, and unchanged bleak code with the bumble backend reads it.

bumble's emulated controller answers an active scan with the advertising data again instead of
the advertiser's scan response data; the VirtualRadio's controllers answer as a radio does: the
advertiser's own scan response, and only for scannable advertising.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.scanner import AdvertisementData
from bumble import hci
from bumble.device import Device

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import BumbleBleakClient, BumbleBleakScanner
from kmc_testbed.radio import VirtualRadio
from kmc_testbed.strap import EmulatedStrap, SensorFeed
from packets import PASSKEY, T2000

_ADV = hci.HCI_LE_Extended_Advertising_Report_Event.EventType
_SCANNABLE = hci.HCI_LE_Set_Extended_Advertising_Parameters_Command.AdvertisingProperties
GATEWAY_ADDRESS = "F0:00:00:00:FF:01"


async def gateway_central(radio: VirtualRadio) -> Device:
    return await radio.device("gateway", address=GATEWAY_ADDRESS)


async def strap_on(radio: VirtualRadio, tmp_path, strap_id: str, feed: SensorFeed) -> EmulatedStrap:
    device = await radio.device(strap_id)
    return EmulatedStrap(
        device, strap_id, feed, tmp_path / strap_id, T2000, passkey=PASSKEY, settle_s=0
    )


async def heard(central: Device, strap_id: str, status: int) -> AdvertisementData:
    """The first advertisement of `strap_id` whose status byte is `status` (or fail)."""
    got: list[AdvertisementData] = []

    def match(device: Any, adv: AdvertisementData) -> bool:
        if adv.local_name == strap_id and P.advert_status(adv.service_data) == status:
            got.append(adv)
            return True
        return False

    device = await BleakScanner.find_device_by_filter(
        match, timeout=5, backend=BumbleBleakScanner, central=central
    )
    assert device is not None and got, f"{strap_id} not heard with status {status}"
    return got[0]


def cold(i: int) -> float:
    return 36.8 if i < 10 else 35.2


def test_a_strap_whose_alarm_is_on_is_heard_with_visit_now_and_a_calm_one_without(tmp_path):
    async def main():
        radio = VirtualRadio()
        central = await gateway_central(radio)
        alarmed = await strap_on(radio, tmp_path, "KMC-0011", SensorFeed(infant_c=cold))
        calm = await strap_on(radio, tmp_path, "KMC-0012", SensorFeed(worn=lambda i: 0))
        await alarmed.run(90)  # put on at 3, cold from 10: the alarm 60 s later
        await calm.run(90)
        assert alarmed.strap.alarm.active and not calm.strap.alarm.active
        hot = await heard(central, "KMC-0011", P.VISIT_NOW)
        quiet = await heard(central, "KMC-0012", 0)
        return hot, quiet

    hot, quiet = asyncio.run(main())
    assert hot.service_data[P.KMC_SERVICE_UUID] == bytes([1])
    assert quiet.service_data[P.KMC_SERVICE_UUID] == bytes([0])
    for adv, name in ((hot, "KMC-0011"), (quiet, "KMC-0012")):  # one record, as on BlueZ
        assert adv.local_name == name and adv.service_uuids == [P.KMC_SERVICE_UUID]
        assert list(adv.service_data) == [P.KMC_SERVICE_UUID]  # nothing else in clear


def test_a_visit_with_a_secured_resume_clears_visit_now_unless_the_alarm_is_still_on(tmp_path):
    async def visit(central: Device, strap: EmulatedStrap, strap_id: str) -> None:
        device = await BleakScanner.find_device_by_name(
            strap_id, timeout=5, backend=BumbleBleakScanner, central=central
        )
        assert device is not None
        answered = asyncio.Event()
        async with BleakClient(
            device, backend=BumbleBleakClient, central=central, pair=True, passkey=PASSKEY
        ) as client:
            await client.start_notify(P.CONTROL_UUID, lambda c, d: answered.set())
            seq = strap.strap.store.newest() + 1
            await client.write_gatt_char(P.CONTROL_UUID, P.resume_from(seq), response=True)
            await asyncio.wait_for(answered.wait(), 5)  # the strap took it in

    async def main():
        radio = VirtualRadio()
        central = await gateway_central(radio)
        worn = await strap_on(radio, tmp_path, "KMC-0021", SensorFeed())  # put on at 3
        alarmed = await strap_on(radio, tmp_path, "KMC-0022", SensorFeed(infant_c=cold))
        await worn.run(30)
        await alarmed.run(90)
        before = await heard(central, "KMC-0021", P.VISIT_NOW)  # put on: news
        await visit(central, worn, "KMC-0021")
        after = await heard(central, "KMC-0021", 0)
        await visit(central, alarmed, "KMC-0022")
        still = await heard(central, "KMC-0022", P.VISIT_NOW)
        return before, after, still

    before, after, still = asyncio.run(main())
    assert before.service_data[P.KMC_SERVICE_UUID] == b"\x01"
    assert after.service_data[P.KMC_SERVICE_UUID] == b"\x00"
    assert after.local_name == "KMC-0021" and P.KMC_SERVICE_UUID in after.service_uuids
    assert still.service_data[P.KMC_SERVICE_UUID] == b"\x01"


def test_a_report_heard_alone_keeps_what_the_last_scan_response_said():
    """The bumble backend keeps one record per address, as BlueZ does: an advertising report
    with no scan response after it (a missed SCAN_RSP, a passive scan) still shows the last
    status byte; a new scan response replaces it; a 16-bit service's data is keyed as bleak
    keys it. Fed bumble `Advertisement`s directly, as bumble's Device emits them."""
    from bumble.core import AdvertisingData
    from bumble.device import Advertisement

    heard_: list[AdvertisementData] = []
    scanner = BumbleBleakScanner(
        lambda device, adv: heard_.append(adv), [P.KMC_SERVICE_UUID], central=None
    )
    scanner.seen_devices = {}
    payload = _strap_payload("KMC-0031")
    address = hci.Address("F0:00:00:00:00:31")

    def hear(data: bytes, **flags: bool) -> AdvertisementData:
        scanner._on_advertisement(Advertisement(address=address, data_bytes=data, **flags))
        return heard_[-1]

    merged = hear(payload + _scan_response(1), is_scan_response=True)  # bumble joined them
    alone = hear(payload)
    assert merged.service_data == alone.service_data == {P.KMC_SERVICE_UUID: b"\x01"}
    assert alone.local_name == "KMC-0031" and alone.service_uuids == [P.KMC_SERVICE_UUID]
    response_only = hear(_scan_response(0), is_scan_response=True)
    assert response_only.service_data == {P.KMC_SERVICE_UUID: b"\x00"}
    assert response_only.local_name == "KMC-0031"
    assert response_only.service_uuids == [P.KMC_SERVICE_UUID]
    battery = bytes(AdvertisingData([(AdvertisingData.SERVICE_DATA_16_BIT_UUID, b"\x0f\x18\x47")]))
    both = hear(payload + battery)
    assert both.service_data == {
        P.KMC_SERVICE_UUID: b"\x00",
        "0000180f-0000-1000-8000-00805f9b34fb": b"\x47",
    }
    assert P.advert_status(both.service_data) == 0
    # another device, without the KMC service: filtered out as before, remembered nowhere
    n = len(heard_)
    other = hci.Address("F0:00:00:00:00:99")
    scanner._on_advertisement(Advertisement(address=other, data_bytes=battery))
    assert len(heard_) == n and list(scanner.seen_devices) == ["F0:00:00:00:00:31"]


def test_advert_fields_read_off_the_bytes_agree_with_bumbles_parse():
    """`advert_fields` reads UUIDs, service data and the name straight off the AD structures
    (bumble's own parse was a fifth of the gateway's CPU on an 80-strap ward); on every kind it
    reads, it gives what bumble's `AdvertisingData.get_all` gives, in bleak's form. Bytes as a
    strap and other devices send them."""
    from bumble.core import UUID, AdvertisingData

    from kmc_host.ble.bumble_backend import _uuid, advert_fields

    def bumbles(data: AdvertisingData) -> tuple[list[str], dict[str, bytes], str | None]:
        uuids: list[str] = []
        for kind in (0x02, 0x03, 0x06, 0x07):
            for entry in data.get_all(kind):
                uuids += [_uuid(u) for u in (entry if isinstance(entry, list) else [entry])]
        service = {_uuid(u): bytes(v) for u, v in [*data.get_all(0x16), *data.get_all(0x21)]}
        name = data.get(0x09) or data.get(0x08)
        return uuids, service, name.decode() if isinstance(name, bytes) else name

    uuid16s = bytes((5, 0x03, 0x0F, 0x18, 0x0A, 0x18))  # Battery, Device Information
    battery = bytes((4, 0x16, 0x0F, 0x18, 0x47))
    full_name = bytes((9, 0x09)) + b"KMC-0042"
    other128 = bytes((17, 0x06)) + bytes(range(16))
    for raw in (
        _strap_payload("KMC-0031"),
        _scan_response(1),
        _strap_payload("KMC-0032") + _scan_response(0) + battery,
        b"\x02\x01\x06" + uuid16s + full_name,
        other128 + _scan_response(0),
    ):
        data = AdvertisingData.from_bytes(raw)
        assert advert_fields(data.ad_structures) == bumbles(data), raw.hex()
    uuids, service, name = advert_fields(
        AdvertisingData.from_bytes(_strap_payload("KMC-0031") + battery).ad_structures
    )
    assert uuids == [P.KMC_SERVICE_UUID] and name == "KMC-0031"
    assert service == {"0000180f-0000-1000-8000-00805f9b34fb": b"\x47"}
    assert (
        _uuid(UUID.from_bytes(bytes(range(16)))) == advert_fields([(0x06, bytes(range(16)))])[0][0]
    )
    # what a scanner cannot read is skipped, not raised: a cut 128-bit list, cut service data
    assert advert_fields([(0x07, bytes(10)), (0x21, bytes(5)), (0x08, b"KMC-0001")]) == (
        [],
        {},
        "KMC-0001",
    )


def _strap_payload(strap_id: str) -> bytes:
    """The strap's advertising payload (docs/protocol.md: flags, KMC UUID, name)."""
    uuid = bytes(reversed(bytes.fromhex(P.KMC_SERVICE_UUID.replace("-", ""))))
    name = strap_id.encode()
    return b"\x02\x01\x06" + bytes((17, 0x07)) + uuid + bytes((len(name) + 1, 0x08)) + name


def _scan_response(status: int) -> bytes:
    uuid = bytes(reversed(bytes.fromhex(P.KMC_SERVICE_UUID.replace("-", ""))))
    return bytes((18, 0x21)) + uuid + bytes((status,))
