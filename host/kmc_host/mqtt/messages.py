"""Every MQTT payload, defined once: the schema version, each leaf's fields, encoding, parsing.

One frozen dataclass per leaf (docs/mqtt.md; the JSON Schema of each in `schemas/`):
`StatusMessage` (the gateway's own, retained) and, per strap, `SamplesMessage`, `StateMessage`
(retained), `AlertMessage`, `SessionMessage` and `DailyMessage` (retained). The gateway builds them and publishes `encode()`; the sink and the
ward screen call `read(topic, body, prefix)` (or `SamplesMessage.parse(body, topic)` ...) and get
the typed message, or a `MessageError` that names the topic and the field.

The wire form, which must not change within a schema version: compact JSON (no spaces after `,`
and `:`), `"v"` first, then the fields in the order they are declared here; never NaN or
Infinity. A field that is None is written as null, except the `OMITTED` ones, which are then left
out (an active alert has no `end`, an ended one no `raised`). Values are written as given: the
gateway rounds them (temperatures to 0.01 C, hours to 0.001 h), the types do not.

Reading enforces what the sink always enforced, now for every reader: the version, the strap in
the payload matching the topic, each field's type, the samples' columns as long as `time`, 0/1
flags, ISO 8601 times with a zone, an ended alert's `end`. Fields a reader does not know are
ignored. The JSON Schemas are what the gateway writes, and stricter (`schema`); every message
valid under its schema is read.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import sys
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self, TypedDict

from ..clinical import PRIORITIES, SIGNAL_LOST, alarm_of
from ..detect import STATE_GAP, STATE_KMC, STATE_NAMES, STATE_OFF, STATE_WORN
from ..errors import BadInput
from .topics import ALERT, DAILY, GATEWAY, SAMPLES, SESSION, STATE, STATUS, STRAP_LEAVES

__all__ = [
    "ACTIVE",
    "ENDED",
    "MESSAGE_TYPES",
    "OFFLINE",
    "ONLINE",
    "SCHEMA_VERSION",
    "SINK_STATES",
    "STATES",
    "SinkStatusMessage",
    "AdapterStatus",
    "AlertMessage",
    "DetectorSettings",
    "DailyMessage",
    "Ids",
    "Message",
    "MessageError",
    "Origin",
    "SamplesMessage",
    "SessionMessage",
    "StateMessage",
    "StatusMessage",
    "StrapMessage",
    "iso_seconds",
    "parse_topic",
    "read",
    "read_status",
]

SCHEMA_VERSION = 1
ONLINE, OFFLINE = "online", "offline"  # StatusMessage.state
ACTIVE, ENDED = "active", "ended"  # AlertMessage.state
STATES = tuple(
    STATE_NAMES[s] for s in (STATE_KMC, STATE_WORN, STATE_OFF, STATE_GAP)
)  # StateMessage.state
OMITTED = {"omitted": True}  # field metadata: left out of the payload when None


class MessageError(BadInput):
    """A received message that breaks the contract; the text names the topic and the field."""


def payload(**fields: Any) -> bytes:
    """A message body: compact JSON, the schema version first (what every `encode` writes)."""
    return json.dumps(
        {"v": SCHEMA_VERSION, **fields}, separators=(",", ":"), allow_nan=False
    ).encode()


def iso_seconds(text: str) -> int:
    """An ISO 8601 time with a zone (`2026-07-10T12:13:17Z`) as Unix seconds; ValueError if not."""
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("no time zone")
    try:
        return calendar.timegm(parsed.astimezone(dt.UTC).timetuple()[:6])
    except OverflowError:  # year 1 with a positive offset: before the first UTC day
        raise ValueError("out of range") from None


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON number")


def _finite(value: int | float) -> bool:
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= sys.float_info.max


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _unicode(f: _Fields, key: str, value: str) -> None:
    """A string JSON can carry but UTF-8 cannot (a lone surrogate, `"\\ud800"`): refused here,
    naming the field, rather than failing whoever writes it on (the sink's line protocol)."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise f.error(
            f"{key} holds {bad!r} at index {exc.start}, a lone surrogate: not Unicode text"
        ) from None


_NUMBER_TYPES = frozenset((int, float))
_NULLABLE_TYPES = frozenset((int, float, type(None)))


def _plain_numbers(values: list[Any], nullable: bool) -> bool:
    """True when every item is an int or a float (or None, if `nullable`) and every number is
    finite: what `_Fields.column` accepts, decided with C-level passes (a set of types, min, max,
    fsum) instead of a Python call per item. False means only "look closer": the item-by-item
    checks then accept the list or name what is wrong with it."""
    kinds = set(map(type, values))
    if not kinds <= (_NULLABLE_TYPES if nullable else _NUMBER_TYPES):
        return False
    numbers = [v for v in values if v is not None] if type(None) in kinds else values
    if not numbers:
        return True
    big = sys.float_info.max
    if not (-big <= min(numbers) and max(numbers) <= big):  # infinities (a NaN may hide here)
        return False
    if float not in kinds:
        return True
    try:
        return not math.isnan(math.fsum(numbers))  # NaN if any item is NaN
    except OverflowError:  # finite items whose sum overflows: let the item checks decide
        return False


class _Fields:
    """A decoded payload, read field by field with errors that name the topic and the field."""

    def __init__(self, body: bytes, topic: str) -> None:
        self.topic = topic
        try:
            msg = json.loads(body, parse_constant=_not_json)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
            raise self.error(f"payload is not JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise self.error("payload is not a JSON object")
        if msg.get("v") != SCHEMA_VERSION:
            raise self.error(
                f"schema version {msg.get('v')!r}, expected schema version {SCHEMA_VERSION}"
            )
        self.msg: dict[str, Any] = msg

    @classmethod
    def of(cls, msg: dict[str, Any], topic: str) -> _Fields:
        """An object nested in a payload, read with the same checks; errors name `topic`
        (the payload's topic and the path to the object)."""
        nested = cls.__new__(cls)
        nested.topic, nested.msg = topic, msg
        return nested

    def error(self, text: str) -> MessageError:
        return MessageError(f"{self.topic}: {text}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.msg.get(key, default)
        if not isinstance(value, str):
            raise self.error(f"{key} = {value!r} should be a string")
        if not value.isascii():
            _unicode(self, key, value)
        return value

    def number(self, key: str, required: bool = False) -> float | None:
        value: Any = self.msg.get(key)
        if value is None and not required:
            return None
        if not _is_number(value) or not _finite(value):
            raise self.error(f"{key} = {value!r} should be a number")
        return value

    def required_number(self, key: str) -> float:
        value = self.number(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str) -> int:
        value = self.msg.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"{key} = {value!r} should be an integer")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.msg.get(key, default)
        if not isinstance(value, bool):
            raise self.error(f"{key} = {value!r} should be true or false")
        return value

    def time(self, key: str) -> str:
        """An ISO 8601 time with a zone, kept as written (`iso_seconds` reads it)."""
        value = self.msg.get(key)
        if not isinstance(value, str):
            raise self.error(f"{key} = {value!r} should be an ISO 8601 time")
        try:
            iso_seconds(value)
        except ValueError:
            raise self.error(f"{key} = {value!r} is not an ISO 8601 UTC time") from None
        return value

    def optional_time(self, key: str) -> str | None:
        return None if self.msg.get(key) is None else self.time(key)

    def column(self, key: str, n: int, nullable: bool = False) -> list[Any]:
        """A list of n numbers (nulls where `nullable`), as long as `time`."""
        value = self.msg.get(key)
        if not isinstance(value, list) or len(value) != n:
            raise self.error(f"{key} should be a list of {n} values like time")
        if _plain_numbers(value, nullable):
            return value  # the common case, checked in C; anything else is told apart below
        if not nullable and None in value:
            raise self.error(f"{key} has a null at index {value.index(None)}")
        numbers = [v for v in value if v is not None]
        if not all(_is_number(v) for v in numbers):
            raise self.error(f"{key} holds a non-number")
        if not all(_finite(v) for v in numbers):
            raise self.error(f"{key} holds an infinite value")
        return value

    def flags(self, key: str, values: list[Any]) -> list[int]:
        if set(map(type, values)) == {int} and set(values) <= {0, 1}:
            return list(values)  # the common case: already ints 0 and 1
        if any(v not in (0, 1) for v in values):
            raise self.error(f"{key} holds a value other than 0 or 1")
        return [int(v) for v in values]


@dataclass(frozen=True, kw_only=True)
class Message:
    """A payload of one leaf: `encode()` writes it, `parse(body, topic)` reads and checks it."""

    LEAF: ClassVar[str]
    RETAIN: ClassVar[bool] = False  # published retained (the broker keeps the last one)

    def wire(self) -> dict[str, Any]:
        """The payload's fields after `"v"`, in order, without the omitted ones that are None."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None or not f.metadata.get("omitted"):
                out[f.name] = value
        return out

    def encode(self) -> bytes:
        return payload(**self.wire())

    @classmethod
    def parse(cls, body: bytes, topic: str | None = None, *, strap: str | None = None) -> Self:
        """The message in `body`, checked; MessageError naming `topic` (else the leaf) and the
        field otherwise. `strap`: the strap id the topic names, which the payload must carry."""
        return cls._read(_Fields(body, topic or cls.LEAF), strap)

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        raise NotImplementedError


SINK_STATES = ("online", "stalled", "offline")  # SinkStatusMessage.state
MAX_ADAPTERS = 16  # radios in a status (and thresholds): a ward gateway has a few
MAX_NAME = 64  # characters of a radio's name


@dataclass(frozen=True, kw_only=True)
class SinkStatusMessage(Message):
    """A sink's own state, retained on `<prefix>/sink/<client id>/status`: `online` while it
    stores what it receives; `stalled` while its spool cannot take messages (a full disk), which
    it then holds unacknowledged (`held`) and the broker queues; `offline` on a clean stop and as
    its last will. `spool`: messages on disk, not yet in InfluxDB. docs/mqtt.md."""

    LEAF: ClassVar[str] = STATUS
    RETAIN: ClassVar[bool] = True
    state: str
    time: float | None = field(default=None, metadata=OMITTED)
    spool: int | None = field(default=None, metadata=OMITTED)
    held: int | None = field(default=None, metadata=OMITTED)
    reason: str | None = field(default=None, metadata=OMITTED)

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        state = f.text("state")
        if state not in SINK_STATES:
            raise f.error(f"sink status {state!r} is not one of {', '.join(SINK_STATES)}")
        counts = {}
        for key in ("spool", "held"):
            counts[key] = None if f.msg.get(key) is None else f.integer(key)
        reason = f.msg.get("reason")
        return cls(
            state=state,
            time=f.number("time"),
            spool=counts["spool"],
            held=counts["held"],
            reason=None if reason is None else f.text("reason"),
        )


class AdapterStatus(TypedDict):
    """One radio of the gateway, in its status: scanning, or not since `down_since`."""

    name: str
    scanning: bool
    down_since: str | None


class DetectorSettings(TypedDict):
    """The detector settings the gateway raises alerts with (DetectorConfig): its digest, the
    chest-to-axillary offset added to infant_c, and each thermal band's threshold by kind."""

    digest: str
    axillary_offset_c: float
    thresholds_c: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class StatusMessage(Message):
    """The gateway's own state, retained: `online` on connect and again every `every_s` (a
    heartbeat, with its radios and its detector settings), `offline` on a clean stop and as
    its last will (then only the state: a will is written when the gateway starts)."""

    LEAF: ClassVar[str] = STATUS
    RETAIN: ClassVar[bool] = True
    state: str
    time: float | None = field(default=None, metadata=OMITTED)
    every_s: float | None = field(default=None, metadata=OMITTED)
    adapters: list[AdapterStatus] | None = field(default=None, metadata=OMITTED)
    detector: DetectorSettings | None = field(default=None, metadata=OMITTED)

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        state = f.text("state")
        if state not in (ONLINE, OFFLINE):
            raise f.error(f"status {state!r} is not {ONLINE} or {OFFLINE}")
        every = f.number("every_s")
        if every is not None and every <= 0:
            raise f.error(f"every_s = {every!r} should be above 0")
        return cls(
            state=state,
            time=f.number("time"),
            every_s=every,
            adapters=_adapters(f),
            detector=_detector(f),
        )


def _adapters(f: _Fields) -> list[AdapterStatus] | None:
    value = f.msg.get("adapters")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ADAPTERS:
        raise f.error(f"adapters should be a list of at most {MAX_ADAPTERS} radios")
    out = []
    for k, item in enumerate(value):
        if not isinstance(item, dict):
            raise f.error(f"adapters[{k}] = {item!r} should be an object")
        one = _Fields.of(item, f"{f.topic}: adapters[{k}]")
        name = one.text("name")
        if not 0 < len(name) <= MAX_NAME:
            raise one.error(f"name should be 1-{MAX_NAME} characters")
        out.append(
            AdapterStatus(
                name=name,
                scanning=one.flag("scanning", True),
                down_since=one.optional_time("down_since"),
            )
        )
    return out


def _detector(f: _Fields) -> DetectorSettings | None:
    value = f.msg.get("detector")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise f.error(f"detector = {value!r} should be an object")
    d = _Fields.of(value, f"{f.topic}: detector")
    thresholds = value.get("thresholds_c")
    if not isinstance(thresholds, dict) or not thresholds:
        raise d.error(f"thresholds_c = {thresholds!r} should be an object of kind: degrees C")
    t = _Fields.of(thresholds, f"{d.topic}: thresholds_c")
    digest = d.text("digest")
    if not (len(digest) == 12 and all(c in "0123456789abcdef" for c in digest)):
        raise d.error(f"digest = {digest!r} should be 12 hex digits (DetectorConfig.digest)")
    offset = d.required_number("axillary_offset_c")
    if not -2.0 <= offset <= 2.0:  # DetectorConfig's own range
        raise d.error(f"axillary_offset_c = {offset!r} should be within -2..2 C")
    out: dict[str, float] = {}
    for kind in list(thresholds)[:MAX_ADAPTERS]:
        value = t.required_number(kind)
        if not 30.0 <= value <= 40.0:  # DetectorConfig's THRESHOLD_RANGE_C
            raise t.error(f"{kind} = {value!r} should be within 30-40 C")
        out[str(kind)] = value
    return DetectorSettings(digest=digest, axillary_offset_c=offset, thresholds_c=out)


class Ids(TypedDict):
    """Who a per-strap message is about: the strap, its bed and the infant's pseudonym."""

    strap: str
    bed: str
    infant: str


@dataclass(frozen=True, kw_only=True)
class StrapMessage(Message):
    """A message about one strap: `<prefix>/<site>/<ward>/<strap>/<leaf>`, with who it is about
    (bed and infant pseudonym from the gateway's configuration; empty when not configured)."""

    strap: str
    bed: str = ""
    infant: str = ""

    @staticmethod
    def _ids(f: _Fields, strap: str | None) -> Ids:
        if strap is not None and f.msg.get("strap") != strap:
            raise f.error(f"strap {f.msg.get('strap')!r} in the payload does not match the topic")
        return Ids(strap=f.text("strap"), bed=f.text("bed", ""), infant=f.text("infant", ""))


@dataclass(frozen=True, kw_only=True)
class SamplesMessage(StrapMessage):
    """A batch of samples as the strap sent it (column by column, all as long as `time`)."""

    LEAF: ClassVar[str] = SAMPLES
    seq: list[int]
    time: list[float]
    infant_c: list[float | None]
    outer_c: list[float | None]
    contact: list[int]
    worn: list[int]
    battery_v: list[float | None] | None = field(default=None, metadata=OMITTED)
    clock_set: list[bool] | None = field(default=None, metadata=OMITTED)  # None: all set

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        ids = cls._ids(f, strap)
        times = f.msg.get("time")
        if not isinstance(times, list) or not times:
            raise f.error("time should be a non-empty list")
        n = len(times)
        time = f.column("time", n)
        seq = f.column("seq", n)
        whole = set(map(type, seq)) == {int}  # the common case: no float to look at
        if (min(seq) < 0) if whole else any(s < 0 or s != math.floor(s) for s in seq):
            raise f.error("seq holds a value that is not a whole number >= 0")
        infant_c = f.column("infant_c", n, nullable=True)
        outer_c = f.column("outer_c", n, nullable=True)
        contact = f.column("contact", n)
        worn = f.column("worn", n)
        battery_v = f.column("battery_v", n, nullable=True) if "battery_v" in f.msg else None
        clock_set = f.msg.get("clock_set", [True] * n)
        if (
            not isinstance(clock_set, list)
            or len(clock_set) != n
            or not set(map(type, clock_set)) <= {bool}  # bool has no subclasses
        ):
            raise f.error(f"clock_set should be a list of {n} booleans like time")
        return cls(
            **ids,
            seq=list(seq) if whole else [int(s) for s in seq],
            time=time,
            infant_c=infant_c,
            outer_c=outer_c,
            contact=f.flags("contact", contact),
            worn=f.flags("worn", worn),
            battery_v=battery_v,
            clock_set=clock_set if "clock_set" in f.msg else None,
        )


@dataclass(frozen=True, kw_only=True)
class StateMessage(StrapMessage):
    """The strap's state after its last batch, retained: what a ward screen shows at once."""

    LEAF: ClassVar[str] = STATE
    RETAIN: ClassVar[bool] = True
    state: str  # one of STATES
    infant_c: float | None = None
    battery_v: float | None = None
    last_seq: int
    time: float
    kmc_hours_today: float | None = None
    session_start: str | None = None
    alerts: list[str] = field(default_factory=list)

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        ids = cls._ids(f, strap)
        time = f.required_number("time")
        state = f.text("state")
        if state not in STATES:
            raise f.error(f"state {state!r} is not {', '.join(STATES[:-1])} or {STATES[-1]}")
        alerts = f.msg.get("alerts", [])
        if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
            raise f.error("alerts should be a list of alert kinds")
        for k, a in enumerate(alerts):
            if not a.isascii():
                _unicode(f, f"alerts[{k}]", a)
        return cls(
            **ids,
            state=state,
            last_seq=f.integer("last_seq"),
            infant_c=f.number("infant_c"),
            battery_v=f.number("battery_v"),
            time=time,
            kmc_hours_today=f.number("kmc_hours_today"),
            session_start=f.optional_time("session_start"),
            alerts=alerts,
        )


@dataclass(frozen=True, kw_only=True)
class AlertMessage(StrapMessage):
    """An alert episode started (`active`) or ended (`ended`), keyed by (strap, kind, start).

    `extreme_c` is null when the episode has no temperature (strap off, battery), and left out
    altogether for `signal_lost`. `priority` is the kind's alarm priority (clinical.ALARMS,
    docs/alarms.md), filled in from the kind when not given (a gateway before it was sent)."""

    LEAF: ClassVar[str] = ALERT
    kind: str  # kmc_host.clinical.ALERT_KINDS
    state: str  # ACTIVE or ENDED
    start: str
    end: str | None = field(default=None, metadata=OMITTED)
    extreme_c: float | None = None
    raised: str | None = field(default=None, metadata=OMITTED)
    priority: str | None = field(default=None, metadata=OMITTED)

    def __post_init__(self) -> None:
        if self.priority is None:  # frozen: set once, here
            object.__setattr__(self, "priority", alarm_of(self.kind).priority)

    def wire(self) -> dict[str, Any]:
        out = super().wire()
        if self.kind == SIGNAL_LOST and self.extreme_c is None:
            del out["extreme_c"]
        return out

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        ids = cls._ids(f, strap)
        if any(key not in f.msg for key in ("kind", "start", "state")):
            raise f.error(f"an alert needs kind, start and state ({ACTIVE} or {ENDED})")
        start = f.time("start")
        state = f.text("state")
        if state not in (ACTIVE, ENDED):
            raise f.error(f"alert state {state!r} is not {ACTIVE} or {ENDED}")
        kind = f.text("kind")
        if not kind or not kind.replace("_", "").isalnum():
            raise f.error(f"alert kind {kind!r} is not a word")
        priority = f.msg.get("priority")
        if priority not in PRIORITIES:  # none (an older gateway) or one this version lacks:
            priority = None  # the kind's own (an alert is never dropped for it)
        return cls(
            **ids,
            kind=kind,
            state=state,
            start=start,
            end=f.time("end") if state == ENDED else f.optional_time("end"),
            extreme_c=f.number("extreme_c"),
            raised=f.optional_time("raised"),
            priority=priority,
        )


@dataclass(frozen=True, kw_only=True)
class SessionMessage(StrapMessage):
    """A KMC session that has ended (final)."""

    LEAF: ClassVar[str] = SESSION
    start: str
    end: str
    duration_min: float
    effective: bool = False

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        ids = cls._ids(f, strap)
        start, end = f.time("start"), f.time("end")
        if iso_seconds(end) < iso_seconds(start):
            raise f.error("session ends before it starts")
        return cls(
            **ids,
            start=start,
            end=end,
            duration_min=f.required_number("duration_min"),
            effective=f.flag("effective", False),
        )


@dataclass(frozen=True, kw_only=True)
class DailyMessage(StrapMessage):
    """A local calendar day's hours so far, retained."""

    LEAF: ClassVar[str] = DAILY
    RETAIN: ClassVar[bool] = True
    date: str
    kmc_hours: float
    monitored_hours: float

    @classmethod
    def _read(cls, f: _Fields, strap: str | None) -> Self:
        ids = cls._ids(f, strap)
        date = f.text("date")
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            raise f.error(f"date {date!r} is not YYYY-MM-DD") from None
        return cls(
            **ids,
            kmc_hours=f.required_number("kmc_hours"),
            monitored_hours=f.required_number("monitored_hours"),
            date=date,
        )


MESSAGE_TYPES: dict[str, type[Message]] = {
    m.LEAF: m
    for m in (
        StatusMessage,
        SamplesMessage,
        StateMessage,
        AlertMessage,
        SessionMessage,
        DailyMessage,
    )
}


@dataclass(frozen=True)
class Origin:
    """Where a message came from, read off its topic `<prefix>/<site>/<ward>/<strap>/<leaf>`."""

    site: str
    ward: str
    strap: str
    leaf: str


def parse_topic(topic: str, prefix: str) -> Origin | None:
    """The origin of a per-strap message; None for the gateway's own topics (its status)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != prefix:
        raise MessageError(f"{topic}: not a {prefix}/<site>/<ward>/<strap>/<leaf> topic")
    _, site, ward, strap, leaf = parts
    if strap == GATEWAY:
        return None
    if leaf not in STRAP_LEAVES:
        raise MessageError(
            f"{topic}: unknown leaf {leaf!r} (expected one of {sorted(STRAP_LEAVES)})"
        )
    return Origin(site, ward, strap, leaf)


def read_status(topic: str, body: bytes, prefix: str) -> StatusMessage | None:
    """The gateway's status, checked, if `topic` is its status topic
    (`<prefix>/<site>/<ward>/gateway/status`); None for any other topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != prefix or parts[3] != GATEWAY or parts[4] != STATUS:
        return None
    return StatusMessage.parse(body, topic)


def read(topic: str, body: bytes, prefix: str) -> tuple[Origin, StrapMessage] | None:
    """A received per-strap message, checked against its leaf's type and its topic's strap;
    None for the gateway's own topics (which neither the sink nor the ward screen reads)."""
    origin = parse_topic(topic, prefix)
    if origin is None:
        return None
    kind = MESSAGE_TYPES[origin.leaf]
    assert issubclass(kind, StrapMessage)
    return origin, kind.parse(body, topic, strap=origin.strap)
