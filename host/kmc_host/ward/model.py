"""The ward screen's model: beds, alerts and acknowledgements from the gateway's MQTT messages.

Pure logic, no I/O: `WardModel.on_message(topic, body, now)` folds in one message, and
`snapshot(now)` is what the page shows. Kept apart from the web server so the rules nurses rely
on (what is urgent, when an alert escalates, who acknowledged what) are tested without a browser.

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

import math
from dataclasses import dataclass, field
from typing import Any

from ..clinical import (
    BATTERY_LOW,
    COLD_STRESS,
    HYPERTHERMIA,
    MODERATE_HYPOTHERMIA,
    PRIORITIES,
    SEVERE_HYPOTHERMIA,
    SEVERITY_ORDER,
    SIGNAL_LOST,
    THERMAL,
    WHO_BANDS,
    alarm_of,
)
from ..mqtt import (
    ACTIVE,
    ENDED,
    AlertMessage,
    MessageError,
    SamplesMessage,
    SessionMessage,
    StateMessage,
    read,
)

ALERT_ORDER = SEVERITY_ORDER
_WHO = {b.kind: b.threshold_c for b in WHO_BANDS}
TRACE_BANDS = tuple(b for b in WHO_BANDS if b.kind != SEVERE_HYPOTHERMIA)  # 32 C: off the axis
NO_SIGNAL_S = 120.0  # no message from a strap for this long: "no signal" even before the alert


def band(temp: float | None) -> str:
    """The WHO band of a temperature, for the tile's colour and its text."""
    if temp is None or not math.isfinite(temp):
        return "none"
    if temp < _WHO[SEVERE_HYPOTHERMIA]:
        return "severe"
    if temp < _WHO[MODERATE_HYPOTHERMIA]:
        return "moderate"
    if temp < _WHO[COLD_STRESS]:
        return "cold"
    if temp > _WHO[HYPERTHERMIA]:
        return "hot"
    return "normal"


@dataclass
class Alert:
    id: str  # strap|kind|start: the episode's key (docs/mqtt.md)
    strap: str
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

    @property
    def thermal(self) -> bool:
        return self.kind in THERMAL

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
        }


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


class WardModel:
    def __init__(
        self, prefix: str = "kmc", escalate_after_s: float = 300.0, target_h: float = 18.0
    ):
        self.prefix = prefix
        self.escalate_after_s = escalate_after_s
        self.target_h = target_h
        self.beds: dict[str, Bed] = {}
        self.alerts: dict[str, Alert] = {}
        self.version = 0

    # -- MQTT in

    def on_message(self, topic: str, body: bytes, now: float) -> list[tuple[str, Alert]]:
        """Fold one message in; returns alert events for the audit log: (what, alert).
        MessageIgnored (with the MQTT contract's reason) for a message it cannot use."""
        try:
            received = read(topic, body, self.prefix)
        except MessageError as exc:
            raise MessageIgnored(str(exc)) from None
        if received is None:  # the gateway's own status
            return []
        origin, msg = received
        bed = self.beds.get(origin.strap)
        if bed is None:
            bed = self.beds[origin.strap] = Bed(origin.strap)
        bed.bed = msg.bed or bed.bed
        bed.infant = msg.infant or bed.infant
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
            return self._alert(msg, now)
        return []

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

    def _alert(self, msg: AlertMessage, now: float) -> list[tuple[str, Alert]]:
        key = f"{msg.strap}|{msg.kind}|{msg.start}"
        alert = self.alerts.get(key)
        events = []
        if alert is None:
            alert = self.alerts[key] = Alert(key, msg.strap, msg.kind, msg.start, received=now)
            events.append(("raised", alert))
        alert.given_priority = msg.priority
        if msg.extreme_c is not None:
            alert.extreme_c = _num(msg.extreme_c)
        if msg.state == ENDED and alert.state != ENDED:
            alert.state = ENDED
            alert.end = msg.end
            events.append(("ended", alert))
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
        return {
            "version": self.version,
            "now": now,
            "target_h": self.target_h,
            "tiles": tiles,
            "alerts": open_alerts,
        }

    def _tile(self, b: Bed, now: float) -> dict[str, Any]:
        active = [a for a in self.alerts.values() if a.strap == b.strap and a.state == ACTIVE]
        active.sort(key=lambda a: (a.acked_by is not None, a.rank))
        no_signal = now - b.updated > NO_SIGNAL_S or any(a.kind == SIGNAL_LOST for a in active)
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
            "band": band(b.infant_c) if state not in ("off", "no_signal") else "none",
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
            # the WHO bands' thresholds the trace is drawn against (kmc_host.clinical)
            "bands": [{"kind": w.kind, "threshold_c": w.threshold_c} for w in TRACE_BANDS],
            "sessions": [{"start": s, "end": e, "minutes": m} for s, e, m in b.sessions],
            "in_kmc_since": b.session_start if b.state == "kmc" else None,
            "alerts": history,
        }


def _num(v: float | None) -> float | None:
    """A reading as a float (JSON may carry it as an int); `read` has already refused anything
    that is not a finite number or null."""
    return None if v is None else float(v)


def _bed_key(bed: str) -> tuple[int, str]:
    return (int(bed), "") if bed.isdigit() else (10**9, bed)
