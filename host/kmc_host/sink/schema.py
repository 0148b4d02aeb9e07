"""The InfluxDB schema: each gateway MQTT message (docs/mqtt.md) -> line-protocol points.

Pure functions, no I/O: the sink calls `to_lines` on every message it receives and the tests call
it on fixtures. Every point's timestamp and tags come from the message itself (never from the
time it arrived), so a replayed message lands on the same points and overwrites them instead of
adding rows. The schema is documented in docs/influxdb.md; keep the two in step.

Tags on every measurement: `site`, `ward` (from the topic), `strap`, `infant` (the pseudonym from
the gateway's configuration; left out when empty). Bed numbers are fields: a baby moving bed must
not split its series.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadInput
from .lineproto import Field, line, tag_set

SAMPLE = "kmc_sample"
SAMPLE_UNCLOCKED = "kmc_sample_unclocked"  # taken before any gateway set the strap's clock
STATE = "kmc_state"
SESSION = "kmc_session"
ALERT = "kmc_alert"
DAILY = "kmc_daily"
MEASUREMENTS = (SAMPLE, SAMPLE_UNCLOCKED, STATE, SESSION, ALERT, DAILY)
LEAVES = {"samples", "state", "session", "alert", "daily"}
SCHEMA_VERSION = 1
NS_PER_MS = 1_000_000  # points are written with nanosecond timestamps (precision=ns)
NS_PER_S = 1_000_000_000


class MessageError(BadInput):
    """A message the sink cannot store as it is; the text names the topic and the field."""


@dataclass(frozen=True)
class Origin:
    """Where a message came from, read off its topic `<prefix>/<site>/<ward>/<strap>/<leaf>`."""

    site: str
    ward: str
    strap: str
    leaf: str


def parse_topic(topic: str, prefix: str) -> Origin | None:
    """The message's origin; None for topics the sink does not store (gateway status)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != prefix:
        raise MessageError(f"{topic}: not a {prefix}/<site>/<ward>/<strap>/<leaf> topic")
    _, site, ward, strap, leaf = parts
    if strap == "gateway":
        return None
    if leaf not in LEAVES:
        raise MessageError(f"{topic}: unknown leaf {leaf!r} (expected one of {sorted(LEAVES)})")
    return Origin(site, ward, strap, leaf)


def to_lines(topic: str, body: bytes, prefix: str = "kmc") -> list[str]:
    """All points of one message, as line protocol (ns timestamps). Raises MessageError."""
    origin = parse_topic(topic, prefix)
    if origin is None:
        return []
    try:
        msg = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"{topic}: payload is not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise MessageError(f"{topic}: payload is not a JSON object")
    if msg.get("v") != SCHEMA_VERSION:
        raise MessageError(f"{topic}: schema version {msg.get('v')!r}, expected {SCHEMA_VERSION}")
    if msg.get("strap") != origin.strap:
        raise MessageError(
            f"{topic}: strap {msg.get('strap')!r} in the payload does not match the topic"
        )
    tags = {
        "site": origin.site,
        "ward": origin.ward,
        "strap": origin.strap,
        "infant": _text(msg, "infant", topic, ""),
    }
    convert = {
        "samples": _samples,
        "state": _state,
        "session": _session,
        "alert": _alert,
        "daily": _daily,
    }[origin.leaf]
    return convert(msg, tags, topic)


# -- field access with errors that name the field


def _text(msg: Mapping[str, Any], key: str, topic: str, default: str | None = None) -> str:
    value = msg.get(key, default)
    if not isinstance(value, str):
        raise MessageError(f"{topic}: {key} = {value!r} should be a string")
    return value


def _number(msg: Mapping[str, Any], key: str, topic: str, required: bool = False) -> float | None:
    value = msg.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MessageError(f"{topic}: {key} = {value!r} should be a number")
    return float(value)


def _time(msg: Mapping[str, Any], key: str, topic: str, required: bool = True) -> int | None:
    """An ISO 8601 UTC time (`2026-07-10T12:13:17Z`) as Unix seconds."""
    value = msg.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise MessageError(f"{topic}: {key} = {value!r} should be an ISO 8601 time")
    try:
        return calendar.timegm(time_struct(value))
    except ValueError:
        raise MessageError(f"{topic}: {key} = {value!r} is not an ISO 8601 UTC time") from None


def time_struct(text: str) -> tuple[int, ...]:
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    return parsed.astimezone(dt.UTC).timetuple()[:6]


def _array(msg: Mapping[str, Any], key: str, topic: str, n: int, nullable: bool) -> np.ndarray:
    value = msg.get(key)
    if not isinstance(value, list) or len(value) != n:
        raise MessageError(f"{topic}: {key} should be a list of {n} values like time")
    if not nullable and any(v is None for v in value):
        raise MessageError(f"{topic}: {key} has a null at index {value.index(None)}")
    if any(isinstance(v, bool | str | list | dict) for v in value):
        raise MessageError(f"{topic}: {key} holds a non-number")
    try:
        out = np.array(value, dtype=float)
    except (TypeError, ValueError):
        raise MessageError(f"{topic}: {key} holds a non-number") from None
    if np.isinf(out).any():
        raise MessageError(f"{topic}: {key} holds an infinite value")
    return out


# -- one converter per leaf


def _samples(msg: Mapping[str, Any], tags: dict[str, str], topic: str) -> list[str]:
    times = msg.get("time")
    if not isinstance(times, list) or not times:
        raise MessageError(f"{topic}: time should be a non-empty list")
    n = len(times)
    t = _array(msg, "time", topic, n, nullable=False)
    seq = _array(msg, "seq", topic, n, nullable=False)
    if (seq < 0).any() or (seq != np.floor(seq)).any():
        raise MessageError(f"{topic}: seq holds a value that is not a whole number >= 0")
    infant = _array(msg, "infant_c", topic, n, nullable=True)
    outer = _array(msg, "outer_c", topic, n, nullable=True)
    contact = _array(msg, "contact", topic, n, nullable=False)
    worn = _array(msg, "worn", topic, n, nullable=False)
    battery = (
        _array(msg, "battery_v", topic, n, nullable=True)
        if "battery_v" in msg
        else np.full(n, np.nan)
    )
    clocked = msg.get("clock_set", [True] * n)
    if not isinstance(clocked, list) or len(clocked) != n:
        raise MessageError(f"{topic}: clock_set should be a list of {n} booleans like time")
    for name, flags in (("contact", contact), ("worn", worn)):
        if not np.isin(flags, (0, 1)).all():
            raise MessageError(f"{topic}: {name} holds a value other than 0 or 1")
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
            "contact": int(contact[k]),
            "worn": int(worn[k]),
            "battery_v": float(battery[k]),
        }
        if clocked[k] is True:
            point = line(SAMPLE, head, fields, int(ns[k]))
        else:  # device time is seconds since boot in 2000: keyed by seq instead, kept apart
            fields["device_time"] = float(t[k])
            point = line(SAMPLE_UNCLOCKED, head, fields, int(seq[k]) * NS_PER_MS)
        if point is not None:
            out.append(point)
    return out


def _state(msg: Mapping[str, Any], tags: dict[str, str], topic: str) -> list[str]:
    t = _number(msg, "time", topic, required=True)
    assert t is not None
    state = _text(msg, "state", topic)
    if state not in ("kmc", "worn", "off", "gap"):
        raise MessageError(f"{topic}: state {state!r} is not kmc, worn, off or gap")
    alerts = msg.get("alerts", [])
    if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
        raise MessageError(f"{topic}: alerts should be a list of alert kinds")
    last_seq = msg.get("last_seq")
    if isinstance(last_seq, bool) or not isinstance(last_seq, int):
        raise MessageError(f"{topic}: last_seq = {last_seq!r} should be an integer")
    fields: dict[str, Field | None] = {
        "state": state,
        "infant_c": _number(msg, "infant_c", topic),
        "battery_v": _number(msg, "battery_v", topic),
        "kmc_hours_today": _number(msg, "kmc_hours_today", topic),
        "last_seq": last_seq,
        "alerts": ",".join(alerts),
        "bed": _text(msg, "bed", topic, ""),
    }
    return _one(line(STATE, tags, fields, round(t * 1000) * NS_PER_MS))


def _session(msg: Mapping[str, Any], tags: dict[str, str], topic: str) -> list[str]:
    start = _time(msg, "start", topic)
    end = _time(msg, "end", topic)
    assert start is not None and end is not None
    if end < start:
        raise MessageError(f"{topic}: session ends before it starts")
    fields: dict[str, Field | None] = {
        "end_time": end,
        "duration_min": _number(msg, "duration_min", topic, required=True),
        "effective": bool(msg.get("effective", False)),
        "bed": _text(msg, "bed", topic, ""),
    }
    return _one(line(SESSION, tags, fields, start * NS_PER_S))


def _alert(msg: Mapping[str, Any], tags: dict[str, str], topic: str) -> list[str]:
    start = _time(msg, "start", topic)
    assert start is not None
    state = _text(msg, "state", topic)
    if state not in ("active", "ended"):
        raise MessageError(f"{topic}: alert state {state!r} is not active or ended")
    kind = _text(msg, "kind", topic)
    if not kind or not kind.replace("_", "").isalnum():
        raise MessageError(f"{topic}: alert kind {kind!r} is not a word")
    end = _time(msg, "end", topic, required=state == "ended")
    fields: dict[str, Field | None] = {
        "state": state,
        "extreme_c": _number(msg, "extreme_c", topic),
        "bed": _text(msg, "bed", topic, ""),
    }
    if end is not None:
        fields["end_time"] = end
        fields["duration_min"] = round((end - start) / 60, 2)
    raised = _time(msg, "raised", topic, required=False)
    if raised is not None:
        fields["raised_time"] = raised
    return _one(line(ALERT, tags | {"kind": kind}, fields, start * NS_PER_S))


def _daily(msg: Mapping[str, Any], tags: dict[str, str], topic: str) -> list[str]:
    date = _text(msg, "date", topic)
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise MessageError(f"{topic}: date {date!r} is not YYYY-MM-DD") from None
    fields: dict[str, Field | None] = {
        "kmc_hours": _number(msg, "kmc_hours", topic, required=True),
        "monitored_hours": _number(msg, "monitored_hours", topic, required=True),
        "date": date,
    }
    midnight = calendar.timegm(day.timetuple())  # the date at 00:00 UTC: one point per day
    return _one(line(DAILY, tags, fields, midnight * NS_PER_S))


def _one(point: str | None) -> list[str]:
    return [] if point is None else [point]
