"""The virtual radio behaves as a real one where a connection scheduler can tell: connection
limits, connection set-up time, scan responses, range and supervision timeout.

Peripherals are plain bumble devices advertising (quick to make); one test uses the strap
firmware for its advertising interval. Timing bounds are tight from below (a modelled delay
is never cut short) and loose from above (a busy machine only adds to them).
"""

import asyncio
import math
import time

import pytest
from bleak import BleakClient
from bleak.exc import BleakError
from bumble import core, hci
from bumble.core import AdvertisingData
from bumble.device import ConnectionParametersPreferences, Peer

from kmc_host.ble.bumble_backend import BumbleBleakClient
from kmc_testbed.radio import (
    PATH_LOSS_EXPONENT,
    RSSI_AT_1M_DBM,
    SENSITIVITY_DBM,
    STRAP_ADVERTISING_INTERVAL_MS,
    VirtualRadio,
)
from kmc_testbed.strap import EmulatedStrap, SensorFeed
from packets import PASSKEY, T2000

FLAGS = bytes(AdvertisingData([(AdvertisingData.FLAGS, b"\x06")]))
NAME = bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, b"KMC-0042")]))
DEFAULT_SUPERVISION_S = ConnectionParametersPreferences.default.supervision_timeout / 1000
DEFAULT_INTERVAL_UNITS = int(ConnectionParametersPreferences.default.connection_interval_min / 1.25)


async def peripheral(radio, name, scan_response=b"", **kwargs):
    """A device advertising as a strap does (every 250 ms, connectable and scannable)."""
    kwargs.setdefault("advertising_interval_ms", STRAP_ADVERTISING_INTERVAL_MS)
    device = await radio.device(name, **kwargs)
    await device.start_advertising(advertising_data=FLAGS, scan_response_data=scan_response)
    return device


async def hear(central, seconds, active=True):
    """The advertisements `central` hears in `seconds` (as (wall time, Advertisement))."""
    heard = []

    def on(advertisement):
        heard.append((time.monotonic(), advertisement))

    central.on("advertisement", on)
    await central.start_scanning(active=active, filter_duplicates=False)
    await asyncio.sleep(seconds)
    await central.stop_scanning()
    central.remove_listener("advertisement", on)
    return heard


def from_(heard, device):
    return [a for _, a in heard if a.address == device.random_address]


async def disconnected(connection):
    """The reason and the wall time when `connection` ends."""
    ended = asyncio.get_running_loop().create_future()
    connection.on("disconnection", lambda reason: ended.set_result((reason, time.monotonic())))
    return await ended


def test_the_eighth_connection_is_refused_with_connection_limit_exceeded_until_one_ends():
    async def main():
        radio = VirtualRadio(time_scale=4)  # adverts and set-ups four times as fast
        central = await radio.device("gateway", max_connections=7)
        straps = [await peripheral(radio, f"strap{k}") for k in range(8)]
        connections = [await central.connect(s.random_address, timeout=5) for s in straps[:7]]
        eighth = str(straps[7].random_address)

        with pytest.raises(hci.HCI_Error) as refused:
            await central.connect(straps[7].random_address, timeout=5)
        assert refused.value.error_code == hci.HCI_ErrorCode.CONNECTION_LIMIT_EXCEEDED_ERROR == 0x09
        with pytest.raises(BleakError, match="CONNECTION_LIMIT_EXCEEDED"):
            async with BleakClient(eighth, backend=BumbleBleakClient, central=central, timeout=5):
                pass

        await connections[0].disconnect()
        async with BleakClient(
            eighth, backend=BumbleBleakClient, central=central, timeout=5
        ) as client:
            assert client.is_connected and client.services.services

    asyncio.run(main())


def test_peripheral_links_count_and_a_peripheral_at_its_limit_leaves_connect_ind_unanswered():
    """A peripheral's links take slots as a central's do; a peripheral with none free leaves a
    CONNECT_IND unanswered (the initiator fails with 0x3E); a second link between the same two
    devices is refused (0x0B)."""

    async def main():
        radio = VirtualRadio(time_scale=4)
        one = await peripheral(radio, "one-slot", max_connections=1)
        other = await peripheral(radio, "other")
        third = await radio.device("third")
        visitor = await radio.device("visitor")
        await visitor.connect(one.random_address, timeout=5)  # one's slot: a peripheral link
        with pytest.raises(hci.HCI_Error) as again:
            await visitor.connect(one.random_address, timeout=5)
        assert again.value.error_code == hci.HCI_ErrorCode.CONNECTION_ALREADY_EXISTS_ERROR
        with pytest.raises(hci.HCI_Error) as refused:
            await one.connect(other.random_address, timeout=5)
        assert refused.value.error_code == hci.HCI_ErrorCode.CONNECTION_LIMIT_EXCEEDED_ERROR
        # advertising again with no slot free: a CONNECT_IND to it is never answered
        await one.start_advertising(advertising_data=FLAGS)
        with pytest.raises(core.ConnectionError) as failed:
            await third.connect(one.random_address, timeout=5)
        code = hci.HCI_ErrorCode.CONNECTION_FAILED_TO_BE_ESTABLISHED_ERROR
        assert failed.value.error_code == code == 0x3E

    asyncio.run(main())


def test_a_connection_takes_an_advert_and_the_setup_delay_and_time_scale_divides_both():
    slow = ConnectionParametersPreferences(
        connection_interval_min=400, connection_interval_max=400, supervision_timeout=6000
    )

    async def connect_time(time_scale, preferences, advertising_interval_ms):
        radio = VirtualRadio(time_scale=time_scale)
        central = await radio.device("gateway")
        strap = await peripheral(radio, "strap", advertising_interval_ms=advertising_interval_ms)
        began = time.monotonic()
        await central.connect(
            strap.random_address,
            connection_parameters_preferences={hci.HCI_LE_1M_PHY: preferences},
            timeout=10,
        )
        return time.monotonic() - began, radio

    async def main():
        # bumble's default 15 ms interval: 1.25 ms + 2 intervals after the advert it catches
        took, radio = await connect_time(1, ConnectionParametersPreferences.default, 250)
        setup = radio.connection_setup_delay(DEFAULT_INTERVAL_UNITS)
        assert setup == pytest.approx(1.25e-3 + 2 * 15e-3)
        assert setup <= took < setup + 0.25 + 0.5  # at most one advertising interval to wait
        # a 400 ms interval (320 units) makes the set-up the bulk of the connect time
        took_1, radio = await connect_time(1, slow, 20)
        setup_1 = radio.connection_setup_delay(320)
        assert setup_1 == pytest.approx(1.25e-3 + 0.8)
        assert setup_1 <= took_1 < setup_1 + 0.5
        took_10, radio = await connect_time(10, slow, 20)
        assert radio.connection_setup_delay(320) == pytest.approx(setup_1 / 10)
        assert setup_1 / 10 <= took_10 < setup_1 / 10 + 0.3
        assert took_10 < took_1 / 2

    asyncio.run(main())


def test_a_strap_advertises_at_its_firmwares_interval_divided_by_the_time_scale(tmp_path):
    """The firmware asks for 250 ms (gap_advertise passes it on to bumble), whatever the
    device's default interval."""

    async def periods(time_scale, seconds, interval_ms):
        radio = VirtualRadio(time_scale=time_scale)
        central = await radio.device("gateway")
        device = await radio.device("strap", advertising_interval_ms=interval_ms)
        root = tmp_path / f"strap-{time_scale}-{interval_ms}"
        strap = EmulatedStrap(device, "KMC-0001", SensorFeed(), root, T2000, passkey=PASSKEY)
        heard = await hear(central, seconds)
        strap.close()
        times = [t for t, a in heard if a.address == device.random_address]
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    async def main():
        firmware = STRAP_ADVERTISING_INTERVAL_MS / 1000
        for time_scale, seconds, interval_ms, period in (
            (1, 1.4, STRAP_ADVERTISING_INTERVAL_MS, firmware),
            (5, 0.5, STRAP_ADVERTISING_INTERVAL_MS, firmware / 5),
            (4, 1.2, None, firmware / 4),  # the device's default (bumble's 1000 ms) unused
        ):
            gaps = await periods(time_scale, seconds, interval_ms)
            assert len(gaps) >= 3
            mean = sum(gaps) / len(gaps)  # the scanner's own latency jitters single gaps
            assert 0.9 * period <= mean < 1.5 * period

    asyncio.run(main())


def test_every_scanner_hears_every_advert_and_active_ones_the_scan_response():
    async def main():
        radio = VirtualRadio()
        strap = await peripheral(radio, "strap", scan_response=NAME)
        ward_a = await radio.device("gateway-a")
        ward_b = await radio.device("gateway-b")
        passive = await radio.device("passive")
        heard_a, heard_b, heard_p = await asyncio.gather(
            hear(ward_a, 1.1), hear(ward_b, 1.1), hear(passive, 1.1, active=False)
        )
        for heard in (heard_a, heard_b):
            adverts = from_(heard, strap)
            assert len(adverts) >= 4  # every 250 ms, each with its scan response
            for advert in adverts:
                assert advert.is_scan_response
                assert advert.data.get_all(AdvertisingData.COMPLETE_LOCAL_NAME) == ["KMC-0042"]
                assert len(advert.data.get_all(AdvertisingData.FLAGS)) == 1  # not sent twice
        assert abs(len(from_(heard_a, strap)) - len(from_(heard_b, strap))) <= 1
        adverts = from_(heard_p, strap)
        assert len(adverts) >= 4
        assert not any(
            a.is_scan_response or a.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) for a in adverts
        )

    asyncio.run(main())


def test_rssi_falls_with_distance_and_the_nearest_scanner_hears_the_strap_strongest():
    async def main():
        radio = VirtualRadio(time_scale=4)
        strap = await peripheral(radio, "strap", position=(2.0, 3.0))
        distances = (1.0, 4.0, 12.0)
        scanners = [
            await radio.device(f"gateway-{d:g}m", position=(2.0 + d, 3.0)) for d in distances
        ]
        heard = await asyncio.gather(*(hear(s, 0.3) for s in scanners))
        rssi = [{a.rssi for a in from_(h, strap)} for h in heard]
        expected = [
            round(RSSI_AT_1M_DBM - 10 * PATH_LOSS_EXPONENT * math.log10(d)) for d in distances
        ]
        assert rssi == [{e} for e in expected]
        assert expected[0] > expected[1] > expected[2] > SENSITIVITY_DBM
        assert max(scanners, key=lambda s: radio.rssi(s, strap)) is scanners[0]

    asyncio.run(main())


def test_out_of_range_nothing_is_heard_a_link_times_out_and_back_in_range_all_works():
    async def main():
        scale = 4
        radio = VirtualRadio(time_scale=scale)
        central = await radio.device("gateway")
        strap = await peripheral(radio, "strap", position=(5.0, 0.0))
        assert radio.in_range(central, strap)
        connection = await central.connect(strap.random_address, timeout=5)
        strap_side = next(iter(strap.connections.values()))
        ends = asyncio.gather(disconnected(connection), disconnected(strap_side))

        left = time.monotonic()
        radio.move(strap, (40.0, 0.0))  # -59 - 26 log10(40) = -100.7 dBm
        assert not radio.in_range(central, strap)
        (reason_c, at_c), (reason_s, at_s) = await ends
        timeout = DEFAULT_SUPERVISION_S / scale
        assert reason_c == reason_s == hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR == 0x08
        assert timeout <= at_c - left < timeout + 0.5 and timeout <= at_s - left < timeout + 0.5

        await strap.start_advertising(advertising_data=FLAGS)  # as the firmware does
        assert from_(await hear(central, 0.5), strap) == []  # eight adverts' time
        address = str(strap.random_address)
        with pytest.raises(BleakError, match="could not connect"):
            async with BleakClient(
                address, backend=BumbleBleakClient, central=central, timeout=0.5
            ):
                pass

        radio.move(strap, (5.0, 0.0))
        assert from_(await hear(central, 0.3), strap) != []
        async with BleakClient(
            address, backend=BumbleBleakClient, central=central, timeout=5
        ) as client:
            assert client.is_connected

    asyncio.run(main())


def test_link_traffic_waits_out_a_short_outage_and_arrives():
    """A real link layer retransmits until acknowledged: what is sent during an outage shorter
    than the supervision timeout arrives late, not never."""

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await peripheral(radio, "strap")
        connection = await central.connect(strap.random_address, timeout=5)
        peer = Peer(connection)
        await peer.discover_services()
        radio.move(strap, (40.0, 0.0))
        left = time.monotonic()
        read = asyncio.ensure_future(peer.read_characteristics_by_uuid(core.UUID("2A00")))
        await asyncio.sleep(0.3)  # under the 720 ms supervision timeout
        assert not read.done()
        radio.move(strap, (0.0, 0.0))
        assert await asyncio.wait_for(read, 5) == [b"strap"]
        assert time.monotonic() - left >= 0.3
        assert connection.handle in central.connections

    asyncio.run(main())


def test_a_power_cut_is_a_supervision_timeout_for_the_peer_and_a_reset_a_termination():
    async def main():
        radio = VirtualRadio(time_scale=4)
        central = await radio.device("gateway")
        strap = await peripheral(radio, "strap")
        connection = await central.connect(strap.random_address, timeout=5)
        end = asyncio.ensure_future(disconnected(connection))
        # the strap reboots: same address, new controller; the gateway hears nothing more
        cut = time.monotonic()
        rebooted = await peripheral(radio, "strap-rebooted", address=str(strap.random_address))
        reason, at = await end
        assert reason == hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
        assert at - cut >= DEFAULT_SUPERVISION_S / 4
        connection = await central.connect(rebooted.random_address, timeout=5)

        # a reset of the gateway's controller ends its links at once, with a termination
        strap_side = next(iter(rebooted.connections.values()))
        end = asyncio.ensure_future(disconnected(strap_side))
        await central.host.reset()
        reason, _ = await end
        assert reason == hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR

    asyncio.run(main())
