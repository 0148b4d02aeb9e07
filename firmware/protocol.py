# KMC strap BLE protocol, version 1: the strap's side. docs/protocol.md is the specification;
# host/kmc_host/protocol.py is the gateway's side. Both are checked against tests/golden/.
import struct

from micropython import const

VERSION = const(1)
# Device time counts seconds since 2000-01-01T00:00:00Z (the ESP32's epoch), on every port.
EPOCH_2000_UNIX = const(946684800)

KIND_SAMPLES = const(1)
HEADER_FMT = "<BBBBI"  # version, kind, count, reserved, first_seq
HEADER_SIZE = const(8)
RECORD_FMT = "<IhhBBbB"  # time, infant_c*100, outer_c*100, flags, battery, tilt_deg, reserved
RECORD_SIZE = const(12)
ATT_OVERHEAD = const(3)

NO_TEMP = const(-32768)
NO_TILT = const(-128)
NO_BATTERY = const(0)

FLAG_CONTACT = const(1)
FLAG_WORN = const(2)
FLAG_CLOCK_SET = const(4)
FLAG_ALARM = const(8)

# Control point opcodes and results
OP_SET_CLOCK = const(1)  # u32 device time (s since 2000)
OP_RESUME_FROM = const(2)  # u32 sequence number
OP_SET_INTERVAL = const(3)  # u16 sampling interval in ms
OP_IDENTIFY = const(4)  # u8 seconds
OP_RESPONSE = const(0x80)
RESULT_OK = const(0)
RESULT_BAD_LENGTH = const(1)
RESULT_BAD_VALUE = const(2)
RESULT_UNKNOWN_OP = const(3)
RESULT_NOT_BONDED = const(4)  # the link is not encrypted with the strap's bond

# What the strap accepts (docs/protocol.md, Control point)
_CLOCK_MIN = const(631152000)  # 2020-01-01: earlier is a host that sent Unix time, or nothing
_INTERVAL_MIN_MS = const(250)
_INTERVAL_MAX_MS = const(60000)

STATUS_FMT = "<BBBBIIIHBBHH"  # version, firmware x3, oldest, newest, time, mV, health, fill, ms, 0
STATUS_SIZE = const(24)
HEALTH_INFANT = const(1)
HEALTH_OUTER = const(2)
HEALTH_ACCEL = const(4)
HEALTH_CLOCK = const(8)
HEALTH_FLASH = const(16)

# The scan response's status byte (docs/protocol.md, Advertising): the only thing the strap says
# in clear about itself. Bits 1-7 are reserved: sent 0, ignored by the gateway.
VISIT_NOW = const(1)  # news the gateway must see now: alarm on, or alarm/worn changed


def centi(value):
    """A temperature in 0.01 C steps, or NO_TEMP for a missing reading."""
    if value is None:
        return NO_TEMP
    v = int(round(value * 100))
    if v < -32767 or v > 32767:
        return NO_TEMP
    return v


def battery_code(volts):
    """Battery voltage in 10 mV steps above 2.00 V (1..255 = 2.01..4.55 V); 0 = no reading."""
    if volts is None:
        return NO_BATTERY
    code = round(volts * 100) - 200  # one float operation: round() of a float is an int
    return min(255, max(1, code))


def tilt_code(degrees):
    if degrees is None:
        return NO_TILT
    return min(127, max(-127, int(round(degrees))))


def pack_record(buf, offset, t2000, infant_c, outer_c, flags, battery_v, tilt_deg):
    """Write one 12-byte sample record into buf at offset (no allocation)."""
    struct.pack_into(
        RECORD_FMT,
        buf,
        offset,
        t2000,
        centi(infant_c),
        centi(outer_c),
        flags,
        battery_code(battery_v),
        tilt_code(tilt_deg),
        0,
    )


def records_per_packet(mtu):
    """How many records fit one notification at this ATT MTU (at least 1 at the default 23)."""
    return max(1, (mtu - ATT_OVERHEAD - HEADER_SIZE) // RECORD_SIZE)


def pack_header(buf, count, first_seq):
    struct.pack_into(HEADER_FMT, buf, 0, VERSION, KIND_SAMPLES, count, 0, first_seq)


def unpack_record(buf, offset):
    """(t2000, infant_c, outer_c, flags, battery_v, tilt) with None for missing values."""
    t, i, o, f, b, tilt, _ = struct.unpack_from(RECORD_FMT, buf, offset)
    return (
        t,
        None if i == NO_TEMP else i / 100,
        None if o == NO_TEMP else o / 100,
        f,
        None if b == NO_BATTERY else 2.0 + b / 100,
        None if tilt == NO_TILT else tilt,
    )


def ieee11073_float(value):
    """IEEE-11073 32-bit FLOAT (Health Thermometer): 8-bit exponent, 24-bit mantissa; 0.01 C."""
    if value is None:
        return struct.pack("<I", 0x007FFFFF)  # NaN
    mantissa = int(round(value * 100)) & 0xFFFFFF
    return struct.pack("<I", (0xFE << 24) | mantissa)  # exponent -2


def temperature_measurement(value):
    """Health Thermometer Temperature Measurement (0x2A1C): flags (Celsius, no time, no type)."""
    return b"\x00" + ieee11073_float(value)


def parse_command(cmd, secure):
    """A control point write -> (opcode, result, value).

    value is the command's argument (device time, sequence number, milliseconds or seconds)
    when result is RESULT_OK, else None; an empty write is opcode 0. On a link that is not
    secured with the strap's bond the answer is RESULT_NOT_BONDED and the argument is not read.
    """
    op = cmd[0] if cmd else 0
    if not secure:
        return op, RESULT_NOT_BONDED, None
    n = len(cmd)
    if op in (OP_SET_CLOCK, OP_RESUME_FROM):
        if n != 5:
            return op, RESULT_BAD_LENGTH, None
        value = struct.unpack_from("<I", cmd, 1)[0]
        if op == OP_SET_CLOCK and value < _CLOCK_MIN:
            return op, RESULT_BAD_VALUE, None
        return op, RESULT_OK, value
    if op == OP_SET_INTERVAL:
        if n != 3:
            return op, RESULT_BAD_LENGTH, None
        value = struct.unpack_from("<H", cmd, 1)[0]
        if value < _INTERVAL_MIN_MS or value > _INTERVAL_MAX_MS:
            return op, RESULT_BAD_VALUE, None
        return op, RESULT_OK, value
    if op == OP_IDENTIFY:
        if n != 2:
            return op, RESULT_BAD_LENGTH, None
        return op, RESULT_OK, cmd[1]
    return op, RESULT_UNKNOWN_OP, None


def response(opcode, result):
    """The control point's answer to a command: 0x80, opcode, result."""
    return bytes((OP_RESPONSE, opcode, result))


def pack_status(buf, firmware, oldest, newest, t2000, battery_v, health, fill_percent, interval_ms):
    """Write the 24-byte Status value into buf (no allocation).

    firmware is (major, minor, patch); newest is oldest - 1 when the store is empty (-1 is sent
    as 0xFFFFFFFF); battery_v None is sent as 0 mV (no reading).
    """
    struct.pack_into(
        STATUS_FMT,
        buf,
        0,
        VERSION,
        firmware[0],
        firmware[1],
        firmware[2],
        oldest,
        newest & 0xFFFFFFFF,
        t2000,
        0 if battery_v is None else int(battery_v * 1000),
        health,
        fill_percent,
        interval_ms,
        0,
    )


def advertising_payload(name, service_uuid_le):
    """Flags, the 128-bit KMC service UUID, and the shortened name (<= 8 bytes): <= 31 bytes."""
    name = name.encode()[:8] if isinstance(name, str) else name[:8]
    payload = bytearray(b"\x02\x01\x06")
    payload += bytes((len(service_uuid_le) + 1, 0x07)) + service_uuid_le
    payload += bytes((len(name) + 1, 0x08)) + name
    return bytes(payload)


def scan_response(status):
    """The scan response: one Service Data - 128-bit UUID structure (AD type 0x21) holding the
    KMC service UUID and the status byte (VISIT_NOW): 19 bytes. It says "visit me", never why."""
    return bytes((18, 0x21)) + uuid_le(KMC_SERVICE_UUID) + bytes((status,))


KMC_SERVICE_UUID = "7a6b0001-5c1e-4b4d-a0c3-6b6d63736e73"
MEASUREMENT_UUID = "7a6b0002-5c1e-4b4d-a0c3-6b6d63736e73"
CONTROL_UUID = "7a6b0003-5c1e-4b4d-a0c3-6b6d63736e73"
STATUS_UUID = "7a6b0004-5c1e-4b4d-a0c3-6b6d63736e73"


def uuid_le(text):
    """A 128-bit UUID string as the 16 little-endian bytes advertising carries."""
    raw = bytes(int(text.replace("-", "")[i : i + 2], 16) for i in range(0, 32, 2))
    return bytes(reversed(raw))
