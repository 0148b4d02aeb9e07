"""The host's decoder against the golden vectors the firmware encodes under MicroPython."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from kmc_host import protocol as P

GOLDEN = json.loads(
    (Path(__file__).resolve().parents[1] / "golden" / "protocol_v1.json").read_text()
)
T_UNIX = 837000000 + 946684800  # 2026-07-10T12:00:00Z


def vec(name: str) -> bytes:
    return bytes.fromhex(GOLDEN[name])


def test_measurement_of_four_samples():
    m = P.decode_measurement(vec("measurement_4_samples"))
    assert m.seq.tolist() == [1000, 1001, 1002, 1003]
    assert m.time.tolist() == [T_UNIX, T_UNIX + 1, T_UNIX + 2, 946684800 + 12]
    assert m.infant_c[0] == 36.57 and math.isnan(m.infant_c[1]) and m.infant_c[2] == 35.98
    assert m.outer_c.tolist() == [35.1, 24.0, -5.5, 30.25]
    assert m.contact.tolist() == [1, 0, 0, 0] and m.worn.tolist() == [1, 1, 1, 1]
    assert m.clock_set.tolist() == [True, True, True, False]
    assert m.alarm.tolist() == [False, False, True, False]
    assert m.battery_v[0] == pytest.approx(3.91) and math.isnan(m.battery_v[1])
    assert m.battery_v[2] == pytest.approx(4.55) and m.battery_v[3] == pytest.approx(2.01)
    assert np.isnan(m.tilt_deg[1]) and m.tilt_deg[[0, 2, 3]].tolist() == [12, -90, 90]


def test_high_sequence_numbers():
    m = P.decode_measurement(vec("measurement_1_sample_high_seq"))
    assert m.seq.tolist() == [0xFFFFFFF0]


def test_health_thermometer_float():
    assert P.decode_temperature_measurement(vec("temperature_measurement_36_57")) == pytest.approx(
        36.57
    )
    assert math.isnan(P.decode_temperature_measurement(vec("temperature_measurement_missing")))


# what the strap answered to each command (tests/firmware/micropython/golden_cases.py ANSWERS)
ANSWERS = {
    "response_clock_ok": (P.OP_SET_CLOCK, "ok"),
    "response_resume_ok": (P.OP_RESUME_FROM, "ok"),
    "response_interval_ok": (P.OP_SET_INTERVAL, "ok"),
    "response_identify_ok": (P.OP_IDENTIFY, "ok"),
    "response_clock_bad_value": (P.OP_SET_CLOCK, "bad value"),
    "response_clock_bad_length": (P.OP_SET_CLOCK, "bad length"),
    "response_interval_bad_value": (P.OP_SET_INTERVAL, "bad value"),
    "response_identify_bad_length": (P.OP_IDENTIFY, "bad length"),
    "response_unknown_opcode": (9, "unknown opcode"),
    "response_empty_write": (0, "unknown opcode"),
    "response_resume_not_bonded": (P.OP_RESUME_FROM, "not bonded"),
}


def test_control_point_commands_match_the_strap():
    assert P.set_clock(T_UNIX) == vec("control_set_clock")
    assert P.resume_from(1000) == vec("control_resume_from_1000")
    assert P.set_interval(2000) == vec("control_set_interval_2000ms")
    assert P.identify(10) == vec("control_identify_10s")


def test_every_answer_of_the_strap_decodes():
    assert sorted(n for n in GOLDEN if n.startswith("response_")) == sorted(ANSWERS)
    for name, expected in ANSWERS.items():
        assert P.decode_response(vec(name)) == expected, name


def test_status():
    s = P.decode_status(vec("status"))
    assert (s.oldest_seq, s.newest_seq, s.interval_ms, s.buffer_fill_percent) == (
        1000,
        1003,
        1000,
        7,
    )
    assert s.device_time == T_UNIX + 3 and s.battery_v == 3.91 and s.firmware == "0.1.0"
    assert (s.version, s.health) == (1, 0x1B)


def test_status_of_a_strap_just_booted():
    s = P.decode_status(vec("status_empty_no_battery"))
    assert (s.version, s.firmware, s.oldest_seq, s.newest_seq) == (1, "0.1.0", 0, 0xFFFFFFFF)
    assert s.device_time == 946684800 + 12 and s.health == 0 and s.buffer_fill_percent == 0
    assert s.battery_v == 0.0 and s.interval_ms == 250  # 0 mV: no reading (docs/protocol.md)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x01\x01", "shorter than its 8-byte header"),
        (bytes.fromhex("02010100e8030000") + bytes(12), "version 2"),
        (bytes.fromhex("01090100e8030000") + bytes(12), "kind 9"),
        (bytes.fromhex("01010200e8030000") + bytes(12), "says 2 records (32 bytes) but has 20"),
        (bytes.fromhex("01010000e8030000"), "says 0 records"),
        (bytes.fromhex("01010200ffffffff") + bytes(24), "overflow 32 bits"),
    ],
)
def test_malformed_measurements_are_named(payload, message):
    with pytest.raises(P.ProtocolError, match=re.escape(message)):
        P.decode_measurement(payload)


def test_clock_before_2000_is_refused():
    with pytest.raises(ValueError, match="outside"):
        P.set_clock(0)
