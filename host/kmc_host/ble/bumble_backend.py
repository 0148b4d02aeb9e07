"""A bleak backend on Google's bumble stack: real BLE (HCI, ATT, GATT) without a radio.

bleak accepts `backend=` classes for `BleakClient` and `BleakScanner`. These two route bleak's
calls to a bumble `Device` whose virtual controller sits on an in-process `LocalLink` with the
emulated straps' controllers (kmc_testbed's VirtualRadio), or on a real controller over an HCI
transport (`open_hci_central`), so the gateway's bleak code runs unchanged in tests, in the demo
and on a dongle; on BlueZ in a ward it uses bleak's own backend. Pass the central with
`central=`:

    central = ...  # a powered-on bumble Device
    device = await BleakScanner.find_device_by_filter(match, backend=BumbleBleakScanner, central=central)
    async with BleakClient(device, backend=BumbleBleakClient, central=central) as client: ...

Security as BlueZ does it: a peer the central holds a bond for is encrypted with the bond's key
on connect, and a peer that cannot (another device at that address, or one that lost its keys)
is refused with a BleakError. With `pair=True` and no bond yet, LE Secure Connections pairing
with passkey entry (`passkey=`, the strap's label) makes one; a wrong passkey fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from bleak.backends.characteristic import BleakGATTCharacteristic, CharacteristicPropertyName
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble import hci
from bumble.att import ATT_Error
from bumble.core import AdvertisingData, BaseBumbleError
from bumble.device import Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy, ServiceProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.keys import JsonKeyStore
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.snoop import Snooper

from .errors import LinkSecurityError

if TYPE_CHECKING:
    from ..gateway.link import BleAccess

log = logging.getLogger(__name__)
_bumble_host_log = logging.getLogger("bumble.host")

DISCONNECT_TIMEOUT_S = 5.0  # a controller that is gone answers no disconnect

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


def central_access(central: Device) -> BleAccess:
    """The gateway's `BleAccess` (bleak backends and their arguments) for a bumble central."""
    from ..gateway.link import BleAccess

    return BleAccess(
        BumbleBleakScanner, BumbleBleakClient, {"central": central}, serialises_links=True
    )


@contextlib.asynccontextmanager
async def open_hci_central(
    spec: str, bonds: str | None = None, label: str | None = None
) -> AsyncIterator[Any]:
    """The gateway's central on bumble's own stack over an HCI transport (`usb:0`,
    `serial:/dev/ttyUSB0`, `tcp-client:127.0.0.1:9000`): yields the `BleAccess` for it.
    `bonds`: the JSON file that keeps the straps' bonds across restarts; `label`: one of the
    gateway's several adapters, whose (static random) address then derives from the label, so
    each adapter keeps its own identity whatever its place in the configuration."""
    from bumble.transport import open_transport

    address = "F0:F0:F0:F0:F0:F0"
    if label is not None:
        code = zlib.crc32(label.encode())
        address = f"F0:F0:F0:F0:{code >> 8 & 0xFF:02X}:{code & 0xFF:02X}"
    async with await open_transport(spec) as transport:
        host = QuietHost(controller_source=transport.source, controller_sink=transport.sink)
        device = Device(name="kmc-gateway", address=Address(address), host=host)
        if bonds is not None:
            device.keystore = JsonKeyStore("kmc-gateway", bonds)
        await device.power_on()
        # resolves when the transport ends (a USB dongle unplugged, the TCP peer gone)
        lost = getattr(transport.source, "terminated", None)
        yield replace(central_access(device), lost=lost)


class QuietHost(Host):
    """bumble's Host, but formatting an HCI packet for the debug log only when debug logging
    is on. bumble's own (host.py `on_hci_packet`, `send_hci_packet`) builds the line with an
    f-string before the logger decides, and on a ward's radio, where every strap's adverts
    and scan responses come up the HCI, that formatting was a fifth of the gateway's CPU.
    The packet handling is bumble's: with debug off this hands each packet on as bumble does
    after its log line (snooper, then the handler for the packet's kind)."""

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_host_log.isEnabledFor(logging.DEBUG):
            super().on_hci_packet(packet)
            return
        if not isinstance(packet, hci.HCI_Event | hci.HCI_AclDataPacket):
            super().on_hci_packet(packet)  # commands, SCO, ISO: rare here; bumble's own path
            return
        if self.snooper:
            self.snooper.snoop(bytes(packet), Snooper.Direction.CONTROLLER_TO_HOST)
        if isinstance(packet, hci.HCI_Event):
            self.on_hci_event_packet(packet)
        else:
            self.on_hci_acl_data_packet(packet)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_host_log.isEnabledFor(logging.DEBUG):
            super().send_hci_packet(packet)
            return
        if self.snooper:
            self.snooper.snoop(bytes(packet), Snooper.Direction.HOST_TO_CONTROLLER)
        if self.hci_sink:
            self.hci_sink.on_packet(bytes(packet))


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
        """One advertisement as bleak's BlueZ backend presents it: BlueZ keeps one record per
        device and updates it from each advertising report and scan response, so a report
        shows the name, the service UUIDs and the service data last heard from that address,
        whichever packet carried them. bumble's Device already joins a scan response to the
        advertisement before it (AdvertisementDataAccumulator); the rest of the record, for
        a report that comes alone, is the one bleak keeps in `seen_devices`."""
        address = str(advertisement.address).split("/")[0]
        seen = self.seen_devices.get(address)
        before = seen[1] if seen is not None else None
        uuids = list(before.service_uuids) if before is not None else []
        service_data = dict(before.service_data) if before is not None else {}
        heard_uuids, heard_data, name = advert_fields(advertisement.data.ad_structures)
        uuids += [u for u in heard_uuids if u not in uuids]
        service_data.update(heard_data)  # the newest wins, as on BlueZ
        if name is None and before is not None:
            name = before.local_name
        if not self.is_allowed_uuid(uuids):
            return
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data={},
            service_data=service_data,
            service_uuids=uuids,
            tx_power=None,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
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
        passkey: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._central = central
        self._mtu = mtu
        self._passkey = passkey
        # the advertised address with its type (public or random), when we have it
        self._target: Any = (
            address_or_ble_device.details
            if isinstance(address_or_ble_device, BLEDevice)
            and isinstance(address_or_ble_device.details, Address)
            else self.address
        )
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
        # a controller makes one link at a time (bumble refuses a second pending connect);
        # once made, its security and GATT go on while the next link is being made
        async with _link_lock(self._central):
            attempt = asyncio.ensure_future(
                self._central.connect(self._target, timeout=self._timeout)
            )
            try:
                connection = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                await self._abandon(attempt)
                raise
            except Exception as exc:  # bumble raises its own timeout and HCI errors
                raise BleakError(f"could not connect to {self.address}: {exc}") from exc
        self._connection = connection
        connection.on("disconnection", self._on_disconnection)
        try:
            await self._secure(connection, pair)
        except BleakError:
            await self.disconnect()
            raise
        self._peer = peer = Peer(connection)
        try:
            async with asyncio.timeout(self._timeout):
                with self._gatt("service discovery"):
                    self.services = await self._discover(peer)
        except TimeoutError:
            await self.disconnect()
            raise BleakError(f"{self.address}: service discovery timed out") from None

    async def _abandon(self, attempt: asyncio.Future[Connection]) -> None:
        """A connection given up half-way (the gateway stopping): cancel the controller's
        request, and end the link if it was made all the same. bumble's own connect, cancelled,
        leaves the request pending, and the link it makes later would hold a controller slot
        and keep the strap from advertising."""
        with contextlib.suppress(Exception):
            await self._central.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
        try:
            connection = await asyncio.wait_for(attempt, 2.0)
        except Exception:  # noqa: BLE001 - cancelled, refused or timed out: nothing to end
            return
        with contextlib.suppress(Exception):
            await connection.disconnect()

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        """The peer's GATT table: discovered once per bonded peer, then taken from the
        central's cache (handles do not change while a bond lasts: the strap's table is
        fixed in its firmware), which saves a dozen round trips on every visit."""
        await peer.request_mtu(self._mtu)
        key = str(peer.connection.peer_address)
        cache = _gatt_cache(self._central)
        layout = cache.get(key)
        if layout is not None:
            _restore(peer, layout)
        else:
            await peer.discover_services()
            for service in peer.services:
                await service.discover_characteristics()
                for char in service.characteristics:
                    await char.discover_descriptors()
            keystore = self._central.keystore
            if keystore is not None and await keystore.get(key):
                cache[key] = _layout(peer)
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            bleak_service = BleakGATTService(service, service.handle, _uuid(service.uuid))
            collection.add_service(bleak_service)
            for char in service.characteristics:
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
        return collection

    async def _secure(self, connection: Connection, pair: bool) -> None:
        """Encrypt with the bond we hold for this peer; or pair (if asked) when we hold none."""
        keystore = self._central.keystore
        bonded = keystore is not None and await keystore.get(str(connection.peer_address))
        if bonded:
            try:
                await connection.encrypt()
            except Exception as exc:  # noqa: BLE001 - HCI errors, a link that went away
                raise LinkSecurityError(
                    f"{self.address} could not encrypt with our bond ({exc}): not the bonded "
                    "strap, or it has lost its keys (recommission it)"
                ) from exc
        elif pair:
            await self.pair()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """LE Secure Connections, passkey entry with the strap's label passkey; bonds."""
        connection = self._connection
        if connection is None:
            raise BleakError("not connected")
        if self._passkey is None:
            raise LinkSecurityError(f"{self.address}: no passkey to pair with (the strap's label)")
        passkey = self._passkey
        self._central.pairing_config_factory = lambda c: PairingConfig(
            sc=True,
            mitm=True,
            bonding=True,
            delegate=_PasskeyEntry(passkey),
            identity_address_type=PairingConfig.AddressType.RANDOM,
        )
        try:
            await connection.pair()
        except Exception as exc:  # noqa: BLE001 - SMP failures, timeouts, a dropped link
            raise LinkSecurityError(
                f"pairing with {self.address} failed ({exc}): wrong passkey, or the strap "
                "is bonded to another gateway"
            ) from exc
        keystore = self._central.keystore
        name = str(connection.peer_address)
        keys = await keystore.get(name) if keystore is not None else None
        if keys is None or keys.ltk is None or not keys.ltk.authenticated:
            if keys is not None and keystore is not None:
                await keystore.delete(name)
            raise LinkSecurityError(
                f"pairing with {self.address} was not authenticated (Just Works, no passkey): "
                "refused, as a foreign device would be"
            )

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
            # a controller that is gone (unplugged) answers nothing: do not wait on it for ever
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.disconnect(), DISCONNECT_TIMEOUT_S)

    async def unpair(self) -> None:
        if self._central.keystore is not None:
            peer = self._connection.peer_address if self._connection else self._target
            await self._central.keystore.delete(str(peer))
            _gatt_cache(self._central).pop(str(peer), None)
        await self.disconnect()

    @contextlib.contextmanager
    def _gatt(self, target: Any) -> Iterator[None]:
        """bumble's ATT and protocol errors, and a request cut short because the peer ended the
        link, as BleakError, as bleak's own backends raise them (an INSUFFICIENT_AUTHENTICATION
        from a strap, or a strap refusing us, must not end the gateway)."""
        what = getattr(target, "uuid", target)
        try:
            yield
        except (ATT_Error, BaseBumbleError) as exc:
            if isinstance(exc, ATT_Error) and self._connection is not None:
                # the cached table may be stale (a strap's firmware updated under its bond):
                # the next connection discovers it again
                _gatt_cache(self._central).pop(str(self._connection.peer_address), None)
            raise BleakError(f"{what}: {exc}") from exc
        except asyncio.CancelledError:
            if self._connection is not None:
                raise  # our own task is being cancelled
            raise BleakError(f"{what}: {self.address} ended the link") from None

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, **kwargs: Any
    ) -> bytearray:
        with self._gatt(characteristic):
            return bytearray(await self._require_peer().read_value(characteristic.obj))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, **kwargs: Any
    ) -> bytearray:
        with self._gatt(descriptor):
            return bytearray(await self._require_peer().read_value(descriptor.obj))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        with self._gatt(characteristic):
            await self._require_peer().write_value(
                characteristic.obj, bytes(data), with_response=response
            )

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        with self._gatt(descriptor):
            await self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        with self._gatt(characteristic):
            await self._require_peer().subscribe(
                characteristic.obj, lambda value: callback(bytearray(value))
            )

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        with self._gatt(characteristic):
            await self._require_peer().unsubscribe(characteristic.obj)


# A GATT table as handles and UUIDs: [(service handle, end, uuid, [(char handle, end, uuid,
# properties, [(descriptor handle, type)])])]
_Layout = list[tuple[int, int, Any, list[tuple[int, int, Any, int, list[tuple[int, Any]]]]]]
_GATT_CACHES: weakref.WeakKeyDictionary[Device, dict[str, _Layout]] = weakref.WeakKeyDictionary()


_LINK_LOCKS: weakref.WeakKeyDictionary[Device, asyncio.Lock] = weakref.WeakKeyDictionary()


def _link_lock(central: Device) -> asyncio.Lock:
    """One LE Create Connection at a time on a central."""
    return _LINK_LOCKS.setdefault(central, asyncio.Lock())


def _gatt_cache(central: Device) -> dict[str, _Layout]:
    """The GATT tables of bonded peers this central has discovered (forgotten with it)."""
    return _GATT_CACHES.setdefault(central, {})


def _layout(peer: Peer) -> _Layout:
    return [
        (
            s.handle,
            s.end_group_handle,
            s.uuid,
            [
                (
                    c.handle,
                    c.end_group_handle,
                    c.uuid,
                    int(c.properties),
                    [(d.handle, d.type) for d in c.descriptors],
                )
                for c in s.characteristics
            ],
        )
        for s in peer.services
    ]


def _restore(peer: Peer, layout: _Layout) -> None:
    """Give a new connection's GATT client the proxies of a cached table."""
    client = peer.gatt_client
    client.services = []
    for handle, end, uuid, chars in layout:
        service = ServiceProxy(client, handle, end, uuid)
        for c_handle, c_end, c_uuid, props, descs in chars:
            char: CharacteristicProxy[bytes] = CharacteristicProxy(
                client, c_handle, c_end, c_uuid, props
            )
            char.descriptors = [DescriptorProxy(client, h, t) for h, t in descs]
            char.descriptors_discovered = True
            service.characteristics.append(char)
        client.services.append(service)


class _PasskeyEntry(PairingDelegate):
    """The gateway's side of pairing: it types the passkey from its configuration."""

    def __init__(self, passkey: int) -> None:
        super().__init__(PairingDelegate.KEYBOARD_INPUT_ONLY)
        self.passkey = passkey

    async def get_number(self) -> int | None:
        return self.passkey


_UUID_LISTS: dict[int, int] = {
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA: dict[int, int] = {
    AdvertisingData.SERVICE_DATA_16_BIT_UUID: 2,
    AdvertisingData.SERVICE_DATA_128_BIT_UUID: 16,
}
_NAMES = (AdvertisingData.SHORTENED_LOCAL_NAME, AdvertisingData.COMPLETE_LOCAL_NAME)


def advert_fields(
    ad_structures: Iterable[tuple[int, bytes]],
) -> tuple[list[str], dict[str, bytes], str | None]:
    """The service UUIDs, service data and local name in one advertising report's AD
    structures (Core Supplement, Part A), as bleak names them: UUIDs as lower-case 128-bit
    strings. Read straight off the bytes: bumble's `AdvertisingData.get_all` turns each UUID
    into an object looked up in a registry of hundreds, which at a ward's few hundred reports
    a second was a fifth of the gateway's CPU. A truncated structure is skipped, as a scanner
    skips what it cannot read."""
    uuids: list[str] = []
    data: dict[str, bytes] = {}
    name: str | None = None
    for kind, value in ad_structures:
        if (size := _UUID_LISTS.get(kind)) is not None:
            for at in range(0, len(value) - size + 1, size):
                u = _uuid_le(value[at : at + size])
                if u not in uuids:
                    uuids.append(u)
        elif (size := _SERVICE_DATA.get(kind)) is not None:
            if len(value) >= size:
                data[_uuid_le(value[:size])] = bytes(value[size:])
        elif kind in _NAMES and (name is None or kind == AdvertisingData.COMPLETE_LOCAL_NAME):
            name = bytes(value).decode(errors="replace")
    return uuids, data, name


def _uuid_le(raw: bytes) -> str:
    """A UUID as it goes over the air (little-endian; 16 or 128 bits) -> bleak's string."""
    if len(raw) == 2:
        return f"0000{raw[1]:02x}{raw[0]:02x}-0000-1000-8000-00805f9b34fb"
    h = raw[::-1].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid(uuid: Any) -> str:
    """bumble UUID -> bleak's lower-case 128-bit string."""
    return _uuid_le(uuid.to_bytes(force_128=True))  # bumble keeps UUIDs little-endian
