"""The KMC strap BLE protocol, version 1: the gateway's side, vectorised with numpy.

docs/protocol.md is the specification; firmware/protocol.py is the strap's side. Both are
checked against the same golden vectors (tests/golden/protocol_v1.json): the firmware encodes
them under MicroPython, this module decodes them; and every constant (UUIDs, flag and health
bits, opcodes, results, layouts) must equal the firmware's (tests/firmware/test_protocol_contract.py).

A measurement notification is an 8-byte header and `count` 12-byte records, all little-endian;
decoding is one `np.frombuffer` over a structured dtype, no per-sample Python.

Between visits the gateway only hears advertising: the scan response's one status byte
(`advert_status`) says whether a strap wants a visit now (VISIT_NOW), and nothing more.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import BadInput

VERSION = 1
KIND_SAMPLES = 1
EPOCH_2000_UNIX = 946_684_800  # device time counts seconds from 2000-01-01T00:00:00Z

HEADER = np.dtype(
    [("version", "u1"), ("kind", "u1"), ("count", "u1"), ("reserved", "u1"), ("first_seq", "<u4")]
)
RECORD = np.dtype(
    [
        ("time", "<u4"),
        ("infant", "<i2"),
        ("outer", "<i2"),
        ("flags", "u1"),
        ("battery", "u1"),
        ("tilt", "i1"),
        ("reserved", "u1"),
    ]
)
NO_TEMP, NO_TILT, NO_BATTERY = -32768, -128, 0
FLAG_CONTACT, FLAG_WORN, FLAG_CLOCK_SET, FLAG_ALARM = 1, 2, 4, 8

OP_SET_CLOCK, OP_RESUME_FROM, OP_SET_INTERVAL, OP_IDENTIFY, OP_RESPONSE = 1, 2, 3, 4, 0x80
RESULT_OK, RESULT_BAD_LENGTH, RESULT_BAD_VALUE, RESULT_UNKNOWN_OP, RESULT_NOT_BONDED = 0, 1, 2, 3, 4
RESULTS = {
    RESULT_OK: "ok",
    RESULT_BAD_LENGTH: "bad length",
    RESULT_BAD_VALUE: "bad value",
    RESULT_UNKNOWN_OP: "unknown opcode",
    RESULT_NOT_BONDED: "not bonded",
}
STATUS = struct.Struct("<BBBBIIIHBBHH")
# Status.health bits: sensors that answer, clock set by a gateway, flash writable
HEALTH_INFANT, HEALTH_OUTER, HEALTH_ACCEL, HEALTH_CLOCK, HEALTH_FLASH = 1, 2, 4, 8, 16
# the scan response's status byte: bit 0 "visit me now"; bits 1-7 reserved (sent 0, ignored)
VISIT_NOW = 1

KMC_SERVICE_UUID = "7a6b0001-5c1e-4b4d-a0c3-6b6d63736e73"
MEASUREMENT_UUID = "7a6b0002-5c1e-4b4d-a0c3-6b6d63736e73"
CONTROL_UUID = "7a6b0003-5c1e-4b4d-a0c3-6b6d63736e73"
STATUS_UUID = "7a6b0004-5c1e-4b4d-a0c3-6b6d63736e73"


class ProtocolError(BadInput):
    """A packet that does not follow the protocol; the message says what and where."""


@dataclass(frozen=True)
class Measurement:
    """The samples of one notification, as numpy columns (Unix seconds, C, volts, degrees)."""

    seq: NDArray[np.int64]
    time: NDArray[np.float64]
    infant_c: NDArray[np.float64]
    outer_c: NDArray[np.float64]
    contact: NDArray[np.int8]
    worn: NDArray[np.int8]
    clock_set: NDArray[np.bool_]
    alarm: NDArray[np.bool_]
    battery_v: NDArray[np.float64]
    tilt_deg: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.seq.size)


def decode_measurement(payload: bytes | bytearray | memoryview) -> Measurement:
    """Decode one measurement notification; raise ProtocolError if it is malformed."""
    data = bytes(payload)
    if len(data) < HEADER.itemsize:
        raise ProtocolError(f"measurement of {len(data)} bytes is shorter than its 8-byte header")
    head = np.frombuffer(data, HEADER, count=1)[0]
    if head["version"] != VERSION:
        raise ProtocolError(f"measurement version {head['version']}, this gateway speaks {VERSION}")
    if head["kind"] != KIND_SAMPLES:
        raise ProtocolError(f"measurement kind {head['kind']} is unknown")
    count = int(head["count"])
    expected = HEADER.itemsize + count * RECORD.itemsize
    if count == 0 or len(data) != expected:
        raise ProtocolError(
            f"measurement header says {count} records ({expected} bytes) but has {len(data)} bytes"
        )
    first = int(head["first_seq"])
    if first + count - 1 > 0xFFFFFFFF:
        raise ProtocolError(f"sequence numbers {first}..{first + count - 1} overflow 32 bits")
    rec = np.frombuffer(data, RECORD, count=count, offset=HEADER.itemsize)
    flags = rec["flags"]
    return Measurement(
        seq=first + np.arange(count, dtype=np.int64),
        time=rec["time"].astype(np.float64) + EPOCH_2000_UNIX,
        infant_c=_centi(rec["infant"]),
        outer_c=_centi(rec["outer"]),
        contact=(flags & FLAG_CONTACT).astype(np.int8),
        worn=((flags & FLAG_WORN) >> 1).astype(np.int8),
        clock_set=(flags & FLAG_CLOCK_SET) != 0,
        alarm=(flags & FLAG_ALARM) != 0,
        battery_v=np.where(rec["battery"] == NO_BATTERY, np.nan, 2.0 + rec["battery"] / 100.0),
        tilt_deg=np.where(rec["tilt"] == NO_TILT, np.nan, rec["tilt"].astype(np.float64)),
    )


def _centi(v: NDArray[np.int16]) -> NDArray[np.float64]:
    return np.where(v == NO_TEMP, np.nan, v / 100.0)


def decode_float11073(data: bytes) -> float:
    """IEEE-11073 32-bit FLOAT: NaN for the reserved 'not a number' value."""
    (raw,) = struct.unpack("<I", data[:4])
    mantissa = raw & 0xFFFFFF
    if mantissa == 0x7FFFFF:
        return float("nan")
    if mantissa & 0x800000:
        mantissa -= 0x1000000
    exponent = raw >> 24
    if exponent & 0x80:
        exponent -= 0x100
    return mantissa * 10.0**exponent


def decode_temperature_measurement(data: bytes) -> float:
    """Health Thermometer Temperature Measurement (0x2A1C), Celsius, no optional fields."""
    if len(data) < 5 or data[0] & 0x01:
        raise ProtocolError("temperature measurement is not in Celsius or is truncated")
    return decode_float11073(data[1:5])


def set_clock(unix_time: float) -> bytes:
    """Control point: set the strap clock (the protocol's epoch is 2000-01-01 UTC)."""
    t2000 = int(unix_time) - EPOCH_2000_UNIX
    if not 0 <= t2000 <= 0xFFFFFFFF:
        raise ValueError(f"time {unix_time} is outside the protocol's range")
    return struct.pack("<BI", OP_SET_CLOCK, t2000)


def resume_from(seq: int) -> bytes:
    return struct.pack("<BI", OP_RESUME_FROM, seq)


def set_interval(ms: int) -> bytes:
    return struct.pack("<BH", OP_SET_INTERVAL, ms)


def identify(seconds: int) -> bytes:
    return struct.pack("<BB", OP_IDENTIFY, seconds)


def decode_response(data: bytes) -> tuple[int, str]:
    """(opcode, result text) of a control point response."""
    if len(data) != 3 or data[0] != OP_RESPONSE:
        raise ProtocolError(f"control point response {data.hex()} is malformed")
    return data[1], RESULTS.get(data[2], f"result {data[2]}")


@dataclass(frozen=True)
class Status:
    version: int
    firmware: str
    oldest_seq: int
    newest_seq: int
    device_time: float  # Unix seconds
    battery_v: float
    health: int
    buffer_fill_percent: int
    interval_ms: int


def decode_status(data: bytes) -> Status:
    if len(data) != STATUS.size:
        raise ProtocolError(f"status of {len(data)} bytes, expected {STATUS.size}")
    v, a, b, c, oldest, newest, t, mv, health, fill, interval, _ = STATUS.unpack(data)
    return Status(
        v,
        f"{a}.{b}.{c}",
        oldest,
        newest,
        float(t + EPOCH_2000_UNIX),
        mv / 1000.0,
        health,
        fill,
        interval,
    )


def advert_status(service_data: Mapping[str, bytes]) -> int | None:
    """The status byte a strap puts in its scan response, from bleak's
    `AdvertisementData.service_data` (keyed by lower-case 128-bit UUID string); None when there
    is no KMC service data or it is not exactly one byte (an older strap, another device, a
    truncated report): that is "no news known", never an error. Test it with `& VISIT_NOW`:
    the reserved bits may mean something to a later strap."""
    data = service_data.get(KMC_SERVICE_UUID) if isinstance(service_data, Mapping) else None
    if not isinstance(data, bytes | bytearray) or len(data) != 1:
        return None
    return int(data[0])
