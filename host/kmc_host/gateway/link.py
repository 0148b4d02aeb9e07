"""One strap's visits: connect, secure, resume, drain, stay or let go; every sample once.

A visit (`StrapLink.visit`) connects, reads the strap's Status (its newest sample and its
clock), sets the clock when it is unset or far off, resumes from the cursor and drains up to
the newest sample Status named; then it streams live until the scheduler (scheduler.py)
releases the slot for another strap, or the link is lost. `StrapLink.run` is a strap alone on
its adapter: visits that never let go, retried with backoff.

The strap numbers every sample; the gateway keeps, per strap, the next sequence number it still
needs (the cursor, on disk). On every connection it asks the strap to resume from the cursor, so
a BLE outage, a strap reboot or a gateway restart neither loses nor repeats a sample. The cursor
moves only after `on_batch` has returned, i.e. after the samples are safely stored downstream.

Only the straps on the allow-list are connected, and each only at its address: the one in the
configuration, or else the one it first bonded from (pinned in `AddressBook`). Every link is
encrypted with the strap's bond (LE Secure Connections; the first time, pairing with the passkey
on the strap's label): a device that copies a strap's name or address cannot encrypt with its
key and is refused, so it cannot inject data (`LinkStats.auth_failures`).

Nothing a strap sends can crash the gateway: malformed packets, sequence jumps and clocks far
off are logged and counted in `LinkStats`; a strap that keeps sending garbage is disconnected
and left alone for a while (isolated). Connection failures retry with exponential backoff and
jitter. Notification callbacks only enqueue (bleak's advice); decoding happens in the link task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from .. import protocol as P
from ..ble.errors import LinkSecurityError, is_security_failure
from ..mqtt import OutboxFull
from .jsonfile import read_map, write_map

log = logging.getLogger(__name__)

CLOCK_TOLERANCE_S = 120.0  # a strap clock further off than this is set again and counted


class CursorStore:
    """Next sequence number to fetch, per strap, in one JSON file replaced atomically.

    The cursor moves in memory at every batch; the file follows at most once every `every_s`
    and at `flush` (the end of each visit, a stop's included), each time after `barrier()`,
    which makes what the batches behind it became durable (the gateway's outbox, `Outbox.sync`).
    So after a power cut the cursor on disk never names a sample the outbox lost; at worst the
    samples of the last second are fetched from the strap again, and every consumer is
    idempotent. One barrier and one fsync'd file a second, not one of each per notification:
    a catch-up after an outage brings tens of notifications a second, on disks (SD cards,
    eMMC) where an fsync can take tens of milliseconds, in the event loop every strap shares."""

    def __init__(
        self, path: Path, barrier: Callable[[], None] | None = None, every_s: float = 1.0
    ) -> None:
        self.path = path
        self.barrier = barrier
        self.every_s = every_s
        self._cursors: dict[str, int] = read_map(path, int, "cursor", "move it away to start over")
        self._dirty = False
        self._written_at = -math.inf

    def get(self, strap: str) -> int:
        return self._cursors.get(strap, 0)

    def set(self, strap: str, next_seq: int) -> None:
        self._cursors[strap] = next_seq
        self._dirty = True
        if time.monotonic() - self._written_at >= self.every_s:
            self.flush()

    def flush(self) -> bool:
        """Write the cursors, if they moved, once what they point past is durable; False when
        the disk refused the sync or the file (logged): the moves stay in memory, to be written
        at the next one, and a restart meanwhile fetches those samples again."""
        if not self._dirty:
            return True
        try:
            if self.barrier is not None:
                self.barrier()
            write_map(self.path, self._cursors)
        except OSError as exc:
            log.warning("cursor file %s not saved (%s): kept in memory", self.path, exc)
            return False
        self._dirty = False
        self._written_at = time.monotonic()
        return True


class AddressBook:
    """The address each strap bonded from (strap id -> address), one JSON file: the allow-list
    of addresses once a strap has been commissioned. Remove a line to recommission a strap."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._addresses: dict[str, str] = read_map(
            path,
            lambda v: str(v).upper(),
            "strap address",
            "fix it or move it away (the straps are then pinned again at their next connection)",
        )

    def get(self, strap: str) -> str | None:
        return self._addresses.get(strap)

    def set(self, strap: str, address: str) -> None:
        self._addresses[strap] = address.upper()
        write_map(self.path, self._addresses)


@dataclass
class LinkStats:
    """What happened on one strap's link (for logs, status messages and tests)."""

    connections: int = 0
    connect_failures: int = 0
    auth_failures: int = 0  # could not pair or encrypt: wrong passkey, or not the bonded strap
    samples: int = 0
    duplicates: int = 0
    missing: int = 0  # sequence numbers the strap no longer had (lost at a strap reboot)
    malformed: int = 0
    clock_resets: int = 0
    store_full: int = 0  # times the outbox's disk was too full to take a batch
    isolations: int = 0
    stalls: int = 0  # visits ended because a draining strap went quiet
    visits: int = 0  # connections that ended (each drained, released or lost)
    connected_s: float = 0.0  # time connected in all (the strap's radio-on time, roughly)
    setup_s: list[float] = field(default_factory=list)  # connect to resumed, last 500 visits
    visit_s: list[float] = field(default_factory=list)  # connect to disconnect, last 500
    last_error: str = ""
    errors: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.last_error = text
        self.errors.append(text)
        del self.errors[:-20]

    def setup_done(self, seconds: float) -> None:
        self.setup_s.append(seconds)
        del self.setup_s[:-500]

    def visit_done(self, seconds: float) -> None:
        self.visits += 1
        self.connected_s += seconds
        self.visit_s.append(seconds)
        del self.visit_s[:-500]


@dataclass(frozen=True)
class BleAccess:
    """How to reach the radio: bleak backends and their extra arguments (none on BlueZ), and
    `lost`, which resolves when the radio is gone (a bumble HCI transport closed: the dongle
    unplugged); None where the stack reports that by failing calls instead (BlueZ)."""

    scanner_backend: Any = None
    client_backend: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    lost: asyncio.Future[None] | None = None
    # the backend makes one link at a time itself (bumble's, around LE Create Connection), so
    # the scheduler need not hold its adapter lock over a whole set-up (security, GATT): the
    # set-ups of several straps overlap, and a controller makes more visits a second
    serialises_links: bool = False

    @classmethod
    def bluez(cls, adapter: str | None) -> BleAccess:
        """bleak on BlueZ, on the adapter of that name (None: BlueZ's default)."""
        return cls(kwargs={"bluez": {"adapter": adapter}} if adapter else {})

    def scanner_args(self) -> dict[str, Any]:
        return (
            {"backend": self.scanner_backend, **self.kwargs}
            if self.scanner_backend
            else dict(self.kwargs)
        )

    def client_args(self) -> dict[str, Any]:
        return (
            {"backend": self.client_backend, **self.kwargs}
            if self.client_backend
            else dict(self.kwargs)
        )


# a radio opened for each use, and opened again after it is lost (a bumble HCI transport)
OpenRadio = Callable[[], AbstractAsyncContextManager[BleAccess]]

OnBatch = Callable[[str, P.Measurement], Awaitable[None]]

# how a visit ended (`StrapLink.attempt`); REFUSED: the controller had no room for the link
DONE, ISOLATED, FAILED, REFUSED = "done", "isolated", "failed", "refused"


# how the stacks word a controller's refusal for want of room: HCI 0x09 Connection Limit
# Exceeded (NimBLE's and most controllers'), or 0x07 Memory Capacity Exceeded (Zephyr's), in
# bumble's HCI error names, and in BlueZ's D-Bus errors (the kernel maps 0x09 to EMLINK and 0x07
# to ENOMEM; bluetoothd words them as below, src/error.c)
_NO_ROOM = (
    "connection_limit_exceeded",
    "memory_capacity_exceeded",
    "le-connection-concurrent-connection-limit",
    "le-connection-memory-allocation",
)


def is_connection_limit(exc: BaseException) -> bool:
    """The controller refused the connection for want of room (Core spec Vol 1, Part F: 0x09,
    or 0x07 from Zephyr's controller), whichever stack says so."""
    text = str(exc).lower()
    return any(words in text for words in _NO_ROOM)


class StallError(BleakError):
    """A strap that stopped sending before it had handed over its backlog: it must not hold a
    connection slot that other straps are waiting for."""


class StrapLink:
    """One strap's visits: connect, secure, resume from the cursor, drain, let go or stay
    (see module docstring). `run` keeps the strap connected on an adapter of its own; a
    gateway with more straps than connection slots has its `Scheduler` call `attempt`."""

    def __init__(
        self,
        strap_id: str,
        cursors: CursorStore,
        on_batch: OnBatch,
        access: BleAccess | None = None,
        *,
        now: Callable[[], float] = time.time,
        elapsed: Callable[[], float] = time.monotonic,
        scan_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        stall_s: float = 5.0,
        backoff_s: tuple[float, float] = (1.0, 60.0),
        malformed_limit: int = 20,
        isolate_s: float = 300.0,
        adapter: asyncio.Lock | None = None,
        passkey: int | None = None,
        address: str | None = None,
        addresses: AddressBook | None = None,
    ) -> None:
        """`passkey`: the strap's label passkey, to pair the first time; `address`: where the
        strap must be (else pinned in `addresses` at its first bonded connection);
        `connect_timeout`: for the connection and its security; `stall_s`: a draining strap
        silent this long ends its visit."""
        self.strap_id = strap_id
        self.passkey = passkey
        self.address = address.upper() if address else None
        self.addresses = addresses
        self.cursors = cursors
        self.on_batch = on_batch
        self.access = access or BleAccess()
        self.now = now
        self.elapsed = elapsed
        self.scan_timeout = scan_timeout
        self.connect_timeout = connect_timeout
        self.stall_s = stall_s
        self.backoff_s = backoff_s
        self.malformed_limit = malformed_limit
        self.isolate_s = isolate_s
        # one adapter scans and sets up one connection at a time (`run`; the scheduler passes
        # each adapter's own lock to `attempt`)
        self.adapter = adapter or asyncio.Lock()
        self.stats = LinkStats()
        self.connected = asyncio.Event()  # set while connected and resumed
        self.reached = asyncio.Event()  # set at the first resume since start, never cleared
        self.drained = False  # connected, and the strap's backlog handed over
        self.caught_up_at: float | None = None  # `elapsed` when we last held all it had
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._malformed_run = 0

    # -- the loop of a strap alone on its adapter

    async def run(self, stop: asyncio.Event) -> None:
        """Find, connect, stream, reconnect, until `stop` is set. Never raises for BLE
        trouble; retries with exponential backoff and jitter."""
        delay = self.backoff_s[0]
        while not stop.is_set():
            outcome = await self.attempt(None, stop)
            if stop.is_set():
                break
            if outcome != FAILED:
                delay = self.isolate_s if outcome == ISOLATED else self.backoff_s[0]
            with contextlib.suppress(TimeoutError):  # backoff with jitter, cut short by stop
                await asyncio.wait_for(stop.wait(), timeout=delay * random.uniform(0.8, 1.2))
            if outcome == FAILED:
                delay = min(self.backoff_s[1], delay * 2)

    # -- one visit

    async def attempt(
        self,
        device: BLEDevice | None,
        stop: asyncio.Event,
        release: asyncio.Event | None = None,
        lock: asyncio.Lock | None = None,
        access: BleAccess | None = None,
    ) -> str:
        """One visit (`visit`), its failures counted and logged: DONE, ISOLATED or FAILED."""
        try:
            visit = self.visit(device, stop, release, lock, access)
            isolated = await self._until_stop(visit, stop)
            return ISOLATED if isolated else DONE
        except OutboxFull as exc:  # the strap keeps its samples; try again later
            self.stats.store_full += 1
            self.stats.note(f"outbox full: {exc}")
            log.warning("strap %s: %s; the strap keeps its samples", self.strap_id, exc)
        except LinkSecurityError as exc:
            self.stats.auth_failures += 1
            self.stats.note(f"not trusted: {exc}")
            log.error("strap %s: %s", self.strap_id, exc)
        except (TimeoutError, BleakError, OSError, EOFError, P.ProtocolError) as exc:
            if is_connection_limit(exc):
                log.info("strap %s: the controller is full (%s)", self.strap_id, exc)
                return REFUSED
            self.stats.connect_failures += 1
            self.stats.note(f"{type(exc).__name__}: {exc}")
            log.warning("strap %s: %s", self.strap_id, exc or type(exc).__name__)
        finally:
            self.connected.clear()
            self.drained = False
            self.cursors.flush()  # the visit's last cursor to disk, behind the outbox's sync
        return FAILED

    async def _until_stop(self, visit: Awaitable[bool], stop: asyncio.Event) -> bool:
        """A visit that a stop cuts short while it is still scanning, connecting or pairing
        (those can take seconds); once streaming, the visit itself sees the stop within
        0.2 s and first takes what the strap already sent."""
        session = asyncio.ensure_future(visit)
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((session, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not session.done() and not self.connected.is_set():
                session.cancel()
                try:
                    await session
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # we are being cancelled ourselves, not only the session
                return False
            return await session
        finally:
            stopped.cancel()
            if not session.done():  # we were cancelled ourselves: the session goes too
                session.cancel()

    def expected_address(self) -> str | None:
        if self.address:
            return self.address
        return self.addresses.get(self.strap_id) if self.addresses else None

    def is_ours(self, device: BLEDevice, adv: AdvertisementData) -> bool:
        """Is this advertisement this strap's: its name, the KMC service, its pinned address?"""
        expected = self.expected_address()
        return (
            P.KMC_SERVICE_UUID in adv.service_uuids
            and adv.local_name == self.strap_id
            and (expected is None or device.address.upper() == expected)
        )

    async def _find(self, access: BleAccess) -> BLEDevice | None:
        return await BleakScanner.find_device_by_filter(
            self.is_ours, timeout=self.scan_timeout, **access.scanner_args()
        )

    async def visit(
        self,
        device: BLEDevice | None,
        stop: asyncio.Event,
        release: asyncio.Event | None = None,
        lock: asyncio.Lock | None = None,
        access: BleAccess | None = None,
    ) -> bool:
        """One connection: connect (finding the strap first when `device` is None), secure,
        resume from the cursor, drain up to the newest sample the strap's Status names, then
        stream until `release` or `stop` is set or the link is lost. Returns True when the
        strap was isolated for misbehaving."""
        access = access or self.access
        lost = asyncio.Event()
        async with lock or self.adapter:  # scan and connect: one strap at a time per adapter
            began = self.elapsed()  # the visit's set-up: from here (not the wait for the lock)
            if device is None:
                device = await self._find(access)
                if device is None:
                    raise BleakError(
                        f"strap {self.strap_id} not found within {self.scan_timeout:g} s"
                    )
            client = BleakClient(
                device,
                disconnected_callback=lambda c: lost.set(),
                pair=True,  # a bond is used as it is; pairing only when there is none yet
                passkey=self.passkey,
                timeout=self.connect_timeout,
                **access.client_args(),
            )
            # the backend times the connection out itself (bleak's `timeout`): cancelling it
            # from here would leave the controller's connection request pending, and the link
            # it makes later would hold a slot nobody uses
            try:
                await client.connect()
            except BleakError as exc:
                if is_security_failure(exc) and not isinstance(exc, LinkSecurityError):
                    raise LinkSecurityError(str(exc)) from exc
                raise
            except TimeoutError:
                raise TimeoutError(
                    f"no connection to {device.address} within {self.connect_timeout:g} s"
                ) from None
        try:
            if self.addresses is not None and self.addresses.get(self.strap_id) is None:
                self.addresses.set(self.strap_id, device.address)  # bonded: pinned from now on
                log.info("strap %s: bonded at %s", self.strap_id, device.address)
            return await self._drain(client, lost, stop, release, began)
        finally:
            await client.disconnect()
            self.stats.visit_done(self.elapsed() - began)

    async def _drain(
        self,
        client: BleakClient,
        lost: asyncio.Event,
        stop: asyncio.Event,
        release: asyncio.Event | None,
        began: float,
    ) -> bool:
        self.stats.connections += 1
        self._malformed_run = 0
        while not self._queue.empty():  # a previous session's leftovers: resent after resume
            self._queue.get_nowait()
        await client.start_notify(P.MEASUREMENT_UUID, lambda c, d: self._queue.put_nowait(bytes(d)))
        status = P.decode_status(bytes(await client.read_gatt_char(P.STATUS_UUID)))
        off = status.device_time - self.now()
        if not status.health & P.HEALTH_CLOCK or abs(off) > CLOCK_TOLERANCE_S:
            # set only when unset or far off: a clock set at every visit would step back
            # and forth by a second, and two samples would share a time
            if status.health & P.HEALTH_CLOCK:
                self.stats.clock_resets += 1
                self.stats.note(f"strap clock off by {off:.0f} s, set again")
            await client.write_gatt_char(P.CONTROL_UUID, P.set_clock(self.now()), response=True)
        cursor = self.cursors.get(self.strap_id)
        await client.write_gatt_char(P.CONTROL_UUID, P.resume_from(cursor), response=True)
        # the newest sample the strap holds now; 0xFFFFFFFF: none yet
        target = status.oldest_seq if status.newest_seq == 0xFFFFFFFF else status.newest_seq + 1
        self.stats.setup_done(self.elapsed() - began)
        self.connected.set()
        self.reached.set()
        log.info("strap %s: connected, resuming from %d", self.strap_id, cursor)
        heard = self.elapsed()
        while not (stop.is_set() or lost.is_set()):
            if not self.drained and self.cursors.get(self.strap_id) >= target:
                self.drained = True
            if self.drained:
                self.caught_up_at = self.elapsed()
                if release is not None and release.is_set():
                    break
            try:
                data = await asyncio.wait_for(self._queue.get(), timeout=0.2)
            except TimeoutError:
                if not self.drained and self.elapsed() - heard > self.stall_s:
                    self.stats.stalls += 1
                    raise StallError(
                        f"strap {self.strap_id} sent nothing for {self.stall_s:g} s with "
                        f"samples {self.cursors.get(self.strap_id)}..{target - 1} still to come"
                    ) from None
                continue
            if data is None:
                continue
            before = self.cursors.get(self.strap_id)
            result = await self._take(data, client)
            if self.cursors.get(self.strap_id) > before:
                heard = self.elapsed()  # progress: replayed old samples do not count
            if result == "isolate":
                self.stats.isolations += 1
                log.error(
                    "strap %s: isolated after %d malformed packets",
                    self.strap_id,
                    self._malformed_run,
                )
                return True
        await self._flush_queue(client)
        if self.drained:
            self.caught_up_at = self.elapsed()
        return False

    async def _flush_queue(self, client: BleakClient) -> None:
        while not self._queue.empty():
            data = self._queue.get_nowait()
            if data is not None:
                await self._take(data, client)

    # -- one notification

    async def _take(self, data: bytes, client: BleakClient) -> str:
        try:
            batch = P.decode_measurement(data)
        except P.ProtocolError as exc:
            self.stats.malformed += 1
            self._malformed_run += 1
            self.stats.note(f"malformed packet: {exc}")
            log.warning("strap %s: %s", self.strap_id, exc)
            return "isolate" if self._malformed_run >= self.malformed_limit else "skip"
        self._malformed_run = 0
        cursor = self.cursors.get(self.strap_id)
        keep = batch.seq >= cursor
        if not keep.all():
            self.stats.duplicates += int((~keep).sum())
            if not keep.any():
                return "duplicate"
            batch = _select(batch, keep)
        first = int(batch.seq[0])
        if first > cursor:
            self.stats.missing += first - cursor
            self.stats.note(f"sequence jump {cursor} -> {first}: samples lost on the strap")
            log.warning("strap %s: sequence jump %d -> %d", self.strap_id, cursor, first)
        set_times = batch.time[batch.clock_set]
        # live (drained), the newest sample is "now" on the strap's clock; a backlog's is older
        if (
            self.drained
            and set_times.size
            and abs(float(set_times[-1]) - self.now()) > CLOCK_TOLERANCE_S
        ):
            self.stats.clock_resets += 1
            self.stats.note(
                f"strap clock off by {float(set_times[-1]) - self.now():.0f} s, set again"
            )
            await client.write_gatt_char(P.CONTROL_UUID, P.set_clock(self.now()), response=True)
        await self.on_batch(self.strap_id, batch)  # stored downstream before the cursor moves
        self.cursors.set(self.strap_id, int(batch.seq[-1]) + 1)
        self.stats.samples += len(batch)
        return "ok"


def _select(batch: P.Measurement, keep: np.ndarray) -> P.Measurement:
    return P.Measurement(
        **{name: getattr(batch, name)[keep] for name in batch.__dataclass_fields__}
    )
