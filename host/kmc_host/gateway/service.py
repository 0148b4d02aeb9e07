"""The gateway service: strap links in, live detection, MQTT out.

The `Scheduler` gives every strap its turns on the adapters' connection slots; in a turn the
strap's `StrapLink` (BLE, resume, cursor) hands each batch to `_on_batch`, which publishes
the samples, feeds the strap's incremental `StrapDetector` and publishes what changed: sessions
that ended, alerts that started or ended, the strap's state (retained). Everything goes through
the publisher's on-disk outbox before the link moves its cursor, so a sample is never lost
between the strap and the broker. A watchdog raises `signal_lost` for a strap silent for 2 min,
counted from its last data or, after a (re)start, from the start: a strap that never comes back
is reported too, a strap heard advertising while it waits for its turn is not; an episode open at a restart is kept and ended with its start (silence.py).

Topics under `<prefix>/<site>/<ward>/<strap>/`: `samples`, `state` (retained), `session`,
`alert`; the gateway's own `.../gateway/status` (retained, with a last will), repeated every
`status_every_s` as a heartbeat with its radios and detector settings, and at once when a radio
stops or starts scanning, so the ward screen can tell a live gateway from a dead one and a dead
radio from a quiet ward. docs/mqtt.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import protocol as P
from ..clinical import SIGNAL_LOST, THERMAL
from ..detect import STATE_NAMES, StrapDetector, zone
from ..mqtt import (
    ACTIVE,
    ENDED,
    ONLINE,
    AdapterStatus,
    AlertMessage,
    DailyMessage,
    Ids,
    MqttPublisher,
    OutboxFull,
    SamplesMessage,
    SessionMessage,
    StateMessage,
    StatusMessage,
)
from ..samples import Samples
from ..timefmt import iso_utc
from .config import AdapterEntry, GatewayConfig, StrapEntry
from .link import AddressBook, BleAccess, CursorStore, OpenRadio, StrapLink
from .scheduler import Adapter, AdapterBook, Scheduler
from .silence import SilenceBook

log = logging.getLogger(__name__)

# how the gateway reaches its adapters: one access for all, or an access or opener per label
Radios = BleAccess | Mapping[str, BleAccess | OpenRadio]

SIGNAL_LOST_S = 120.0
FLUSH_S = 2.0  # a clean stop waits this long for the broker to acknowledge the outbox
ADAPTER_DOWN_AFTER_S = 20.0  # a radio not scanning this long is reported down (a reopen: 5 s)
SAVE_ARRIVALS_S = 60.0  # last arrivals go to disk at most this often (and at a clean stop)


def _num(values: np.ndarray, digits: int) -> list[float | None]:
    return [None if math.isnan(v) else round(v, digits) for v in values.tolist()]


def _access_for(radio: AdapterEntry, access: Radios | None) -> BleAccess | OpenRadio:
    """How to reach one adapter: the caller's (one access for all, or one access or opener by
    label), or bleak on BlueZ with that adapter's name."""
    if isinstance(access, BleAccess):
        return access
    if access is not None:
        return access[radio.label]
    return BleAccess.bluez(radio.name)


def _ids(entry: StrapEntry) -> Ids:
    """Who a message is about, in every per-strap message: strap, bed and infant pseudonym."""
    return Ids(strap=entry.id, bed=entry.bed, infant=entry.infant)


@dataclass
class StrapState:
    entry: StrapEntry
    detector: StrapDetector
    link: StrapLink
    last_arrival: float | None = None  # wall clock: the episode's start in messages
    arrived_at: float = 0.0  # monotonic clock: how long the strap has been silent
    saved_at: float = 0.0  # monotonic clock: when last_arrival was last written to disk
    active: set[str] = field(default_factory=set)
    lost_since: float | None = None  # start of the open signal_lost episode (its key), if any
    clock_unset: int = 0  # samples taken before any gateway set the strap clock
    daily_date: dt.date | None = None
    daily_sent: float = 0.0
    out_of_order: int = 0


class Gateway:
    def __init__(
        self,
        cfg: GatewayConfig,
        access: Radios | None = None,
        now: Callable[[], float] = time.time,
        scan_timeout: float = 10.0,
        elapsed: Callable[[], float] = time.monotonic,
        connect_timeout: float = 10.0,
    ) -> None:
        """`access`: how to reach the radio (one for every adapter, or one per adapter label,
        each an access or a way to open one: see `Adapter`; None: bleak on BlueZ); `now`:
        wall-clock time (strap clocks, message times);
        `elapsed`: a monotonic clock for silences and turns, so a host clock stepped by NTP
        neither raises nor hides `signal_lost`."""
        self.cfg = cfg
        self.now = now
        self.elapsed = elapsed
        self.tz = zone(cfg.timezone)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.addresses = AddressBook(cfg.data_dir / "strap_addresses.json")
        self.silences = SilenceBook(cfg.data_dir / "silences.json")
        self.started = now()  # a strap never heard from is silent since the gateway started
        self.publisher = MqttPublisher(
            cfg.broker,
            cfg.topics,
            cfg.data_dir / "outbox.db",
            reserve_mb=cfg.outbox_reserve_mb,
            status=self.status,
        )
        # a cursor on disk moves only past samples the outbox has made durable
        self.cursors = CursorStore(cfg.data_dir / "cursors.json", self.publisher.outbox.sync)
        self.straps: dict[str, StrapState] = {}
        self.adapters = [
            Adapter(radio.label, _access_for(radio, access), radio.max_connections)
            for radio in cfg.radios()
        ]
        # each radio's stop: (monotonic, wall clock) when it last stopped scanning, while it is
        # not; a gateway starting counts as stopped, so a radio that never opens is reported
        self._not_scanning: dict[str, tuple[float, float]] = {
            a.name: (elapsed(), now()) for a in self.adapters
        }
        for entry in cfg.straps:
            link = StrapLink(
                entry.id,
                self.cursors,
                self._on_batch,
                now=now,
                elapsed=elapsed,
                scan_timeout=scan_timeout,
                connect_timeout=connect_timeout,
                passkey=entry.passkey,
                address=entry.address,
                addresses=self.addresses,
            )
            st = StrapState(entry, StrapDetector(entry.id, cfg.detector), link)
            st.last_arrival, st.lost_since = self.silences.get(entry.id)  # as last run left them
            st.arrived_at = st.saved_at = elapsed()  # silence is timed from this start
            self.straps[entry.id] = st
        self.scheduler = Scheduler(
            {sid: st.link for sid, st in self.straps.items()},
            self.adapters,
            AdapterBook(cfg.data_dir / "strap_adapters.json"),
            max_age_s=cfg.max_age_s,
            thermal=lambda sid: bool(self.straps[sid].active & set(THERMAL)),
            elapsed=elapsed,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; then say offline and keep the outbox for next time."""
        self.publisher.start()
        try:
            await asyncio.gather(
                self.publisher.run(stop),
                self._watchdog(stop),
                self._heartbeat(stop),
                self.scheduler.run(stop),
            )
            # what the straps sent before the stop goes to the broker now, not at next start
            await self.publisher.flush(FLUSH_S)
        finally:
            self.publisher.stop()
            self._save_silences(*self.straps.values())

    # -- one batch from one strap

    async def _on_batch(self, strap_id: str, batch: P.Measurement) -> None:
        self.publisher.outbox.ensure_room()  # else OutboxFull: the batch stays on the strap
        st = self.straps[strap_id]
        st.last_arrival = self.now()
        st.arrived_at = self.elapsed()
        if st.arrived_at - st.saved_at >= SAVE_ARRIVALS_S:
            self._save_silences(st)
        self.publisher.send(
            SamplesMessage(
                **_ids(st.entry),
                seq=batch.seq.tolist(),
                time=batch.time.tolist(),
                infant_c=_num(batch.infant_c, 2),
                outer_c=_num(batch.outer_c, 2),
                contact=batch.contact.tolist(),
                worn=batch.worn.tolist(),
                battery_v=_num(batch.battery_v, 2),
                clock_set=batch.clock_set.tolist(),
            )
        )
        if st.lost_since is not None:
            self.publisher.send(
                AlertMessage(
                    **_ids(st.entry),
                    kind=SIGNAL_LOST,
                    state=ENDED,
                    start=iso_utc(st.lost_since),
                    end=iso_utc(st.last_arrival),
                )
            )
            st.lost_since = None
            self._save_silences(st)
        self._detect(st, batch)

    def _detect(self, st: StrapState, batch: P.Measurement) -> None:
        det = st.detector
        usable = batch.clock_set.copy()
        st.clock_unset += int((~usable).sum())  # published above, but no wall-clock time to judge
        last = det.last_time if not math.isnan(det.last_time) else -math.inf
        later = batch.time > last
        st.out_of_order += int((usable & ~later).sum())
        usable &= later
        if usable.any():
            t = batch.time[usable]
            # each kept sample later than every one before it in the batch (a clock set back
            # within a batch: a neighbour-only check let a later sample through that is still
            # earlier than one kept, and the detector refused the batch with an error)
            increasing = np.concatenate(([True], t[1:] > np.maximum.accumulate(t)[:-1]))
            keep = np.flatnonzero(usable)[increasing]
            st.out_of_order += int((~increasing).sum())
            update = det.feed(
                Samples(
                    batch.time[keep],
                    batch.infant_c[keep],
                    batch.outer_c[keep],
                    batch.contact[keep],
                    batch.worn[keep],
                    batch.battery_v[keep],
                )
            )
            for s, e in zip(
                update.session_start.tolist(), update.session_end.tolist(), strict=True
            ):
                self.publisher.send(
                    SessionMessage(
                        **_ids(st.entry),
                        start=iso_utc(s),
                        end=iso_utc(e),
                        duration_min=round((e - s) / 60, 1),
                        effective=(e - s) >= self.cfg.detector.effective_session_s,
                    )
                )
            for ep in update.episodes:
                for k in range(len(ep)):
                    self.publisher.send(
                        AlertMessage(
                            **_ids(st.entry),
                            kind=ep.kind,
                            state=ENDED,
                            start=iso_utc(float(ep.start[k])),
                            end=iso_utc(float(ep.end[k])),
                            extreme_c=None
                            if math.isnan(ep.extreme[k])
                            else round(float(ep.extreme[k]), 2),
                        )
                    )
        active = det.active_alerts()
        for kind in sorted(set(active) - st.active):
            start, extreme = active[kind]
            self.publisher.send(
                AlertMessage(
                    **_ids(st.entry),
                    kind=kind,
                    state=ACTIVE,
                    start=iso_utc(start),
                    extreme_c=None if math.isnan(extreme) else round(extreme, 2),
                    raised=iso_utc(self.now()),
                )
            )
        st.active = set(active)
        self.publisher.send(self._state(st, batch))
        self._daily(st)

    def _daily(self, st: StrapState, every_s: float = 60.0) -> None:
        """Today's hours so far (retained), at most once a minute per strap and at midnight."""
        now = self.now()
        local = dt.datetime.fromtimestamp(now, self.tz)
        if st.daily_date == local.date() and now - st.daily_sent < every_s:
            return
        if st.daily_date is not None and st.daily_date != local.date():  # the day that ended
            self._publish_day(st, st.daily_date)
        self._publish_day(st, local.date())
        st.daily_date, st.daily_sent = local.date(), now

    def _publish_day(self, st: StrapState, day: dt.date) -> None:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=self.tz)
        kmc_h, monitored_h = st.detector.hours_between(start.timestamp(), end.timestamp())
        self.publisher.send(
            DailyMessage(
                **_ids(st.entry),
                date=day.isoformat(),
                kmc_hours=round(kmc_h, 3),
                monitored_hours=round(monitored_h, 3),
            )
        )

    def _state(self, st: StrapState, batch: P.Measurement) -> StateMessage:
        det = st.detector
        now = self.now()
        midnight = dt.datetime.combine(
            dt.datetime.fromtimestamp(now, self.tz).date(), dt.time(0), tzinfo=self.tz
        ).timestamp()
        session = det.open_session()
        today_h, _ = det.hours_between(midnight, now + 1.0)
        return StateMessage(
            **_ids(st.entry),
            state=STATE_NAMES[det.state()],
            infant_c=_num(batch.infant_c[-1:], 2)[0],
            battery_v=_num(batch.battery_v[-1:], 2)[0],
            last_seq=int(batch.seq[-1]),
            time=float(batch.time[-1]),
            kmc_hours_today=round(today_h, 3),
            session_start=None if session is None else iso_utc(session[0]),
            alerts=sorted(st.active),
        )

    async def _watchdog(self, stop: asyncio.Event, period_s: float = 1.0) -> None:
        while not stop.is_set():
            now, elapsed = self.now(), self.elapsed()
            for st in self.straps.values():
                if (
                    st.lost_since is None
                    and elapsed - st.arrived_at > SIGNAL_LOST_S
                    and not self.scheduler.waiting_turn(st.entry.id)
                ):
                    try:
                        self.publisher.outbox.ensure_room()
                    except OutboxFull as exc:
                        log.warning("signal_lost for %s waits: %s", st.entry.id, exc)
                        continue
                    # silent since its last data, or since we started if never heard from
                    st.lost_since = st.last_arrival if st.last_arrival is not None else self.started
                    log.warning(
                        "strap %s: signal lost (%s)",
                        st.entry.id,
                        self.scheduler.describe(st.entry.id),
                    )
                    self.publisher.send(
                        AlertMessage(
                            **_ids(st.entry),
                            kind=SIGNAL_LOST,
                            state=ACTIVE,
                            start=iso_utc(st.lost_since),
                            raised=iso_utc(now),
                        )
                    )
                    self._save_silences(st)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period_s)

    # -- the gateway's own status

    def status(self) -> StatusMessage:
        """Online, now: each radio scanning or down since when (down once it has not scanned
        for ADAPTER_DOWN_AFTER_S), and the detector settings the alerts are raised with."""
        elapsed = self.elapsed()
        adapters = []
        for a in self.adapters:
            stopped = self._not_scanning.get(a.name)
            down = stopped is not None and elapsed - stopped[0] >= ADAPTER_DOWN_AFTER_S
            adapters.append(
                AdapterStatus(
                    name=a.name,
                    scanning=not down,
                    down_since=iso_utc(stopped[1]) if down and stopped else None,
                )
            )
        return StatusMessage(
            state=ONLINE,
            time=round(self.now(), 3),
            every_s=self.cfg.status_every_s,
            adapters=adapters,
            detector=self.cfg.detector.screen_settings(),
        )

    def _watch_radios(self) -> None:
        """Note when each radio stops and starts scanning (the status says how long)."""
        for a in self.adapters:
            if a.up:
                self._not_scanning.pop(a.name, None)
            elif a.name not in self._not_scanning:
                self._not_scanning[a.name] = (self.elapsed(), self.now())

    async def _heartbeat(self, stop: asyncio.Event, period_s: float = 1.0) -> None:
        """The status every `status_every_s`, and at once when a radio goes down or comes
        back (published straight to the broker while connected: see MqttPublisher)."""
        sent_at, sent_radios = self.elapsed(), None
        while not stop.is_set():
            self._watch_radios()
            radios = [(r["name"], r["scanning"]) for r in self.status().adapters or []]
            due = self.elapsed() - sent_at >= self.cfg.status_every_s
            if (due or radios != sent_radios) and self.publisher.publish_status():
                if radios != sent_radios and sent_radios is not None:
                    log.warning("radios scanning: %s", ", ".join(f"{n} {s}" for n, s in radios))
                sent_at, sent_radios = self.elapsed(), radios
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period_s)

    def _save_silences(self, *straps: StrapState) -> None:
        self.silences.save({st.entry.id: (st.last_arrival, st.lost_since) for st in straps})
        for st in straps:
            st.saved_at = self.elapsed()

    def stats(self) -> dict[str, Any]:
        return {
            sid: vars(st.link.stats)
            | {"clock_unset": st.clock_unset, "out_of_order": st.out_of_order}
            for sid, st in self.straps.items()
        }
