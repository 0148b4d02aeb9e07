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
import itertools
from collections.abc import Sequence

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
from .lineproto import Field, _escape_measurement, line, tag_set

__all__ = [
    "MEASUREMENTS",
    "REFERENCE",
    "SAMPLE_BUILDERS",
    "VECTORISED",
    "MessageError",
    "to_lines",
    "to_lines_many",
]

SAMPLE = "kmc_sample"
SAMPLE_UNCLOCKED = "kmc_sample_unclocked"  # taken before any gateway set the strap's clock
STATE = "kmc_state"
SESSION = "kmc_session"
ALERT = "kmc_alert"
DAILY = "kmc_daily"
MEASUREMENTS = (SAMPLE, SAMPLE_UNCLOCKED, STATE, SESSION, ALERT, DAILY)
NS_PER_MS = 1_000_000  # points are written with nanosecond timestamps (precision=ns)
NS_PER_S = 1_000_000_000
SEQ_MAX = 2**53  # seq goes through float64 (timestamps, columns): exact up to here
VECTORISED = "vectorised"  # how samples messages become lines: to_lines(samples=...)
REFERENCE = "reference"


def to_lines(
    topic: str, body: bytes, prefix: str = "kmc", *, samples: str = VECTORISED
) -> list[str]:
    """All points of one message, as line protocol (ns timestamps). Raises MessageError (the
    MQTT contract's: the message is checked by `kmc_host.mqtt.read`).

    `samples` picks how a samples message becomes lines: `"vectorised"` (column by column, one
    formatted join; what the sink runs) or `"reference"` (a point at a time through
    `lineproto.line`, the original path). Both give the same bytes (tests/sink/test_sink_lines.py);
    the reference stays for that test and for benchmarks/bench_sink.py's side-by-side figure."""
    (out,) = to_lines_many([(topic, body)], prefix, samples=samples)
    if isinstance(out, MessageError):
        raise out
    return out


def to_lines_many(
    messages: Sequence[tuple[str, bytes]], prefix: str = "kmc", *, samples: str = VECTORISED
) -> list[list[str] | MessageError]:
    """`to_lines` of each (topic, body), in order, the error in place of the lines of a message
    that cannot be stored. The vectorised samples builder takes the samples messages of the
    whole call at once: its numpy work is paid once per call, not once per message."""
    build = SAMPLE_BUILDERS[samples]
    out: list[list[str] | MessageError] = [[] for _ in messages]
    batch: list[tuple[int, SamplesMessage, dict[str, str]]] = []
    for k, (topic, body) in enumerate(messages):
        try:
            received = read(topic, body, prefix)
        except MessageError as exc:
            out[k] = exc
            continue
        if received is None:  # the gateway's status: not stored
            continue
        origin, msg = received
        tags = {"site": origin.site, "ward": origin.ward, "strap": origin.strap}
        tags["infant"] = msg.infant
        if isinstance(msg, SamplesMessage):
            if max(msg.seq) > SEQ_MAX:  # stored rounded, or wrapped past 2**63 by numpy
                out[k] = MessageError(
                    f"{topic}: seq holds {max(msg.seq)}, more than the sink stores exactly "
                    f"({SEQ_MAX})"
                )
                continue
            batch.append((k, msg, tags))
        elif isinstance(msg, StateMessage):
            out[k] = _state(msg, tags)
        elif isinstance(msg, SessionMessage):
            out[k] = _session(msg, tags)
        elif isinstance(msg, AlertMessage):
            out[k] = _alert(msg, tags)
        else:
            assert isinstance(msg, DailyMessage)
            out[k] = _daily(msg, tags)
    if batch:
        built = build([(msg, tags) for _, msg, tags in batch])
        for (k, _, _), lines in zip(batch, built, strict=True):
            out[k] = lines
    return out


# -- one converter per leaf


def _sample_ns(t: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """ns timestamps: the sample's millisecond, plus its sequence number in the nanoseconds, so
    two samples of one strap never share a point even if its clock repeats times (a host clock
    stepped back); deterministic, so a replay still overwrites the same point."""
    return np.round(t * 1000).astype(np.int64) * NS_PER_MS + (seq.astype(np.int64) % NS_PER_MS)


# the fields of a sample point in line-protocol order (sorted by key, as `lineproto.line` writes
# them); `device_time` only on kmc_sample_unclocked. Readings (the optional ones) are floats,
# the rest integers.
_READINGS = ("battery_v", "infant_c", "outer_c")
_SAMPLE_FIELDS = ("battery_v", "contact", "infant_c", "outer_c", "seq", "worn")
_UNCLOCKED_FIELDS = ("battery_v", "contact", "device_time", "infant_c", "outer_c", "seq", "worn")
_UNCLOCKED = 1 << len(_READINGS)  # the bit after the readings' in a sample's group code


class _Reprs(dict[float, str]):
    """repr() of the readings, remembered: the gateway rounds them to 0.01 (a few thousand
    values in a ward's range), and a lookup costs a fraction of a repr. Bounded: emptied when it
    outgrows `limit` (readings that are not rounded)."""

    limit = 100_000

    def __missing__(self, value: float) -> str:
        text = repr(value)
        if value == 0:  # 0.0 and -0.0 are one key but two texts: neither is remembered
            return text
        if len(self) >= self.limit:
            self.clear()
        self[value] = text
        return text


_REPRS = _Reprs()


def _template(measurement: str, names: tuple[str, ...]) -> str:
    """A %-format for one line: the measurement, the tag set (`%s`, escaped already), each field
    (a reading as its repr, ready made, `%s`; device_time `%r`, its repr, as `lineproto` writes
    a float; an integer `%di`), then the timestamp."""
    body = ",".join(
        f"{k}=%s" if k in _READINGS else f"{k}=%r" if k == "device_time" else f"{k}=%di"
        for k in names
    )
    return measurement + "%s " + body + " %d"


def _samples(items: Sequence[tuple[SamplesMessage, dict[str, str]]]) -> list[list[str]]:
    """The points of samples messages, built column by column over all of them at once: numpy
    for the timestamps and the missing readings, then one %-format per line in a single
    comprehension. Samples that miss the same readings (and agree on clock_set) share a
    template; a batch is usually one group. The same bytes as `_samples_reference`
    (tests/sink/test_sink_lines.py holds them to each other)."""
    sizes = [len(msg.time) for msg, _ in items]
    total = sum(sizes)
    chain = itertools.chain.from_iterable
    t = np.array(list(chain(msg.time for msg, _ in items)), dtype=float)
    seq = np.array(list(chain(msg.seq for msg, _ in items)), dtype=float)
    battery = chain(
        [None] * len(msg.time) if msg.battery_v is None else msg.battery_v for msg, _ in items
    )
    readings = {  # a null reading is NaN: no field
        "battery_v": np.array(list(battery), dtype=float),
        "infant_c": np.array(list(chain(msg.infant_c for msg, _ in items)), dtype=float),
        "outer_c": np.array(list(chain(msg.outer_c for msg, _ in items)), dtype=float),
    }
    # which readings each sample has (a bit each, in _READINGS order), and _UNCLOCKED
    code = np.zeros(total, dtype=np.int64)
    for bit, name in enumerate(_READINGS):
        code |= np.isfinite(readings[name]).astype(np.int64) << bit
    if any(msg.clock_set is not None for msg, _ in items):
        clock = chain(
            [True] * len(msg.time) if msg.clock_set is None else msg.clock_set for msg, _ in items
        )
        code |= np.where(np.array(list(clock), dtype=bool), 0, _UNCLOCKED)
    columns: dict[str, np.ndarray] = {
        **readings,
        "contact": np.array(list(chain(msg.contact for msg, _ in items)), dtype=np.int64),
        "worn": np.array(list(chain(msg.worn for msg, _ in items)), dtype=np.int64),
        "seq": seq.astype(np.int64),
        "device_time": t,
    }
    ns = _sample_ns(t, seq)
    tag_sets = [tag_set(tags) for _, tags in items]
    groups = np.unique(code).tolist()
    if len(groups) == 1:
        every = slice(None)
        lines = _group_lines(groups[0], every, columns, ns, _per_line(tag_sets, sizes))
    else:
        out = np.empty(total, dtype=object)
        per_line = np.repeat(np.array(tag_sets, dtype=object), sizes)
        for c in groups:
            idx = np.flatnonzero(code == c)
            out[idx] = _group_lines(c, idx, columns, ns, per_line[idx].tolist())
        lines = out.tolist()
    ends = itertools.accumulate(sizes)
    return [lines[end - n : end] for n, end in zip(sizes, ends, strict=True)]


def _per_line(tag_sets: list[str], sizes: list[int]) -> list[str]:
    """Each message's tag set once per sample."""
    pairs = zip(tag_sets, sizes, strict=True)
    return list(itertools.chain.from_iterable(itertools.repeat(ts, n) for ts, n in pairs))


def _group_lines(
    code: int,
    idx: slice | np.ndarray,
    columns: dict[str, np.ndarray],
    ns: np.ndarray,
    tag_sets: list[str],
) -> list[str]:
    """The lines of the samples at `idx`, which all have group `code`."""
    unclocked = bool(code & _UNCLOCKED)
    names = tuple(
        k
        for k in (_UNCLOCKED_FIELDS if unclocked else _SAMPLE_FIELDS)
        if k not in _READINGS or code >> _READINGS.index(k) & 1
    )
    fmt = _template(
        _escape_measurement(SAMPLE_UNCLOCKED if unclocked else SAMPLE).replace("%", "%%"), names
    )
    cols = [
        list(map(_REPRS.__getitem__, columns[k][idx].tolist()))
        if k in _READINGS
        else columns[k][idx].tolist()
        for k in names
    ]
    if unclocked:  # device time is seconds since boot in 2000: keyed by seq, kept apart
        stamps = [s * NS_PER_MS for s in columns["seq"][idx].tolist()]
    else:
        stamps = ns[idx].tolist()
    return [fmt % row for row in zip(tag_sets, *cols, stamps, strict=True)]


def _samples_reference(
    items: Sequence[tuple[SamplesMessage, dict[str, str]]],
) -> list[list[str]]:
    """The original path, a point at a time through `lineproto.line`: the reference
    `_samples` is held to, byte for byte."""
    return [_samples_one(msg, tags) for msg, tags in items]


def _samples_one(msg: SamplesMessage, tags: dict[str, str]) -> list[str]:
    n = len(msg.time)
    t = np.array(msg.time, dtype=float)
    seq = np.array(msg.seq, dtype=float)
    infant = np.array(msg.infant_c, dtype=float)  # a null reading is NaN: no field
    outer = np.array(msg.outer_c, dtype=float)
    battery = np.full(n, np.nan) if msg.battery_v is None else np.array(msg.battery_v, float)
    clocked = [True] * n if msg.clock_set is None else msg.clock_set
    head = tag_set(tags)
    ns = _sample_ns(t, seq)
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


SAMPLE_BUILDERS = {VECTORISED: _samples, REFERENCE: _samples_reference}


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
