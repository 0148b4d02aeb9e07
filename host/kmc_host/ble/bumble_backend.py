"""A bleak backend on Google's bumble stack: real BLE (HCI, ATT, GATT) without a radio.

bleak accepts `backend=` classes for `BleakClient` and `BleakScanner`. These two route bleak's
calls to a bumble `Device` whose virtual controller sits on an in-process `LocalLink` with the
emulated straps' controllers, so the gateway's bleak code runs unchanged in tests and in the
demo, and on BlueZ in a ward. Pass the central with `central=`:

    radio = VirtualRadio()
    central = await radio.device("gateway")
    device = await BleakScanner.find_device_by_filter(match, backend=BumbleBleakScanner, central=central)
    async with BleakClient(device, backend=BumbleBleakClient, central=central) as client: ...
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from bleak.backends.characteristic import BleakGATTCharacteristic, CharacteristicPropertyName
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble import hci, ll
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device, Peer
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink

log = logging.getLogger(__name__)

_PROPERTIES: tuple[tuple[int, CharacteristicPropertyName], ...] = (
    (0x01, "broadcast"),
    (0x02, "read"),
    (0x04, "write-without-response"),
    (0x08, "write"),
    (0x10, "notify"),
    (0x20, "indicate"),
    (0x40, "authenticated-signed-writes"),
    (0x80, "extended-properties"),
)


class _ResettingController(Controller):
    """HCI Reset drops the LE links, as a real controller's reset does (Core spec Vol 4, Part E,
    7.3.2): a gateway restarted after a crash resets its dongle and finds its straps
    advertising again. (bumble's emulated controller leaves them connected.)"""

    def on_hci_reset_command(self, command: Any) -> Any:
        for connection in list(self.le_connections.values()):
            connection.send_ll_control_pdu(
                ll.TerminateInd(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR)
            )
        self.le_connections.clear()
        return super().on_hci_reset_command(command)


class VirtualRadio:
    """The air between virtual BLE controllers (one bumble LocalLink)."""

    def __init__(self) -> None:
        self.link = LocalLink()
        self._next = 1

    def hci_server_controller(self, name: str, source: Any, sink: Any) -> Controller:
        """A controller on this link whose HCI is reached through a transport (e.g. bumble's
        `tcp-server:`): a gateway in another process drives it, as it would a USB dongle."""
        address = f"F0:00:00:00:{self._next >> 8:02X}:{self._next & 0xFF:02X}"
        self._next += 1
        return _ResettingController(
            name, host_source=source, host_sink=sink, link=self.link, public_address=address
        )

    async def device(self, name: str) -> Device:
        """A powered-on bumble device with its own controller on this link."""
        address = f"F0:00:00:00:{self._next >> 8:02X}:{self._next & 0xFF:02X}"
        self._next += 1
        controller = Controller(name, link=self.link, public_address=address)
        host = Host()
        host.set_packet_sink(controller)
        controller.host = host
        device = Device(name=name, address=Address(address), host=host)
        await device.power_on()
        return device


@contextlib.asynccontextmanager
async def open_hci_central(spec: str) -> AsyncIterator[Any]:
    """The gateway's central on bumble's own stack over an HCI transport (`usb:0`,
    `serial:/dev/ttyUSB0`, `tcp-client:127.0.0.1:9000`): yields the `BleAccess` for it."""
    from bumble.transport import open_transport

    from ..gateway.link import BleAccess

    async with await open_transport(spec) as transport:
        device = Device.with_hci(
            "kmc-gateway", Address("F0:F0:F0:F0:F0:F0"), transport.source, transport.sink
        )
        await device.power_on()
        yield BleAccess(BumbleBleakScanner, BumbleBleakClient, {"central": device})


class BumbleBleakScanner(BaseBleakScanner):
    """bleak scanner backend: reports the advertisements the bumble central hears."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        central: Device,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._central = central
        self._active = scanning_mode == "active"

    async def start(self) -> None:
        self.seen_devices = {}
        self._central.on("advertisement", self._on_advertisement)
        await self._central.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        await self._central.stop_scanning()
        self._central.remove_listener("advertisement", self._on_advertisement)

    def _on_advertisement(self, advertisement: Any) -> None:
        data: AdvertisingData = advertisement.data
        uuids = []
        for kind in (
            AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        ):
            for entry in data.get_all(kind):  # each AD structure is a list of UUIDs
                uuids += [_uuid(u) for u in (entry if isinstance(entry, list) else [entry])]
        name = data.get(AdvertisingData.SHORTENED_LOCAL_NAME) or data.get(
            AdvertisingData.COMPLETE_LOCAL_NAME
        )
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        if not self.is_allowed_uuid(uuids):
            return
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data={},
            service_uuids=uuids,
            tx_power=None,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        address = str(advertisement.address).split("/")[0]
        device = self.create_or_update_device(address, address, name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)


class BumbleBleakClient(BaseBleakClient):
    """bleak client backend: one GATT connection through the bumble central."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        central: Device,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        mtu: int = 247,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._central = central
        self._mtu = mtu
        self._connection: Connection | None = None
        self._peer: Peer | None = None

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if pair:
            log.info("bumble backend: pairing is not emulated; connecting without it")
        try:
            connection = await self._central.connect(self.address, timeout=self._timeout)
        except Exception as exc:  # bumble raises its own timeout and HCI errors
            raise BleakError(f"could not connect to {self.address}: {exc}") from exc
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        self._peer = peer = Peer(connection)
        await peer.request_mtu(self._mtu)
        await peer.discover_services()
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            await service.discover_characteristics()
            bleak_service = BleakGATTService(service, service.handle, _uuid(service.uuid))
            collection.add_service(bleak_service)
            for char in service.characteristics:
                await char.discover_descriptors()
                props = [name for bit, name in _PROPERTIES if char.properties & bit]
                bleak_char = BleakGATTCharacteristic(
                    char,
                    char.handle,
                    _uuid(char.uuid),
                    props,
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for desc in char.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, _uuid(desc.type), bleak_char)
                    )
        self.services = collection

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._peer = None
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        if self._connection is not None:
            connection = self._connection
            connection.remove_listener("disconnection", self._on_disconnection)
            self._connection = None
            self._peer = None
            await connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        log.info("bumble backend: pairing is not emulated")

    async def unpair(self) -> None:
        log.info("bumble backend: pairing is not emulated")

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require_peer().read_value(characteristic.obj))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require_peer().read_value(descriptor.obj))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        await self._require_peer().write_value(
            characteristic.obj, bytes(data), with_response=response
        )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        await self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        await self._require_peer().subscribe(
            characteristic.obj, lambda value: callback(bytearray(value))
        )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        await self._require_peer().unsubscribe(characteristic.obj)


def _uuid(uuid: Any) -> str:
    """bumble UUID -> bleak's lower-case 128-bit string."""
    raw = bytes(reversed(uuid.to_bytes(force_128=True)))  # bumble keeps UUIDs little-endian
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
