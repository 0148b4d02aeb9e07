"""The ward screen's model: beds, alerts and acknowledgements from the gateway's MQTT messages.

Pure logic, no I/O: `WardModel.on_message(topic, body, now)` folds in one message, `tick(now)`
lets time pass (escalations, the chain's alarms, the audio pause's end), and `snapshot(now)` is
what the page shows. Kept apart from the web server so the rules nurses rely on (what is urgent,
when an alert escalates, who acknowledged or paused what, when the chain counts as broken) are
tested without a browser.

The chain fails safe (docs/alarms.md, "Technical alarms of the chain"). Besides the gateway's
alerts, the model raises its own high-priority technical alarms: `broker_unreachable` when the
ward service has not reached the broker for BROKER_GRACE_S, `gateway_offline` when the
gateway's retained status says offline (a clean stop or its last will), `gateway_silent` when
nothing live has come from the gateway for `silent_after_s`, and `adapter_down` for each radio
the gateway's status says is not scanning. While the broker is unreachable or the gateway
offline or silent, every tile shows "no signal": a reading the chain cannot vouch for is not
shown as live. Retained messages (delivered again on every subscription) fill in the beds but do
not count as hearing from the gateway.

An audio pause (`pause_audio`) silences the page's alarm sound ward-wide for `pause_s`: the
banner and the lamps stay. A new alarm of a higher priority than any open when the pause began,
or any alarm of the chain, ends it at once, and every pause, resume and end goes to the audit
log.

Urgency, most urgent first (the order of the tiles):
  1. unacknowledged alerts by alarm priority (clinical.ALARMS, docs/alarms.md): high (severe,
     moderate hypothermia), medium (hyperthermia, cold stress, no signal), low (strap off,
     battery low); within a priority in SEVERITY_ORDER;
  2. the same, acknowledged;
  3. no alert: the fewest KMC hours today first (whose baby needs KMC most), then bed number.
High and medium alarms take the banner, highest priority first, and sound; low ones show on
their tile and sound once (alarm fatigue). An alert unacknowledged for `escalate_after_s`
escalates: a louder cue and the banner marked escalated.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from ..clinical import (
    ADAPTER_DOWN,
    BATTERY_LOW,
    BROKER_UNREACHABLE,
    CHAIN,
    COLD_STRESS,
    GATEWAY_OFFLINE,
    GATEWAY_SILENT,
    HYPERTHERMIA,
    MODERATE_HYPOTHERMIA,
    PRIORITIES,
    SEVERE_HYPOTHERMIA,
    SEVERITY_ORDER,
    SIGNAL_LOST,
    THERMAL,
    alarm_of,
)
from ..detect import DetectorConfig
from ..mqtt import (
    ACTIVE,
    ENDED,
    OFFLINE,
    AdapterStatus,
    AlertMessage,
    DetectorSettings,
    MessageError,
    SamplesMessage,
    SessionMessage,
    StateMessage,
    StatusMessage,
    read,
    read_status,
)
from ..timefmt import iso_utc

ALERT_ORDER = SEVERITY_ORDER
NO_SIGNAL_S = 120.0  # no message from a strap for this long: "no signal" even before the alert
BROKER_GRACE_S = 10.0  # the broker unreachable this long raises broker_unreachable
BROKEN = (BROKER_UNREACHABLE, GATEWAY_OFFLINE, GATEWAY_SILENT)  # no tile is live meanwhile,
# nor while every radio is down


def default_settings() -> DetectorSettings:
    """The detector's default settings, as a gateway's status would give them: what the
    screen uses until the gateway has said its own."""
    return DetectorConfig().screen_settings()


DEFAULTS = default_settings()


def band(temp: float | None, settings: DetectorSettings = DEFAULTS) -> str:
    """The band of a skin temperature as the gateway's detector sees it (`settings`: the
    offset added to the reading, and each band's threshold), for the tile's colour and text."""
    if temp is None or not math.isfinite(temp):
        return "none"
    value = temp + settings["axillary_offset_c"]
    limit = DEFAULTS["thresholds_c"] | settings["thresholds_c"]
    if value < limit[SEVERE_HYPOTHERMIA]:
        return "severe"
    if value < limit[MODERATE_HYPOTHERMIA]:
        return "moderate"
    if value < limit[COLD_STRESS]:
        return "cold"
    if value > limit[HYPERTHERMIA]:
        return "hot"
    return "normal"


def trace_lines(settings: DetectorSettings) -> list[dict[str, Any]]:
    """The bands' thresholds as lines on a bed's trace of skin readings: each at the reading
    that the detector, after adding the offset, finds at the threshold (severe hypothermia's
    32 C is left off the axis)."""
    offset = settings["axillary_offset_c"]
    limit = DEFAULTS["thresholds_c"] | settings["thresholds_c"]
    return [
        {"kind": kind, "threshold_c": round(limit[kind] - offset, 2)}
        for kind in (COLD_STRESS, MODERATE_HYPOTHERMIA, HYPERTHERMIA)
    ]


@dataclass
class Alert:
    id: str  # strap|kind|start: the episode's key (docs/mqtt.md); source|kind|start for the chain
    strap: str  # "" for an alarm of the chain
    kind: str
    start: str
    state: str = ACTIVE  # or ENDED
    extreme_c: float | None = None
    end: str | None = None
    received: float = 0.0  # when the ward service first heard of it (its clock)
    acked_by: str | None = None
    acked_at: float | None = None
    escalated: bool = False
    given_priority: str | None = None  # the gateway's, from the message
    source: str = ""  # an alarm of the chain: what failed ("broker", "gateway", "adapter hci0")

    @property
    def thermal(self) -> bool:
        return self.kind in THERMAL

    @property
    def chain(self) -> bool:
        return self.kind in CHAIN

    @property
    def priority(self) -> str:
        """The gateway's priority for it (a newer gateway's kind has one), else the kind's."""
        return self.given_priority or alarm_of(self.kind).priority

    @property
    def rank(self) -> tuple[int, int]:
        """Where it stands among alerts, most urgent first: priority, then kind."""
        kind = ALERT_ORDER.index(self.kind) if self.kind in ALERT_ORDER else len(ALERT_ORDER)
        return PRIORITIES.index(self.priority), kind

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strap": self.strap,
            "kind": self.kind,
            "start": self.start,
            "end": self.end,
            "state": self.state,
            "extreme_c": self.extreme_c,
            "received": self.received,
            "acked_by": self.acked_by,
            "acked_at": self.acked_at,
            "escalated": self.escalated,
            "thermal": self.thermal,
            "priority": self.priority,
            "technical": alarm_of(self.kind).technical,
            "chain": self.chain,
            "source": self.source,
        }


@dataclass
class AudioPause:
    """The ward's alarm sound paused by a nurse (`by`) from `since` to `until`; `priority`: the
    highest of the alarms open then (a higher one ends the pause), None if there were none."""

    by: str
    since: float
    until: float
    priority: str | None
    ended: str = ""  # why it ended: "expired", "resumed", "higher priority: <kind> <where>"

    def public(self) -> dict[str, Any]:
        return {"by": self.by, "since": self.since, "until": self.until, "priority": self.priority}


@dataclass
class GatewayView:
    """What the ward knows of its gateway: the last status (and when it came), and when
    anything last came from it live (not a retained copy)."""

    state: str | None = None  # online, offline; None: no status heard yet
    status_at: float | None = None
    status_time: float | None = None  # the gateway's clock in it
    every_s: float | None = None
    adapters: list[AdapterStatus] = field(default_factory=list)
    detector: DetectorSettings | None = None
    heard: float | None = None


@dataclass
class Bed:
    strap: str
    bed: str = ""
    infant: str = ""
    state: str = "gap"
    infant_c: float | None = None
    battery_v: float | None = None
    kmc_hours_today: float = 0.0
    session_start: str | None = None
    last_session_end: str | None = None
    updated: float = 0.0  # receipt time of the last message (ward service clock)
    sample_time: float | None = None  # the strap's time of its last sample
    trace: list[tuple[float, float | None, int]] = field(default_factory=list)  # minute, temp, kmc
    sessions: list[tuple[str, str, float]] = field(default_factory=list)  # start, end, minutes


class MessageIgnored(MessageError):
    """A message the ward screen cannot use (named, logged, counted; never a crash): one that
    breaks the MQTT contract, with the contract's reason."""


Event = tuple[str, "Alert | AudioPause"]  # what happened, to what: a line of the audit log


class WardModel:
    def __init__(
        self,
        prefix: str = "kmc",
        escalate_after_s: float = 300.0,
        target_h: float = 18.0,
        *,
        silent_after_s: float = 120.0,
        pause_s: float = 120.0,
        started: float | None = None,
    ):
        """`silent_after_s`: nothing live from the gateway this long raises gateway_silent;
        `pause_s`: an audio pause's length; `started`: when the service started, from which
        the broker counts as unreachable until connected (None: a model fed messages without
        a broker, as in tests of the beds, watches no chain)."""
        self.prefix = prefix
        self.escalate_after_s = escalate_after_s
        self.target_h = target_h
        self.silent_after_s = silent_after_s
        self.pause_s = pause_s
        self.beds: dict[str, Bed] = {}
        self.alerts: dict[str, Alert] = {}
        self.gateway = GatewayView()
        self.watch_chain = started is not None
        self.broker_down_since: float | None = started  # None while connected
        self.broker_up_since: float | None = None
        self.pause: AudioPause | None = None
        self.status_since_connect = False  # the gateway's status heard on this connection
        self.version = 0

    @property
    def settings(self) -> DetectorSettings:
        """The detector settings the gateway says it alerts with; the defaults until then."""
        return self.gateway.detector or DEFAULTS

    # -- MQTT in

    def on_message(
        self, topic: str, body: bytes, now: float, retained: bool = False
    ) -> list[Event]:
        """Fold one message in; returns events for the audit log: (what, alert or pause).
        `retained`: a stored copy the broker delivered on subscribing, not news from the
        gateway. MessageIgnored (with the MQTT contract's reason) for a message it cannot use."""
        try:
            status = read_status(topic, body, self.prefix)
            received = None if status is not None else read(topic, body, self.prefix)
        except MessageError as exc:
            raise MessageIgnored(str(exc)) from None
        if not retained:
            self.gateway.heard = now
        if status is not None:
            self._status(status, now)
            return self.chain(now)
        if received is None:  # another of the gateway's own topics
            return self.chain(now)
        origin, msg = received
        bed = self.beds.get(origin.strap)
        if bed is None:
            bed = self.beds[origin.strap] = Bed(origin.strap)
        bed.bed = msg.bed or bed.bed
        bed.infant = msg.infant or bed.infant
        if not retained:  # a stored copy fills the tile in, but only news makes it live
            bed.updated = now
        self.version += 1
        if isinstance(msg, StateMessage):
            bed.state = msg.state
            bed.infant_c = _num(msg.infant_c)
            bed.battery_v = _num(msg.battery_v)
            bed.kmc_hours_today = _num(msg.kmc_hours_today) or 0.0
            bed.session_start = msg.session_start
            bed.sample_time = _num(msg.time)
        elif isinstance(msg, SamplesMessage):
            self._trace(bed, msg)
        elif isinstance(msg, SessionMessage):
            bed.last_session_end = msg.end
            bed.sessions.append((msg.start, msg.end, float(msg.duration_min)))
            del bed.sessions[:-50]
        elif isinstance(msg, AlertMessage):
            if msg.kind in CHAIN:  # raised by the ward screen alone: never taken from outside
                raise MessageIgnored(f"{topic}: kind {msg.kind!r} is the ward screen's own")
            return self._alert(msg, now) + self.chain(now)
        return self.chain(now)

    def _status(self, msg: StatusMessage, now: float) -> None:
        gw = self.gateway
        gw.state, gw.status_at, gw.status_time = msg.state, now, msg.time
        self.status_since_connect = True
        if msg.state != OFFLINE:  # a last will says only that it is gone
            gw.every_s = msg.every_s
            gw.adapters = list(msg.adapters or [])
            gw.detector = msg.detector or gw.detector
        self.version += 1

    def _trace(self, bed: Bed, msg: SamplesMessage) -> None:
        """Per-minute points for the bed's 24 h trace: the last reading of each minute."""
        clock = [True] * len(msg.time) if msg.clock_set is None else msg.clock_set
        for k, t in enumerate(msg.time):
            if not clock[k]:
                continue  # no wall-clock time: the strap's clock was not set yet
            minute = math.floor(float(t) / 60.0) * 60.0
            kmc = int(msg.contact[k] == 1 and msg.worn[k] == 1)
            point = (minute, _num(msg.infant_c[k]), kmc)
            if bed.trace and bed.trace[-1][0] == minute:
                bed.trace[-1] = point
            elif not bed.trace or minute > bed.trace[-1][0]:
                bed.trace.append(point)
        cut = bed.trace[-1][0] - 86400.0 if bed.trace else 0.0
        while bed.trace and bed.trace[0][0] < cut:
            bed.trace.pop(0)

    def _alert(self, msg: AlertMessage, now: float) -> list[Event]:
        key = f"{msg.strap}|{msg.kind}|{msg.start}"
        alert = self.alerts.get(key)
        events: list[Event] = []
        if alert is None:
            alert = self.alerts[key] = Alert(
                key, msg.strap, msg.kind, msg.start, received=now, given_priority=msg.priority
            )
            events += self._raised(alert, now)
        alert.given_priority = msg.priority
        if msg.extreme_c is not None:
            alert.extreme_c = _num(msg.extreme_c)
        if msg.state == ENDED and alert.state != ENDED:
            alert.state = ENDED
            alert.end = msg.end
            events.append(("ended", alert))
        return events

    def _raised(self, alert: Alert, now: float) -> list[Event]:
        """A new alarm: for the audit log; it ends an audio pause if of a higher priority than
        any open when the pause began."""
        events: list[Event] = [("raised", alert)]
        p = self.pause
        if p is not None and (
            alert.chain  # the chain broken: every bed unwatched, whatever was paused
            or p.priority is None
            or PRIORITIES.index(alert.priority) < PRIORITIES.index(p.priority)
        ):
            where = alert.strap or alert.source
            why = "alarm of the chain" if alert.chain else "higher priority"
            events += self._end_pause(f"{why}: {alert.kind} {where}")
        return events

    # -- the chain's own alarms

    def broker_connected(self, now: float) -> list[Event]:
        self.broker_down_since, self.broker_up_since = None, now
        self.status_since_connect = False  # the retained status comes just after subscribing
        self.version += 1
        return self.chain(now)

    def broker_lost(self, now: float) -> list[Event]:
        if self.broker_down_since is None:
            self.broker_down_since, self.broker_up_since = now, None
            self.version += 1
        return self.chain(now)

    def chain(self, now: float) -> list[Event]:
        """Raise or end the chain's alarms for how things stand at `now` (module docstring).
        What cannot be known while the broker is unreachable (the gateway, its radios) is left
        as it was."""
        events: list[Event] = []
        if not self.watch_chain:
            return events
        down = self.broker_down_since
        if down is not None and now - down >= BROKER_GRACE_S:
            events += self._chain_raise(BROKER_UNREACHABLE, "broker", down, now)
        elif down is None:
            events += self._chain_end(BROKER_UNREACHABLE, "broker", now)
        if down is not None or self.broker_up_since is None:
            return events
        gw = self.gateway
        offline = gw.state == OFFLINE
        events += self._silence(now, offline)
        if not self.status_since_connect:
            return events  # after (re)connecting, the retained status tells before we judge
        if offline:
            since = gw.status_time if gw.status_time is not None else gw.status_at
            events += self._chain_raise(GATEWAY_OFFLINE, "gateway", since or now, now)
            return events  # its radios: not known while it is gone
        events += self._chain_end(GATEWAY_OFFLINE, "gateway", now)
        listed = set()
        for radio in gw.adapters:
            source = f"adapter {radio['name']}"
            if source in listed:
                continue  # a name given twice: the first says
            listed.add(source)
            if radio["scanning"]:
                events += self._chain_end(ADAPTER_DOWN, source, now)
            else:
                since = _seconds(radio["down_since"]) or now
                events += self._chain_raise(ADAPTER_DOWN, source, since, now)
        for a in list(self.alerts.values()):  # a radio no longer in the configuration
            if a.kind == ADAPTER_DOWN and a.state == ACTIVE and a.source not in listed:
                events += self._chain_end(ADAPTER_DOWN, a.source, now)
        return events

    def _silence(self, now: float, offline: bool) -> list[Event]:
        """gateway_silent: raised when nothing live has come from the gateway for
        `silent_after_s` (counted from the later of its last word and the broker connection);
        ended only by a live message heard after it was raised (a broker reconnect is not
        news from the gateway), or by the gateway's offline status, which says more."""
        gw = self.gateway
        open_ = self._open_chain(GATEWAY_SILENT, "gateway")
        if open_ is not None:
            if offline or (gw.heard is not None and gw.heard >= open_.received):
                return self._chain_end(GATEWAY_SILENT, "gateway", now)
            return []
        assert self.broker_up_since is not None
        heard = max(gw.heard or 0.0, self.broker_up_since)
        if offline or now - heard < self.silent_after_s:
            return []
        return self._chain_raise(GATEWAY_SILENT, "gateway", gw.heard or heard, now)

    def _open_chain(self, kind: str, source: str) -> Alert | None:
        return next(
            (
                a
                for a in self.alerts.values()
                if a.kind == kind and a.source == source and a.state == ACTIVE
            ),
            None,
        )

    def _chain_raise(self, kind: str, source: str, since: float, now: float) -> list[Event]:
        if self._open_chain(kind, source) is not None:
            return []
        start = iso_utc(since)
        alert = Alert(f"{source}|{kind}|{start}", "", kind, start, received=now, source=source)
        self.alerts[alert.id] = alert
        self.version += 1
        return self._raised(alert, now)

    def _chain_end(self, kind: str, source: str, now: float) -> list[Event]:
        alert = self._open_chain(kind, source)
        if alert is None:
            return []
        alert.state, alert.end = ENDED, iso_utc(now)
        self.version += 1
        return [("ended", alert)]

    def chain_broken(self) -> bool:
        """The broker unreachable, the gateway offline or silent, or every radio of the gateway
        down: nothing on the screen is live. (With some radios down, the beds on the others
        are; a bed whose radio is down goes "no signal" by its own silence.)"""
        if any(a.kind in BROKEN and a.state == ACTIVE for a in self.alerts.values()):
            return True
        radios = [a for a in self.alerts.values() if a.kind == ADAPTER_DOWN and a.state == ACTIVE]
        return bool(self.gateway.adapters) and len(radios) >= len(self.gateway.adapters)

    # -- time passing

    def tick(self, now: float) -> list[Event]:
        """Escalations, the chain's alarms, an audio pause that has run out: once a second."""
        events: list[Event] = [("escalated", a) for a in self.escalate(now)]
        events += self.chain(now)
        if self.pause is not None and now >= self.pause.until:
            events += self._end_pause("expired")
        return events

    # -- nurses

    def acknowledge(self, alert_id: str, initials: str, now: float) -> Alert:
        alert = self.alerts.get(alert_id)
        if alert is None:
            raise KeyError(f"no alert {alert_id!r}")
        if alert.acked_by is None:
            alert.acked_by, alert.acked_at = initials, now
            self.version += 1
        return alert

    def pause_audio(self, initials: str, now: float) -> list[Event]:
        """Pause the alarm sound ward-wide for `pause_s` (again: from now); the open alarms'
        highest priority is kept, so a higher one ends the pause."""
        open_ = [a for a in self.alerts.values() if a.state == ACTIVE and a.acked_by is None]
        top = min((a.priority for a in open_), key=PRIORITIES.index, default=None)
        self.pause = AudioPause(initials, now, now + self.pause_s, top)
        self.version += 1
        return [("audio_paused", self.pause)]

    def resume_audio(self, initials: str, now: float) -> list[Event]:
        if self.pause is None:
            return []
        self.pause.by = initials  # who resumed it, for the log line
        return self._end_pause("resumed")

    def _end_pause(self, why: str) -> list[Event]:
        pause, self.pause = self.pause, None
        if pause is None:
            return []
        pause.ended = why
        self.version += 1
        return [("audio_resumed" if why == "resumed" else "audio_pause_ended", pause)]

    def escalate(self, now: float) -> list[Alert]:
        """Alerts that have just passed `escalate_after_s` unacknowledged while active."""
        out = []
        for a in self.alerts.values():
            if (
                a.state == ACTIVE
                and a.acked_by is None
                and not a.escalated
                and now - a.received >= self.escalate_after_s
            ):
                a.escalated = True
                out.append(a)
        if out:
            self.version += 1
        return out

    # -- the page

    def snapshot(self, now: float) -> dict[str, Any]:
        tiles = [self._tile(b, now) for b in self.beds.values()]
        tiles.sort(key=lambda t: t["urgency"])
        open_alerts = [  # the most urgent first, and within a rank the newest
            a.public()
            for a in sorted(self.alerts.values(), key=lambda a: (a.rank, -a.received))
            if a.state == ACTIVE or (a.acked_by is None and now - a.received < 3600)
        ]
        gw = self.gateway
        return {
            "version": self.version,
            "now": now,
            "target_h": self.target_h,
            "tiles": tiles,
            "alerts": open_alerts,
            "chain_ok": not self.chain_broken(),
            "audio_pause": self.pause.public() if self.pause is not None else None,
            "gateway": {
                "state": gw.state,
                "heard": gw.heard,
                "adapters": gw.adapters,
                "detector": self.settings,
                "settings_from": "gateway" if gw.detector is not None else "defaults",
            },
        }

    def _tile(self, b: Bed, now: float) -> dict[str, Any]:
        active = [a for a in self.alerts.values() if a.strap == b.strap and a.state == ACTIVE]
        active.sort(key=lambda a: (a.acked_by is not None, a.rank))
        no_signal = (
            now - b.updated > NO_SIGNAL_S
            or any(a.kind == SIGNAL_LOST for a in active)
            or self.chain_broken()
        )
        state = "no_signal" if no_signal else b.state
        if active:
            a = active[0]
            urgency: tuple[Any, ...] = (0 if a.acked_by is None else 1, a.rank, _bed_key(b.bed))
        else:
            urgency = (2, b.kmc_hours_today, _bed_key(b.bed))
        return {
            "strap": b.strap,
            "bed": b.bed,
            "infant": b.infant,
            "state": state,
            "infant_c": b.infant_c,
            "band": band(b.infant_c, self.settings)
            if state not in ("off", "no_signal")
            else "none",
            "kmc_hours_today": round(b.kmc_hours_today, 2),
            "in_kmc_since": b.session_start if b.state == "kmc" else None,
            "last_session_end": b.last_session_end,
            "battery_v": b.battery_v,
            "battery_low": any(a.kind == BATTERY_LOW for a in active),
            # the most urgent unacknowledged alarm's priority, for the tile's signal
            "priority": next((a.priority for a in active if a.acked_by is None), None),
            "updated": b.updated,
            "alerts": [a.public() for a in active],
            "urgency": urgency,
        }

    def detail(self, strap: str) -> dict[str, Any]:
        b = self.beds.get(strap)
        if b is None:
            raise KeyError(strap)
        history = sorted(
            (a.public() for a in self.alerts.values() if a.strap == strap),
            key=lambda a: a["start"],
            reverse=True,
        )
        return {
            "strap": b.strap,
            "bed": b.bed,
            "infant": b.infant,
            "trace": [{"t": t, "c": c, "kmc": k} for t, c, k in b.trace],
            # the gateway's band thresholds, on the skin reading the trace shows
            "bands": trace_lines(self.settings),
            "sessions": [{"start": s, "end": e, "minutes": m} for s, e, m in b.sessions],
            "in_kmc_since": b.session_start if b.state == "kmc" else None,
            "alerts": history,
        }


def _num(v: float | None) -> float | None:
    """A reading as a float (JSON may carry it as an int); `read` has already refused anything
    that is not a finite number or null."""
    return None if v is None else float(v)


def _seconds(iso: str | None) -> float | None:
    return (
        None if iso is None else dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    )


def _bed_key(bed: str) -> tuple[int, str]:
    return (int(bed), "") if bed.isdigit() else (10**9, bed)
