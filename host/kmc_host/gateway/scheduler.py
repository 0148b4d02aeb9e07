"""The connection scheduler: every strap of a ward through a few connection slots.

A BLE controller holds a handful of connections (5-20; 7 is the gateway's default per adapter),
while a ward has up to 40 straps. A strap keeps 36 h of numbered samples, so it does not need a
permanent connection: the scheduler gives each strap turns. A turn (a visit, `StrapLink.attempt`)
connects, secures the link with the strap's bond, resumes from the cursor, drains the backlog,
and then stays connected, streaming live, until another strap needs the slot.

Between visits each adapter scans. A strap advertises a "visit me" flag in its scan response
(docs/protocol.md: its local alarm is on, or it was put on or taken off); such a strap is
visited first. Then straps whose data at the gateway is oldest, an open thermal episode counting
its age twice. A strap is due once its data is `max_age_s / 2` old (in the ward: 15 s), so that
its turn comes before `max_age_s`. A due strap that finds every slot taken has the longest-held
drained connection released for it (a strap with its alarm on is released last), so no strap
starves and none holds a slot past its turn. Straps that cannot be reached do not hold slots:
they are visited only when heard advertising, a connection attempt times out, a draining strap
that goes quiet ends its visit (`StallError`), and a failed strap backs off exponentially.

Several adapters: each has its own scanner, connect lock and slot count. A strap goes to the
adapter that hears it loudest, except that a strap is bonded to the adapter it paired through
(each adapter is its own BLE identity, and a strap keeps one gateway bond), so from its first
bonded visit it stays there (`strap_adapters.json`; delete its line to move it).

Timing uses the gateway's monotonic `elapsed` clock, so a host clock stepped by NTP changes no
turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from .. import protocol as P
from .jsonfile import read_map, write_map
from .link import DONE, FAILED, ISOLATED, REFUSED, BleAccess, OpenRadio, StrapLink

log = logging.getLogger(__name__)

HEARD_WITHIN_S = 10.0  # an advert older than this does not say the strap is in reach
SCAN_RETRY_S = 5.0  # an adapter whose scanner failed (unplugged) is tried again this often
REFUSALS_TO_FAIL = 5  # refused this often in a row (the controller full), a strap is failing
SLOTS_REGAIN_S = 300.0  # slots lowered by a refusal: one more is tried again this often
VISITS_END_S = 15.0  # a lost radio's visits end within this (a draining one at its stall)


@dataclass(frozen=True)
class Heard:
    """The last advert of a strap that one adapter heard."""

    device: BLEDevice
    rssi: int
    at: float  # elapsed clock
    visit_now: bool  # the strap's scan response asks for a visit (P.VISIT_NOW)


@dataclass
class Visit:
    strap: str
    started: float
    alarmed: bool = False  # started for VISIT_NOW (a connected strap does not advertise)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[str] | None = None


class Adapter:
    """One radio of the gateway: its bleak access, its scanner, a connect lock, its slots.

    `radio` is the access itself, or (a bumble HCI transport) a way to open it: the adapter
    then opens it for its scanner, and when it is lost (dongle unplugged) or cannot be opened
    (missing at start) ends its visits and opens it again every SCAN_RETRY_S, while the other
    adapters go on."""

    def __init__(self, name: str, radio: BleAccess | OpenRadio, slots: int) -> None:
        self.name = name
        self.opener = None if isinstance(radio, BleAccess) else radio
        self.access = radio if isinstance(radio, BleAccess) else BleAccess()
        self.slots = slots
        self.configured = slots  # what the configuration says; `slots` is what is used
        self.lowered_at = 0.0  # when a refusal (or the last regain) set `slots`
        self.lock = asyncio.Lock()  # one connection set up at a time on a controller
        self.visits: dict[str, Visit] = {}
        self.up = False  # scanning
        self.scan_failures = 0
        self.losses = 0  # times the radio was lost while in use

    def free(self) -> int:
        return self.slots - len(self.visits)

    def lower(self, held: int, now: float) -> None:
        """The controller refused a link with `held` up: use that many slots for now."""
        log.warning(
            "adapter %s refused a connection with %d up: using %d slots, not %d "
            "(set max_connections to what the controller holds)",
            self.name,
            len(self.visits),
            held,
            self.slots,
        )
        self.slots = held
        self.lowered_at = now

    def regain(self, now: float) -> None:
        """A refusal may have been passing (another central's link on a shared controller):
        every SLOTS_REGAIN_S one more slot is tried, up to the configured count; a controller
        that is still full refuses it, which costs one connection attempt."""
        if self.slots < self.configured and now - self.lowered_at >= SLOTS_REGAIN_S:
            self.slots += 1
            self.lowered_at = now
            log.info("adapter %s: trying %d slots again", self.name, self.slots)

    async def scan(
        self,
        stop: asyncio.Event,
        on_advert: Callable[[Adapter, BLEDevice, AdvertisementData], None],
    ) -> None:
        """Scan until `stop`; a scanner that fails (adapter unplugged, BlueZ restarted) is
        started again every SCAN_RETRY_S, and the adapter takes no new visit meanwhile."""
        while not stop.is_set():
            async with contextlib.AsyncExitStack() as opened:
                try:
                    if self.opener is not None:
                        self.access = await opened.enter_async_context(self.opener())
                    scanner = BleakScanner(
                        lambda d, a: on_advert(self, d, a), **self.access.scanner_args()
                    )
                    await scanner.start()
                except Exception as exc:  # noqa: BLE001 - bleak's, BlueZ's, bumble's HCI errors
                    self.up = False
                    self.scan_failures += 1
                    log.error(
                        "adapter %s: cannot scan (%s); retrying every %g s",
                        self.name,
                        exc or type(exc).__name__,
                        SCAN_RETRY_S,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), SCAN_RETRY_S)
                    continue
                self.up = True
                try:
                    await self._until_stop_or_lost(stop)
                finally:
                    self.up = False
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(scanner.stop(), 2.0)
                if not stop.is_set():  # lost: end its visits before the radio is closed
                    self.losses += 1
                    log.error("adapter %s: lost (unplugged?); reopening it", self.name)
                    await self._end_visits()

    async def _until_stop_or_lost(self, stop: asyncio.Event) -> None:
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if self.access.lost is not None:
            waits.append(asyncio.shield(self.access.lost))  # cancelling it spares the radio's
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _end_visits(self) -> None:
        """Release every visit of this adapter and wait for them (a drained one ends at once,
        a draining one at its stall timeout). A visit still running after VISITS_END_S is
        waiting on the dead radio: an HCI command sent after bumble's transport ended (a
        connection request's cancel, an encryption start) is never answered, and its visit
        would hold the strap (never visited again) and a slot for ever. It is cancelled: what
        the strap has not handed over stays on it for the next visit."""
        for visit in self.visits.values():
            visit.release.set()
        tasks = {v.task: v.strap for v in self.visits.values() if v.task is not None}
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=VISITS_END_S)
        for task in stuck:
            log.warning(
                "adapter %s: the visit of %s did not end within %g s of losing the radio; "
                "cancelled",
                self.name,
                tasks[task],
                VISITS_END_S,
            )
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=VISITS_END_S)


class AdapterBook:
    """The adapter each strap bonded through (strap id -> adapter name), one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: dict[str, str] = read_map(
            path, str, "strap adapter", "fix it or move it away (straps are pinned again)"
        )

    def get(self, strap: str) -> str | None:
        return self._names.get(strap)

    def set(self, strap: str, adapter: str) -> None:
        self._names[strap] = adapter
        write_map(self.path, self._names)


class Scheduler:
    """Gives every strap of `links` its turns on `adapters` (see module docstring)."""

    def __init__(
        self,
        links: Mapping[str, StrapLink],
        adapters: list[Adapter],
        pins: AdapterBook,
        *,
        max_age_s: float = 30.0,
        thermal: Callable[[str], bool] = lambda strap: False,
        elapsed: Callable[[], float],
        backoff_s: tuple[float, float] = (1.0, 60.0),
        isolate_s: float = 300.0,
    ) -> None:
        """`thermal(strap)`: is a thermal episode open for it (visited sooner)."""
        self.links = links
        self.adapters = adapters
        self.pins = pins
        self.max_age_s = max_age_s
        self.thermal = thermal
        self.elapsed = elapsed
        self.backoff_s = backoff_s
        self.isolate_s = isolate_s
        self.started = elapsed()
        self.heard: dict[str, dict[str, Heard]] = {sid: {} for sid in links}
        self.next_try: dict[str, float] = {}  # backing off until (elapsed clock)
        self.delay: dict[str, float] = {}
        self.failing: set[str] = set()  # last visit failed: not merely waiting its turn
        self.refusals: dict[str, int] = {}  # refusals for want of room since the last turn
        self.urgent_visits = 0  # visits started for a VISIT_NOW flag
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    # -- what a strap's data is worth now

    def age(self, strap: str) -> float:
        """How old the gateway's newest data of this strap is (0 while it streams live)."""
        link = self.links[strap]
        if link.drained:
            return 0.0
        since = link.caught_up_at if link.caught_up_at is not None else self.started
        return self.elapsed() - since

    def waiting_turn(self, strap: str) -> bool:
        """Silent only because others have the slots: its last visit did not fail, and it is
        heard advertising, or its visit is under way and has not handed over the backlog yet
        (a draining strap that goes quiet ends its visit as failed: `StallError`)."""
        if strap in self.failing:
            return False
        if self._visiting(strap):
            return not self.links[strap].drained
        return self._home(strap) is not None  # heard lately by an adapter it can be visited on

    def describe(self, strap: str) -> str:
        """What the scheduler knows of a strap, for the log line of a `signal_lost`."""
        now = self.elapsed()
        heard = ", ".join(f"{a} {now - h.at:.0f} s ago" for a, h in self.heard[strap].items())
        return (
            f"heard: {heard or 'not lately'}; visiting: {self._visiting(strap)}; "
            f"last visit failed: {strap in self.failing}; "
            f"last error: {self.links[strap].stats.last_error or 'none'}"
        )

    def _weight(self, strap: str) -> float:
        return self.age(strap) * (2.0 if self.thermal(strap) else 1.0)

    def _due(self, strap: str, heard: Heard) -> bool:
        return heard.visit_now or self._weight(strap) >= self.max_age_s / 2

    # -- the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Scan on every adapter and start visits until `stop`; then end every visit."""
        self._stop = stop
        scanners = [asyncio.create_task(a.scan(stop, self._on_advert)) for a in self.adapters]
        try:
            while not stop.is_set():
                self._schedule()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.25)
        finally:
            visits = [v.task for a in self.adapters for v in a.visits.values() if v.task]
            if not stop.is_set():  # cancelled without a stop: the visits go with us
                for visit in visits:
                    visit.cancel()
            await asyncio.gather(*visits, return_exceptions=True)
            for scanner in scanners:
                scanner.cancel()
            await asyncio.gather(*scanners, return_exceptions=True)

    def _on_advert(self, adapter: Adapter, device: BLEDevice, adv: AdvertisementData) -> None:
        """A scan report: remember which adapter heard which strap, how loud, and its flag."""
        strap = adv.local_name
        link = self.links.get(strap) if strap else None
        if link is None or not link.is_ours(device, adv):
            return
        status = P.advert_status(adv.service_data)
        visit_now = status is not None and bool(status & P.VISIT_NOW)
        rssi = adv.rssi if adv.rssi is not None else -127
        self.heard[link.strap_id][adapter.name] = Heard(device, rssi, self.elapsed(), visit_now)
        if visit_now and not self._visiting(link.strap_id):
            self._wake.set()

    def _visiting(self, strap: str) -> bool:
        return any(strap in a.visits for a in self.adapters)

    def _home(self, strap: str) -> tuple[Adapter, Heard] | None:
        """The adapter to visit this strap on now, with what it heard: its bonded adapter, or
        the one that hears it loudest; None when no adapter heard it lately."""
        now = self.elapsed()
        fresh = [
            (a, self.heard[strap][a.name])
            for a in self.adapters
            if a.up
            and a.name in self.heard[strap]
            and now - self.heard[strap][a.name].at <= HEARD_WITHIN_S
        ]
        pinned = self.pins.get(strap)
        if pinned is not None and any(a.name == pinned for a in self.adapters):
            fresh = [(a, h) for a, h in fresh if a.name == pinned]
        return max(fresh, key=lambda ah: ah[1].rssi) if fresh else None

    def _schedule(self) -> None:
        now = self.elapsed()
        waiting: dict[str, list[tuple[str, Heard]]] = {a.name: [] for a in self.adapters}
        for strap in self.links:
            if self._visiting(strap) or self.next_try.get(strap, 0.0) > now:
                continue
            home = self._home(strap)
            if home is not None:
                waiting[home[0].name].append((strap, home[1]))
        for adapter in self.adapters:
            adapter.regain(now)
            queue = sorted(
                waiting[adapter.name],
                key=lambda sh: (not sh[1].visit_now, -self._weight(sh[0]), sh[0]),
            )
            free = adapter.free()
            for strap, heard in queue[:free]:
                self._start(adapter, strap, heard)
            due = [s for s, h in queue[free:] if self._due(s, h)]
            releasing = sum(v.release.is_set() for v in adapter.visits.values())
            for visit in self._to_release(adapter, len(due) - releasing):
                visit.release.set()

    def _to_release(self, adapter: Adapter, n: int) -> list[Visit]:
        """The `n` drained connections to let go: held longest first, alarms last."""
        if n <= 0:
            return []
        held = [
            v
            for v in adapter.visits.values()
            if not v.release.is_set() and self.links[v.strap].drained
        ]

        def alarmed(v: Visit) -> bool:
            return v.alarmed or self.thermal(v.strap)

        held.sort(key=lambda v: (alarmed(v), v.started))
        return held[:n]

    def _start(self, adapter: Adapter, strap: str, heard: Heard) -> None:
        visit = Visit(strap, self.elapsed(), heard.visit_now)
        adapter.visits[strap] = visit
        self.heard[strap].clear()  # the next visit needs a fresh advert
        if heard.visit_now:
            self.urgent_visits += 1
        visit.task = asyncio.create_task(self._visit(adapter, visit, heard.device))

    async def _visit(self, adapter: Adapter, visit: Visit, device: BLEDevice) -> str:
        link = self.links[visit.strap]
        outcome = FAILED
        connections = link.stats.connections
        try:
            outcome = await link.attempt(
                device,
                self._stop,
                visit.release,
                None if adapter.access.serialises_links else adapter.lock,
                adapter.access,
            )
        except Exception:  # noqa: BLE001 - a visit's bug must not end the other straps' turns
            log.exception("strap %s: visit on %s failed", visit.strap, adapter.name)
        finally:
            adapter.visits.pop(visit.strap, None)
            # what was heard during the visit (the advert it connected on) says nothing of where
            # the strap is now: a strap carried out of range must not be tried on it
            self.heard[visit.strap].clear()
            if link.stats.connections > connections and self.pins.get(visit.strap) is None:
                self.pins.set(visit.strap, adapter.name)  # secured here: bonded through it
            self._after(adapter, visit.strap, outcome)
            self._wake.set()
        return outcome

    def _after(self, adapter: Adapter, strap: str, outcome: str) -> None:
        now = self.elapsed()
        if outcome == REFUSED:  # the adapter holds fewer links than configured: use what it holds
            held = max(1, len(adapter.visits))
            if held < adapter.slots:
                adapter.lower(held, now)
            self.next_try[strap] = now + self.backoff_s[0]  # the strap is not to blame
            self.refusals[strap] = self.refusals.get(strap, 0) + 1
            if self.refusals[strap] < REFUSALS_TO_FAIL:
                return
            outcome = FAILED  # refused again and again: no data gets through for it
        if outcome == DONE:
            self.failing.discard(strap)
            self.refusals.pop(strap, None)
            self.delay.pop(strap, None)
            self.next_try.pop(strap, None)
        elif outcome == ISOLATED:
            self.failing.add(strap)
            self.next_try[strap] = now + self.isolate_s
        else:
            self.failing.add(strap)
            delay = self.delay.get(strap, self.backoff_s[0])
            self.next_try[strap] = now + delay * random.uniform(0.8, 1.2)
            self.delay[strap] = min(self.backoff_s[1], delay * 2)
