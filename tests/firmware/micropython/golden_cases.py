# The golden protocol vectors: inputs, encoded by the firmware's own code (protocol.py): sample
# packets, the control point's answers (protocol.parse_command, then protocol.response, as the
# GATT server does), Status (protocol.pack_status) and the scan response (protocol.scan_response). Commands are built here, as the gateway
# builds them. `micropython make_golden.py` writes tests/golden/protocol_v1.json from these;
# the firmware test checks the encoder still gives those bytes, the host test decodes them.
import struct

import protocol as P

T = 837000000  # 2026-07-10T12:00:00Z in the 2000 epoch (1783684800 Unix)

# (time, infant_c, outer_c, flags, battery_v, tilt_deg)
SAMPLES = [
    (T, 36.57, 35.1, P.FLAG_CONTACT | P.FLAG_WORN | P.FLAG_CLOCK_SET, 3.91, 12),
    (T + 1, None, 24.0, P.FLAG_WORN | P.FLAG_CLOCK_SET, None, None),
    (T + 2, 35.98, -5.5, P.FLAG_WORN | P.FLAG_CLOCK_SET | P.FLAG_ALARM, 4.55, -90),
    (12, 36.0, 30.25, P.FLAG_WORN, 2.01, 90),  # clock never set: 12 s after boot
]


def measurement(first_seq, samples):
    buf = bytearray(P.HEADER_SIZE + P.RECORD_SIZE * len(samples))
    P.pack_header(buf, len(samples), first_seq)
    for k, s in enumerate(samples):
        P.pack_record(buf, P.HEADER_SIZE + k * P.RECORD_SIZE, *s)
    return bytes(buf)


def answer(cmd, secure):
    """What the strap answers to one control point write (ble_service.StrapBLE._command)."""
    op, result, _ = P.parse_command(cmd, secure)
    return P.response(op, result)


def status(firmware, oldest, newest, t2000, battery_v, health, fill_percent, interval_ms):
    buf = bytearray(P.STATUS_SIZE)
    P.pack_status(
        buf, firmware, oldest, newest, t2000, battery_v, health, fill_percent, interval_ms
    )
    return bytes(buf)


SET_CLOCK = bytes((P.OP_SET_CLOCK,)) + struct.pack("<I", T)
RESUME_FROM_1000 = bytes((P.OP_RESUME_FROM,)) + struct.pack("<I", 1000)
SET_INTERVAL_2000 = bytes((P.OP_SET_INTERVAL,)) + struct.pack("<H", 2000)
IDENTIFY_10 = bytes((P.OP_IDENTIFY, 10))
HEALTHY = P.HEALTH_INFANT | P.HEALTH_OUTER | P.HEALTH_CLOCK | P.HEALTH_FLASH  # no accelerometer

# (vector, control point write, link secured with the strap's bond): the strap's answers
ANSWERS = [
    ("response_clock_ok", SET_CLOCK, True),
    ("response_resume_ok", RESUME_FROM_1000, True),
    ("response_interval_ok", SET_INTERVAL_2000, True),
    ("response_identify_ok", IDENTIFY_10, True),
    # a host that sent Unix-epoch seconds of 1970 (here 12 s) instead of device time
    ("response_clock_bad_value", bytes((P.OP_SET_CLOCK,)) + struct.pack("<I", 12), True),
    ("response_clock_bad_length", bytes((P.OP_SET_CLOCK, 0)), True),
    ("response_interval_bad_value", bytes((P.OP_SET_INTERVAL,)) + struct.pack("<H", 100), True),
    ("response_identify_bad_length", bytes((P.OP_IDENTIFY,)), True),
    ("response_unknown_opcode", b"\x09", True),
    ("response_empty_write", b"", True),
    ("response_resume_not_bonded", RESUME_FROM_1000, False),
]


def cases():
    return (
        [
            ("measurement_4_samples", measurement(1000, SAMPLES)),
            ("measurement_1_sample_high_seq", measurement(0xFFFFFFF0, SAMPLES[:1])),
            ("temperature_measurement_36_57", P.temperature_measurement(36.57)),
            ("temperature_measurement_missing", P.temperature_measurement(None)),
            ("control_set_clock", SET_CLOCK),
            ("control_resume_from_1000", RESUME_FROM_1000),
            ("control_set_interval_2000ms", SET_INTERVAL_2000),
            ("control_identify_10s", IDENTIFY_10),
        ]
        + [(name, answer(cmd, secure)) for name, cmd, secure in ANSWERS]
        + [
            ("status", status((0, 1, 0), 1000, 1003, T + 3, 3.91, HEALTHY, 7, 1000)),
            # just booted: nothing stored (newest = oldest - 1), no battery reading, no sensor ok
            ("status_empty_no_battery", status((0, 1, 0), 0, -1, 12, None, 0, 0, 250)),
            ("scan_response_calm", P.scan_response(0)),
            ("scan_response_visit_now", P.scan_response(P.VISIT_NOW)),
        ]
    )
