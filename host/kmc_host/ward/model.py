"""The ward screen's model: beds, alerts and acknowledgements from the gateway's MQTT messages.

Pure logic, no I/O: `WardModel.on_message(topic, body, now)` folds in one message, and
`snapshot(now)` is what the page shows. Kept apart from the web server so the rules nurses rely
on (what is urgent, when an alert escalates, who acknowledged what) are tested without a browser.

Urgency, most urgent first (the order of the tiles):
  1. unacknowledged thermal alerts: severe hypothermia, moderate hypothermia, hyperthermia,
     cold stress; then unacknowledged device alerts: no signal, strap off, battery low;
  2. the same, acknowledged;
  3. no alert: the fewest KMC hours today first (whose baby needs KMC most), then bed number.
Only thermal alerts sound and take the banner: device alerts show on their tile (alarm fatigue).
An alert unacknowledged for `escalate_after_s` escalates: a louder cue and a red banner.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..clinical import (
    BATTERY_LOW,
    COLD_STRESS,
    HYPERTHERMIA,
    MODERATE_HYPOTHERMIA,
    SEVERE_HYPOTHERMIA,
    SEVERITY_ORDER,
    SIGNAL_LOST,
    THERMAL,
    WHO_BANDS,
)
from ..errors import BadInput

ALERT_ORDER = SEVERITY_ORDER
_WHO = {b.kind: b.threshold_c for b in WHO_BANDS}
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
    state: str = "active"  # active, ended
    extreme_c: float | None = None
    end: str | None = None
    received: float = 0.0  # when the ward service first heard of it (its clock)
    acked_by: str | None = None
    acked_at: float | None = None
    escalated: bool = False

    @property
    def thermal(self) -> bool:
        return self.kind in THERMAL

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


class MessageIgnored(BadInput):
    """A message the ward screen cannot use (named, logged, counted; never a crash)."""


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
        """Fold one message in; returns alert events for the audit log: (what, alert)."""
        parts = topic.split("/")
        if len(parts) != 5 or parts[0] != self.prefix:
            raise MessageIgnored(f"{topic}: not a {self.prefix}/<site>/<ward>/<strap>/<leaf> topic")
        strap, leaf = parts[3], parts[4]
        if strap == "gateway":
            return []
        try:
            msg = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MessageIgnored(f"{topic}: payload is not JSON: {exc}") from None
        if not isinstance(msg, dict) or msg.get("v") != 1:
            raise MessageIgnored(f"{topic}: not a schema version 1 object")
        bed = self.beds.get(strap)
        if bed is None:
            bed = self.beds[strap] = Bed(strap)
        bed.bed = str(msg.get("bed", bed.bed) or bed.bed)
        bed.infant = str(msg.get("infant", bed.infant) or bed.infant)
        bed.updated = now
        self.version += 1
        if leaf == "state":
            bed.state = str(msg.get("state", bed.state))
            bed.infant_c = _num(msg.get("infant_c"))
            bed.battery_v = _num(msg.get("battery_v"))
            bed.kmc_hours_today = _num(msg.get("kmc_hours_today")) or 0.0
            bed.session_start = msg.get("session_start")
            bed.sample_time = _num(msg.get("time"))
        elif leaf == "samples":
            self._trace(bed, msg)
        elif leaf == "session":
            end = str(msg.get("end", ""))
            bed.last_session_end = end
            bed.sessions.append(
                (str(msg.get("start", "")), end, _num(msg.get("duration_min")) or 0.0)
            )
            del bed.sessions[:-50]
        elif leaf == "alert":
            return self._alert(strap, msg, now)
        return []

    def _trace(self, bed: Bed, msg: dict[str, Any]) -> None:
        """Per-minute points for the bed's 24 h trace: the last reading of each minute."""
        times = msg.get("time")
        if not isinstance(times, list):
            raise MessageIgnored(f"samples from {bed.strap}: time should be a list")
        cols = {}
        for key in ("infant_c", "contact", "worn", "clock_set"):
            col = msg.get(key, [True] * len(times) if key == "clock_set" else None)
            if not isinstance(col, list) or len(col) != len(times):
                raise MessageIgnored(f"samples from {bed.strap}: {key} should be a list like time")
            cols[key] = col
        temps, contact, worn, clock = (
            cols[k] for k in ("infant_c", "contact", "worn", "clock_set")
        )
        for k, t in enumerate(times):
            if _num(t) is None or not clock[k]:
                continue  # no wall-clock time: the strap's clock was not set yet
            minute = math.floor(float(t) / 60.0) * 60.0
            kmc = int(contact[k] == 1 and worn[k] == 1)
            point = (minute, _num(temps[k]), kmc)
            if bed.trace and bed.trace[-1][0] == minute:
                bed.trace[-1] = point
            elif not bed.trace or minute > bed.trace[-1][0]:
                bed.trace.append(point)
        cut = bed.trace[-1][0] - 86400.0 if bed.trace else 0.0
        while bed.trace and bed.trace[0][0] < cut:
            bed.trace.pop(0)

    def _alert(self, strap: str, msg: dict[str, Any], now: float) -> list[tuple[str, Alert]]:
        kind, start, state = msg.get("kind"), msg.get("start"), msg.get("state")
        if (
            not isinstance(kind, str)
            or not isinstance(start, str)
            or state not in ("active", "ended")
        ):
            raise MessageIgnored(f"alert from {strap}: needs kind, start and state active/ended")
        key = f"{strap}|{kind}|{start}"
        alert = self.alerts.get(key)
        events = []
        if alert is None:
            alert = self.alerts[key] = Alert(key, strap, kind, start, received=now)
            events.append(("raised", alert))
        if msg.get("extreme_c") is not None:
            alert.extreme_c = _num(msg["extreme_c"])
        if state == "ended" and alert.state != "ended":
            alert.state = "ended"
            alert.end = msg.get("end")
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
                a.state == "active"
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
        open_alerts = [
            a.public()
            for a in sorted(self.alerts.values(), key=lambda a: a.received, reverse=True)
            if a.state == "active" or (a.acked_by is None and now - a.received < 3600)
        ]
        return {
            "version": self.version,
            "now": now,
            "target_h": self.target_h,
            "tiles": tiles,
            "alerts": open_alerts,
        }

    def _tile(self, b: Bed, now: float) -> dict[str, Any]:
        active = [a for a in self.alerts.values() if a.strap == b.strap and a.state == "active"]
        active.sort(
            key=lambda a: (
                a.acked_by is not None,
                ALERT_ORDER.index(a.kind) if a.kind in ALERT_ORDER else 99,
            )
        )
        no_signal = now - b.updated > NO_SIGNAL_S or any(a.kind == SIGNAL_LOST for a in active)
        state = "no_signal" if no_signal else b.state
        if active:
            a = active[0]
            rank = ALERT_ORDER.index(a.kind) if a.kind in ALERT_ORDER else len(ALERT_ORDER)
            urgency: tuple[Any, ...] = (0 if a.acked_by is None else 1, rank, _bed_key(b.bed))
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
            "sessions": [{"start": s, "end": e, "minutes": m} for s, e, m in b.sessions],
            "in_kmc_since": b.session_start if b.state == "kmc" else None,
            "alerts": history,
        }


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _bed_key(bed: str) -> tuple[int, str]:
    return (int(bed), "") if bed.isdigit() else (10**9, bed)
