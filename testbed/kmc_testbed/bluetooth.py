"""MicroPython's `bluetooth` module, as far as the strap firmware uses it, on a bumble device.

`BLE` (MicroPython's `bluetooth.BLE`) registers the firmware's GATT services on a bumble
`Device`, turns bumble's connection, write, MTU, encryption and pairing events into the
firmware's IRQs, and keeps bumble's keys in the firmware's bond store (`_IRQ_GET_SECRET` /
`_IRQ_SET_SECRET`), so the firmware's own pairing policy decides. The store calls follow
MicroPython's NimBLE glue and NimBLE, loops included: a Pairing Request from a peer with keys
runs the repeat-pairing loop (the keys deleted, pairing retried, while they are found), and a
refused key write runs the store's overflow handler (the oldest bonded peer unpaired, the
write tried again); a loop the firmware's answers would keep going forever is cut after
LOOP_GUARD turns and named in `BumbleBLE.hangs` (the host would hang on the board). `module()`
is the stand-in the firmware imports as `bluetooth` (kmc_testbed.firmware loads it only for
the firmware).
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable
from typing import Any

from bumble.device import AdvertisingType, Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.keys import KeyStore, PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.smp import PairingMethod

__all__ = ["UUID", "BumbleBLE", "module"]

_FLAG_READ, _FLAG_WRITE_NR, _FLAG_WRITE, _FLAG_NOTIFY, _FLAG_INDICATE = 0x02, 0x04, 0x08, 0x10, 0x20
_FLAG_READ_AUTHENTICATED, _FLAG_WRITE_AUTHENTICATED = 0x0400, 0x2000
# MicroPython's IRQ numbers and constants
_IRQ_CONNECT, _IRQ_DISCONNECT, _IRQ_WRITE, _IRQ_MTU = 1, 2, 3, 21
_IRQ_ENCRYPTION_UPDATE, _IRQ_GET_SECRET, _IRQ_SET_SECRET, _IRQ_PASSKEY_ACTION = 28, 29, 30, 31
_PASSKEY_ACTION_DISP = 3
_SEC_OURS, _SEC_PEER = 1, 2
LOOP_GUARD = 100  # turns of a NimBLE loop that would never end on the board
_IO_CAPABILITY = {  # BLE.config(io=...) -> bumble
    0: PairingDelegate.DISPLAY_OUTPUT_ONLY,
    1: PairingDelegate.DISPLAY_OUTPUT_AND_YES_NO_INPUT,
    2: PairingDelegate.KEYBOARD_INPUT_ONLY,
    3: PairingDelegate.NO_OUTPUT_NO_INPUT,
    4: PairingDelegate.DISPLAY_OUTPUT_AND_KEYBOARD_INPUT,
}
PASSKEY_TIMEOUT_S = 30.0  # SMP's own timeout
NOTIFY_QUEUE = (
    32  # like a controller's buffers: when full, gatts_notify raises and the strap retries
)


def module() -> types.ModuleType:
    """The `bluetooth` module the firmware imports: UUID and BLE."""
    bluetooth = types.ModuleType("bluetooth")
    bluetooth.UUID = UUID  # type: ignore[attr-defined]
    bluetooth.BLE = BumbleBLE  # type: ignore[attr-defined]
    return bluetooth


class UUID:
    """`bluetooth.UUID`: a 16-bit int or a 128-bit string."""

    def __init__(self, value: int | str) -> None:
        self.value = value

    def text(self) -> str:
        return f"{self.value:04X}" if isinstance(self.value, int) else str(self.value)


class BumbleBLE:
    """MicroPython's `bluetooth.BLE`, as far as the strap firmware uses it, on bumble."""

    def __init__(self, device: Device) -> None:
        self.device = device
        self._irq: Callable[[int, tuple[Any, ...]], None] | None = None
        self._chars: dict[int, Characteristic[bytes]] = {}
        self._values: dict[int, bytes] = {}
        self._connections: dict[int, Connection] = {}
        self._pairing: dict[int, Any] = {}  # encrypted while pairing: the event waits (Session)
        self._queue: asyncio.Queue[tuple[int, int, bytes, bool]] = asyncio.Queue(NOTIFY_QUEUE)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._config: dict[str, Any] = {
            "mtu": 23,
            "gap_name": "",
            "bond": False,
            "le_secure": False,
            "mitm": False,
            "io": 3,
        }
        self._passkeys: dict[int, asyncio.Future[int]] = {}
        self.hangs: list[str] = []  # NimBLE loops that would never have ended
        self.repeat_pairings = 0  # BLE_GAP_EVENT_REPEAT_PAIRING events
        self.overflows = 0  # BLE_STORE_EVENT_OVERFLOW events
        self._advertising = asyncio.Lock()  # one start/stop at a time, in the firmware's order
        device.on("connection", self._on_connection)
        device.keystore = _FirmwareKeyStore(self)
        device.pairing_config_factory = self._pairing_config
        self._spawn(self._sender())

    # -- the MicroPython API

    def active(self, state: bool | None = None) -> bool:
        return True

    def config(self, *args: str, **kwargs: Any) -> Any:
        if args:
            return self._config[args[0]]
        self._config.update(kwargs)
        return None

    def irq(self, handler: Callable[[int, tuple[Any, ...]], None]) -> None:
        self._irq = handler

    def gatts_register_services(self, services: Any) -> tuple[tuple[int, ...], ...]:
        out = []
        for svc_uuid, chars in services:
            handles = []
            bumble_chars = []
            for char_uuid, flags in chars:
                handle = len(self._chars) + 1
                self._values[handle] = b""
                permissions = Characteristic.READABLE | Characteristic.WRITEABLE
                if flags & _FLAG_READ_AUTHENTICATED:
                    permissions |= Characteristic.READ_REQUIRES_AUTHENTICATION
                if flags & _FLAG_WRITE_AUTHENTICATED:
                    permissions |= Characteristic.WRITE_REQUIRES_AUTHENTICATION
                char: Characteristic[bytes] = Characteristic(
                    char_uuid.text(),
                    Characteristic.Properties(flags & 0x3E),
                    permissions,
                    CharacteristicValue(read=self._reader(handle), write=self._writer(handle)),  # type: ignore[arg-type]
                )
                self._chars[handle] = char
                bumble_chars.append(char)
                handles.append(handle)
            self.device.add_service(Service(svc_uuid.text(), bumble_chars))
            out.append(tuple(handles))
        return tuple(out)

    def gatts_write(self, handle: int, data: bytes) -> None:
        self._values[handle] = bytes(data)

    def gatts_read(self, handle: int) -> bytes:
        return self._values[handle]

    def gatts_set_buffer(self, handle: int, size: int, append: bool = False) -> None:
        pass

    def gatts_notify(self, conn: int, handle: int, data: bytes | None = None) -> None:
        self._send(conn, handle, data, indicate=False)

    def gatts_indicate(self, conn: int, handle: int, data: bytes | None = None) -> None:
        self._send(conn, handle, data, indicate=True)

    def gap_advertise(
        self,
        interval_us: int | None,
        adv_data: bytes | None = None,
        *,
        resp_data: bytes | None = None,
        connectable: bool = True,
    ) -> None:
        """MicroPython's signature. Scannable, so an active scan gets `resp_data` (the
        strap's status byte); None keeps the previous payload, as on the board."""
        self._spawn(self._advertise(interval_us, adv_data, resp_data, connectable))

    async def _advertise(
        self,
        interval_us: int | None,
        adv_data: bytes | None,
        resp_data: bytes | None,
        connectable: bool,
    ) -> None:
        # the strap re-advertises whenever its status byte changes: calls must not overlap
        # (bumble's start_advertising stops the running advertiser first, with awaits between)
        async with self._advertising:
            if interval_us is None:
                await self.device.stop_advertising()
                return
            await self.device.start_advertising(
                advertising_type=(
                    AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
                    if connectable
                    else AdvertisingType.UNDIRECTED_SCANNABLE
                ),
                advertising_data=None if adv_data is None else bytes(adv_data),
                scan_response_data=None if resp_data is None else bytes(resp_data),
                auto_restart=False,
                # the firmware's interval (ms for bumble): how soon a central's connection
                # request meets the strap's next advertising event
                advertising_interval_min=interval_us / 1000,
                advertising_interval_max=interval_us / 1000,
            )

    def gap_passkey(self, conn: int, action: int, passkey: int) -> None:
        waiting = self._passkeys.pop(conn, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(passkey)

    def gap_disconnect(self, conn: int) -> bool:
        connection = self._connections.get(conn)
        if connection is None:
            return False
        self._spawn(connection.disconnect())
        return True

    # -- bumble side: security

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        cfg = self._config
        return PairingConfig(
            sc=bool(cfg["le_secure"]),
            mitm=bool(cfg["mitm"]),
            bonding=bool(cfg["bond"]),
            delegate=_FirmwareDelegate(self, connection, _IO_CAPABILITY[cfg["io"]]),
            identity_address_type=PairingConfig.AddressType.RANDOM,
        )

    async def passkey_to_show(self, connection: Connection) -> int:
        """The firmware's answer to _IRQ_PASSKEY_ACTION (from its BLE task)."""
        waiting: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._passkeys[connection.handle] = waiting
        self._event(_IRQ_PASSKEY_ACTION, (connection.handle, _PASSKEY_ACTION_DISP, 0))
        return await asyncio.wait_for(waiting, PASSKEY_TIMEOUT_S)

    def secret(self, sec_type: int, index: int, key: bytes | None) -> bytes | None:
        return self._irq(_IRQ_GET_SECRET, (sec_type, index, key)) if self._irq else None

    def store_secret(self, sec_type: int, key: bytes, value: bytes | None) -> bool:
        return bool(self._irq(_IRQ_SET_SECRET, (sec_type, key, value))) if self._irq else False

    # -- NimBLE's store loops (nimble/host/src/ble_sm.c, ble_store.c, ble_store_util.c)

    def _guard(self, turns: int, loop: str) -> int:
        if turns >= LOOP_GUARD:
            self.hangs.append(loop)
            raise RuntimeError(f"the BLE host would hang: {loop} never ends")
        return turns + 1

    def chk_repeat_pairing(self, address: Address) -> None:
        """ble_sm_chk_repeat_pairing, with MicroPython's handler: while the peer's keys are
        found, delete the peer and answer BLE_GAP_REPEAT_PAIRING_RETRY."""
        key = _secret_key(address)
        turns = 0
        while self.secret(_SEC_PEER, 0, key) is not None:
            turns = self._guard(turns, "ble_sm_chk_repeat_pairing")
            self.repeat_pairings += 1
            self.delete_peer(key)

    def delete_peer(self, key: bytes) -> None:
        """ble_store_util_delete_peer: ble_store_util_delete_all of our keys, then the peer's,
        each deleting until "not found" (CCCDs: MicroPython's glue answers that itself)."""
        for sec_type in (_SEC_OURS, _SEC_PEER):
            turns = 0
            while self.store_secret(sec_type, key, None):
                turns = self._guard(turns, "ble_store_util_delete_all")

    def store_write(self, sec_type: int, key: bytes, value: bytes) -> bool:
        """ble_store_write: a refused write (BLE_HS_ESTORE_CAP) raises the overflow event,
        ble_store_util_status_rr unpairs the oldest bonded peer (ble_gap_unpair_oldest_peer:
        its link ended, its keys deleted) and the write is tried again, until stored or no
        bonded peer is left (BLE_HS_ENOENT)."""
        turns = 0
        while not self.store_secret(sec_type, key, value):
            turns = self._guard(turns, "ble_store_write overflow")
            self.overflows += 1
            oldest = self.secret(_SEC_PEER, 0, None)  # ble_store_util_bonded_peers
            if oldest is None:
                return False
            peer = Address(json.loads(oldest)["name"])
            for connection in list(self._connections.values()):
                if connection.peer_address == peer:
                    self._spawn(connection.disconnect())
            self.delete_peer(_secret_key(peer))
        return True

    def _on_encryption_change(self, connection: Connection) -> None:
        """The link is encrypted. NimBLE tells the application at once only when a bond's key
        restored it; while pairing, it waits until the keys are exchanged (ble_sm_enc_event_rx:
        "if key exchange is pending, the application callback is triggered after exchange
        completes"), which `pairing_done` stands for."""
        session = self.device.smp_manager.sessions.get(connection.handle)
        if session is not None and not session.completed:
            self._pairing[connection.handle] = session
            return
        stored = self.secret(_SEC_PEER, 0, _secret_key(connection.peer_address))
        authenticated = False
        if stored is not None:  # a bond's key
            keys = PairingKeys.from_dict(json.loads(stored)["keys"])
            authenticated = keys.ltk is not None and keys.ltk.authenticated
        self._encryption_update(connection, authenticated, bonded=stored is not None)

    def pairing_done(self, name: str) -> None:
        """ble_sm_key_exch_success, then the encryption event: the connection is marked bonded
        (when both sides asked to bond) before ble_sm_persist_keys writes the keys, so the
        firmware hears of a new bond before the store holds it. `name` is the peer's identity
        address the keys will be stored under."""
        for handle, session in list(self._pairing.items()):
            connection = self._connections.get(handle)
            if connection is None:
                self._pairing.pop(handle)
                continue
            peer = session.peer_bd_addr or connection.peer_address
            if name not in (str(peer), str(connection.peer_address)):
                continue
            self._pairing.pop(handle)
            authenticated = session.pairing_method != PairingMethod.JUST_WORKS
            self._encryption_update(connection, authenticated, bonded=True)

    def _pairing_ended(self, connection: Connection) -> None:
        """bumble's end of pairing, after any key store: still waiting means nothing was to be
        stored (no bonding), and NimBLE's event then says not bonded."""
        session = self._pairing.pop(connection.handle, None)
        if session is not None:
            authenticated = session.pairing_method != PairingMethod.JUST_WORKS
            self._encryption_update(connection, authenticated, bonded=False)

    def _pairing_failed(self, connection: Connection) -> None:
        """A pairing that failed after encryption: the event comes with nothing bonded."""
        if self._pairing.pop(connection.handle, None) is not None:
            self._encryption_update(connection, False, bonded=False)

    def _encryption_update(self, connection: Connection, authenticated: bool, bonded: bool) -> None:
        self._event(
            _IRQ_ENCRYPTION_UPDATE,
            (connection.handle, int(connection.is_encrypted), int(authenticated), int(bonded), 16),
        )

    # -- bumble side

    def _send(self, conn: int, handle: int, data: bytes | None, indicate: bool) -> None:
        if conn not in self._connections:
            raise OSError(107, "not connected")
        value = self._values[handle] if data is None else bytes(data)
        try:
            self._queue.put_nowait((conn, handle, value, indicate))
        except asyncio.QueueFull:
            raise OSError(12, "notification queue full") from None

    async def _sender(self) -> None:
        """Sends queued notifications in order (MicroPython's call returns at once)."""
        while True:
            conn, handle, value, indicate = await self._queue.get()
            connection = self._connections.get(conn)
            if connection is None:
                continue
            try:
                if indicate:
                    await self.device.indicate_subscriber(connection, self._chars[handle], value)
                else:
                    await self.device.notify_subscriber(connection, self._chars[handle], value)
            except Exception:  # noqa: BLE001 - a link that went away: the strap resends on resume
                continue

    def _reader(self, handle: int) -> Callable[[Connection], bytes]:
        return lambda connection: self._values[handle]

    def _writer(self, handle: int) -> Callable[[Connection, bytes], None]:
        def write(connection: Connection, value: bytes) -> None:
            self._values[handle] = bytes(value)
            self._event(_IRQ_WRITE, (connection.handle, handle))

        return write

    def _on_connection(self, connection: Connection) -> None:
        self._connections[connection.handle] = connection
        connection.on("disconnection", lambda reason: self._on_disconnection(connection))
        connection.on(
            "connection_att_mtu_update",
            lambda: self._event(_IRQ_MTU, (connection.handle, connection.att_mtu)),
        )
        connection.on(
            "connection_encryption_change", lambda: self._on_encryption_change(connection)
        )
        connection.on("pairing", lambda keys: self._pairing_ended(connection))
        connection.on("pairing_failure", lambda reason: self._pairing_failed(connection))
        self._event(_IRQ_CONNECT, _irq_address(connection))

    def _on_disconnection(self, connection: Connection) -> None:
        self._connections.pop(connection.handle, None)
        self._pairing.pop(connection.handle, None)
        waiting = self._passkeys.pop(connection.handle, None)
        if waiting is not None and not waiting.done():
            waiting.cancel()
        self._event(_IRQ_DISCONNECT, _irq_address(connection))

    def _event(self, event: int, data: tuple[Any, ...]) -> Any:
        return self._irq(event, data) if self._irq is not None else None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _irq_address(connection: Connection) -> tuple[int, int, bytes]:
    """(conn, addr_type, addr) as MicroPython's connect IRQs give them: most significant first."""
    address = connection.peer_address
    return connection.handle, int(address.address_type) & 1, bytes(reversed(bytes(address)))


def _secret_key(address: Address) -> bytes:
    """The stack's key of a peer's security record: address type, then the address bytes
    least significant first (NimBLE's ble_addr_t, which MicroPython passes through)."""
    return bytes((int(address.address_type) & 1,)) + bytes(address)


class _FirmwareDelegate(PairingDelegate):
    """The strap's side of pairing: the passkey it shows comes from the firmware."""

    def __init__(self, ble: BumbleBLE, connection: Connection, io: Any) -> None:
        super().__init__(io)
        self.ble, self.connection = ble, connection

    async def accept(self) -> bool:
        """A Pairing Request: NimBLE first checks for a bond with the peer (repeat pairing)."""
        self.ble.chk_repeat_pairing(self.connection.peer_address)
        return True

    async def generate_passkey(self) -> int:
        return await self.ble.passkey_to_show(self.connection)

    async def display_number(self, number: int, digits: int = 6) -> None:
        pass  # printed on the strap's label

    async def get_number(self) -> int | None:
        return None  # a strap has no keyboard: refuse

    async def compare_numbers(self, number: int, digits: int = 6) -> bool:
        return False  # nor a yes/no button


class _FirmwareKeyStore(KeyStore):
    """bumble's key store on the firmware's bond store (GET_SECRET / SET_SECRET)."""

    def __init__(self, ble: BumbleBLE) -> None:
        self.ble = ble

    async def get(self, name: str) -> PairingKeys | None:
        value = self.ble.secret(_SEC_PEER, 0, _secret_key(Address(name)))
        return None if value is None else PairingKeys.from_dict(json.loads(value)["keys"])

    async def update(self, name: str, keys: PairingKeys) -> None:
        """The end of a bonding pairing: the encryption event, then ble_sm_persist_keys (our
        keys, then the peer's; results not looked at)."""
        self.ble.pairing_done(name)
        value = json.dumps({"name": name, "keys": keys.to_dict()}).encode()
        key = _secret_key(Address(name))
        self.ble.store_write(_SEC_OURS, key, value)
        self.ble.store_write(_SEC_PEER, key, value)

    async def delete(self, name: str) -> None:
        self.ble.delete_peer(_secret_key(Address(name)))

    async def get_all(self) -> list[tuple[str, PairingKeys]]:
        out: list[tuple[str, PairingKeys]] = []
        while (value := self.ble.secret(_SEC_PEER, len(out), None)) is not None:
            entry = json.loads(value)
            out.append((entry["name"], PairingKeys.from_dict(entry["keys"])))
        return out

    async def delete_all(self) -> None:
        for name, _ in await self.get_all():
            await self.delete(name)
