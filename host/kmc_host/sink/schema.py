"""The InfluxDB schema: each gateway MQTT message (docs/mqtt.md) -> line-protocol points.

Pure functions, no I/O: the sink calls `to_lines` on every message it receives and the tests call
it on fixtures. The message is read and checked by the MQTT contract (`kmc_host.mqtt.read`); this
module maps its typed fields to points. Every point's timestamp and tags come from the message
itself (never from the time it arrived), so a replayed message lands on the same points and
overwrites them instead of adding rows. The schema is documented in docs/influxdb.md; keep the two in step.

Tags on every measurement: `site`, `ward` (from the topic), `strap`, `infant` (the pseudonym from
the gateway's configuration; left out when empty). Bed numbers are fields: a baby moving bed must
not split its series.
"""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np

from ..mqtt import (
    AlertMessage,
    DailyMessage,
    MessageError,
    SamplesMessage,
    SessionMessage,
    StateMessage,
    iso_seconds,
    read,
)
from .lineproto import Field, line, tag_set

__all__ = ["MEASUREMENTS", "MessageError", "to_lines"]

SAMPLE = "kmc_sample"
SAMPLE_UNCLOCKED = "kmc_sample_unclocked"  # taken before any gateway set the strap's clock
STATE = "kmc_state"
SESSION = "kmc_session"
ALERT = "kmc_alert"
DAILY = "kmc_daily"
MEASUREMENTS = (SAMPLE, SAMPLE_UNCLOCKED, STATE, SESSION, ALERT, DAILY)
NS_PER_MS = 1_000_000  # points are written with nanosecond timestamps (precision=ns)
NS_PER_S = 1_000_000_000


def to_lines(topic: str, body: bytes, prefix: str = "kmc") -> list[str]:
    """All points of one message, as line protocol (ns timestamps). Raises MessageError (the
    MQTT contract's: the message is checked by `kmc_host.mqtt.read`)."""
    received = read(topic, body, prefix)
    if received is None:  # the gateway's status: not stored
        return []
    origin, msg = received
    tags = {"site": origin.site, "ward": origin.ward, "strap": origin.strap, "infant": msg.infant}
    if isinstance(msg, SamplesMessage):
        return _samples(msg, tags)
    if isinstance(msg, StateMessage):
        return _state(msg, tags)
    if isinstance(msg, SessionMessage):
        return _session(msg, tags)
    if isinstance(msg, AlertMessage):
        return _alert(msg, tags)
    assert isinstance(msg, DailyMessage)
    return _daily(msg, tags)


# -- one converter per leaf


def _samples(msg: SamplesMessage, tags: dict[str, str]) -> list[str]:
    n = len(msg.time)
    t = np.array(msg.time, dtype=float)
    seq = np.array(msg.seq, dtype=float)
    infant = np.array(msg.infant_c, dtype=float)  # a null reading is NaN: no field
    outer = np.array(msg.outer_c, dtype=float)
    battery = np.full(n, np.nan) if msg.battery_v is None else np.array(msg.battery_v, float)
    clocked = [True] * n if msg.clock_set is None else msg.clock_set
    head = tag_set(tags)
    # ns timestamps: the sample's millisecond, plus its sequence number in the nanoseconds, so two
    # samples of one strap never share a point even if its clock repeats times (a host clock
    # stepped back); deterministic, so a replay still overwrites the same point
    ns = np.round(t * 1000).astype(np.int64) * NS_PER_MS + (seq.astype(np.int64) % NS_PER_MS)
    out = []
    for k in range(n):
        fields: dict[str, Field | None] = {
            "seq": int(seq[k]),
            "infant_c": float(infant[k]),
            "outer_c": float(outer[k]),
            "contact": msg.contact[k],
            "worn": msg.worn[k],
            "battery_v": float(battery[k]),
        }
        if clocked[k]:
            point = line(SAMPLE, head, fields, int(ns[k]))
        else:  # device time is seconds since boot in 2000: keyed by seq instead, kept apart
            fields["device_time"] = float(t[k])
            point = line(SAMPLE_UNCLOCKED, head, fields, int(seq[k]) * NS_PER_MS)
        if point is not None:
            out.append(point)
    return out


def _state(msg: StateMessage, tags: dict[str, str]) -> list[str]:
    fields: dict[str, Field | None] = {
        "state": msg.state,
        "infant_c": _float(msg.infant_c),
        "battery_v": _float(msg.battery_v),
        "kmc_hours_today": _float(msg.kmc_hours_today),
        "last_seq": msg.last_seq,
        "alerts": ",".join(msg.alerts),
        "bed": msg.bed,
    }
    return _one(line(STATE, tags, fields, round(msg.time * 1000) * NS_PER_MS))


def _session(msg: SessionMessage, tags: dict[str, str]) -> list[str]:
    fields: dict[str, Field | None] = {
        "end_time": iso_seconds(msg.end),
        "duration_min": float(msg.duration_min),
        "effective": msg.effective,
        "bed": msg.bed,
    }
    return _one(line(SESSION, tags, fields, iso_seconds(msg.start) * NS_PER_S))


def _alert(msg: AlertMessage, tags: dict[str, str]) -> list[str]:
    start = iso_seconds(msg.start)
    fields: dict[str, Field | None] = {
        "state": msg.state,
        "extreme_c": _float(msg.extreme_c),
        "bed": msg.bed,
    }
    if msg.end is not None:
        end = iso_seconds(msg.end)
        fields["end_time"] = end
        fields["duration_min"] = round((end - start) / 60, 2)
    if msg.raised is not None:
        fields["raised_time"] = iso_seconds(msg.raised)
    return _one(line(ALERT, tags | {"kind": msg.kind}, fields, start * NS_PER_S))


def _daily(msg: DailyMessage, tags: dict[str, str]) -> list[str]:
    fields: dict[str, Field | None] = {
        "kmc_hours": float(msg.kmc_hours),
        "monitored_hours": float(msg.monitored_hours),
        "date": msg.date,
    }
    midnight = calendar.timegm(dt.date.fromisoformat(msg.date).timetuple())  # one point per day
    return _one(line(DAILY, tags, fields, midnight * NS_PER_S))


def _float(value: float | None) -> float | None:
    """Numbers are stored as floats (an integer in the message must not make an integer field)."""
    return None if value is None else float(value)


def _one(point: str | None) -> list[str]:
    return [] if point is None else [point]
