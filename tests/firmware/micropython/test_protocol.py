# The strap's side of the BLE protocol, and the golden vectors the host decodes too.
import json
import struct

import protocol as P
from clock import PORT_EPOCH_OFFSET, Clock, FakeClock
from golden_cases import SAMPLES, T, cases
from mptest import run


def test_encoder_still_gives_the_golden_bytes():
    with open("../../golden/protocol_v1.json") as f:
        golden = json.loads(f.read())
    mine = dict(cases())
    assert len(mine) == len(cases()), "two vectors of one name"
    assert sorted(golden) == sorted(mine)
    for name, data in mine.items():
        assert "".join("%02x" % b for b in data) == golden[name], name


def test_records_round_trip():
    buf = bytearray(P.RECORD_SIZE)
    for s in SAMPLES:
        P.pack_record(buf, 0, *s)
        t, i, o, f, b, tilt = P.unpack_record(buf, 0)
        assert t == s[0] and f == s[3] and tilt == s[5]
        assert (i is None) == (s[1] is None) and (i is None or abs(i - s[1]) < 0.005)
        assert (b is None) == (s[4] is None) and (b is None or abs(b - s[4]) < 0.005)


def test_out_of_range_values_are_clamped_or_missing():
    assert P.centi(400.0) == P.NO_TEMP and P.centi(None) == P.NO_TEMP
    assert P.battery_code(1.0) == 1 and P.battery_code(9.9) == 255 and P.battery_code(None) == 0
    assert P.tilt_code(500) == 127 and P.tilt_code(None) == P.NO_TILT


def test_packets_fit_the_mtu():
    assert P.records_per_packet(23) == 1  # 20-byte payload: header 8 + one 12-byte record
    assert P.records_per_packet(185) == 14
    assert P.records_per_packet(247) == 19
    for mtu in (23, 100, 185, 247, 517):
        assert P.HEADER_SIZE + P.records_per_packet(mtu) * P.RECORD_SIZE <= mtu - 3


def test_advertising_fits_31_bytes_and_names_the_service():
    adv = P.advertising_payload("KMC-0042", P.uuid_le(P.KMC_SERVICE_UUID))
    assert len(adv) <= 31
    assert P.uuid_le(P.KMC_SERVICE_UUID) in adv and b"KMC-0042" in adv
    assert P.uuid_le(P.KMC_SERVICE_UUID)[-1] == 0x7A  # little-endian: first byte last


def test_scan_response_is_the_service_data_with_one_status_byte():
    """docs/protocol.md, Advertising: length 18, AD type 0x21, the KMC UUID, the status byte."""
    uuid = bytes.fromhex("736e73636d6bc3a04d4b1e5c01006b7a")  # 7a6b0001-..., least first
    assert P.uuid_le(P.KMC_SERVICE_UUID) == uuid
    assert P.scan_response(0) == b"\x12\x21" + uuid + b"\x00"
    assert P.scan_response(P.VISIT_NOW) == b"\x12\x21" + uuid + b"\x01"
    assert P.VISIT_NOW == 1 and len(P.scan_response(0)) == 19 <= 31


def test_epochs():
    # this port counts from 1970, the ESP32 from 2000: the protocol always uses 2000
    assert PORT_EPOCH_OFFSET == P.EPOCH_2000_UNIX == 946684800
    c = Clock(lambda: T + P.EPOCH_2000_UNIX + 0.7)
    assert c.now() == T and not c.is_set
    c.set(T + 3600)
    assert c.now() == T + 3600 and c.is_set


def test_fake_clock():
    c = FakeClock(T)
    c.advance(10)
    assert c.now() == T + 10


def test_command_parser_reads_each_argument():
    assert P.parse_command(b"\x01" + struct.pack("<I", T), True) == (1, P.RESULT_OK, T)
    assert P.parse_command(b"\x02" + struct.pack("<I", 0xFFFFFFFF), True) == (2, 0, 0xFFFFFFFF)
    assert P.parse_command(b"\x03" + struct.pack("<H", 2000), True) == (3, 0, 2000)
    assert P.parse_command(b"\x04\x0a", True) == (4, P.RESULT_OK, 10)


def test_command_parser_limits():
    clock = P.OP_SET_CLOCK
    assert P.parse_command(b"\x01" + struct.pack("<I", 631152000), True) == (clock, 0, 631152000)
    assert P.parse_command(b"\x01" + struct.pack("<I", 631151999), True) == (clock, 2, None)
    for ms, result in ((249, 2), (250, 0), (60000, 0), (60001, 2), (0, 2), (0xFFFF, 2)):
        got = P.parse_command(b"\x03" + struct.pack("<H", ms), True)
        assert got == (3, result, ms if result == 0 else None), (ms, got)


def test_command_parser_refuses_bad_lengths_unknown_ops_and_unsecured_links():
    for cmd in (b"\x01", b"\x01\x00\x00\x00", b"\x01" + bytes(5), b"\x02" + bytes(3)):
        assert P.parse_command(cmd, True) == (cmd[0], P.RESULT_BAD_LENGTH, None), cmd
    for cmd in (b"\x03\x00", b"\x03" + bytes(3), b"\x04", b"\x04\x01\x02"):
        assert P.parse_command(cmd, True) == (cmd[0], P.RESULT_BAD_LENGTH, None), cmd
    for cmd in (b"", b"\x00", b"\x05\x01", b"\x80\x02\x00", b"\xff" + bytes(4)):
        op = cmd[0] if cmd else 0
        assert P.parse_command(cmd, True) == (op, P.RESULT_UNKNOWN_OP, None), cmd
    for cmd in (b"\x02" + bytes(4), b"\x01", b"\x09", b""):
        op = cmd[0] if cmd else 0
        assert P.parse_command(cmd, False) == (op, P.RESULT_NOT_BONDED, None), cmd


def test_status_packs_into_its_buffer():
    buf = bytearray(b"\xee" * P.STATUS_SIZE)
    assert P.pack_status(buf, (0, 1, 2), 5, 4, T, None, 0x1F, 100, 60000) is None
    assert len(buf) == P.STATUS_SIZE == struct.calcsize(P.STATUS_FMT)
    v = struct.unpack(P.STATUS_FMT, buf)
    assert v == (P.VERSION, 0, 1, 2, 5, 4, T, 0, 0x1F, 100, 60000, 0), v
    P.pack_status(buf, (0, 1, 0), 0, -1, 12, 3.91, 0, 0, 1000)  # empty store: newest = -1
    v = struct.unpack(P.STATUS_FMT, buf)
    assert v[5] == 0xFFFFFFFF and v[7] == 3910 and v[6] == 12, v


def test_float_11073():
    assert P.ieee11073_float(-1.5) == struct.pack("<I", 0xFE000000 | (-150 & 0xFFFFFF))


run(globals())
