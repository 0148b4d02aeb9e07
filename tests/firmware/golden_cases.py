# The golden protocol vectors: inputs, encoded by the firmware's own code (protocol.py).
# `micropython make_golden.py` writes tests/golden/protocol_v1.json from these; the firmware
# test checks the encoder still gives those bytes, the host test decodes them with numpy.
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


def cases():
    return [
        ("measurement_4_samples", measurement(1000, SAMPLES)),
        ("measurement_1_sample_high_seq", measurement(0xFFFFFFF0, SAMPLES[:1])),
        ("temperature_measurement_36_57", P.temperature_measurement(36.57)),
        ("temperature_measurement_missing", P.temperature_measurement(None)),
        ("control_set_clock", bytes((P.OP_SET_CLOCK,)) + struct.pack("<I", T)),
        ("control_resume_from_1000", bytes((P.OP_RESUME_FROM,)) + struct.pack("<I", 1000)),
        ("control_set_interval_2000ms", bytes((P.OP_SET_INTERVAL,)) + struct.pack("<H", 2000)),
        ("control_identify_10s", bytes((P.OP_IDENTIFY, 10))),
        ("response_resume_ok", P.response(P.OP_RESUME_FROM, P.RESULT_OK)),
        ("response_clock_bad_value", P.response(P.OP_SET_CLOCK, P.RESULT_BAD_VALUE)),
        ("response_resume_not_bonded", P.response(P.OP_RESUME_FROM, P.RESULT_NOT_BONDED)),
        (
            "status",
            struct.pack(P.STATUS_FMT, 1, 0, 1, 0, 1000, 1003, T + 3, 3910, 0x1B, 7, 1000, 0),
        ),
    ]
