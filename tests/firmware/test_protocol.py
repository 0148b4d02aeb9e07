# The strap's side of the BLE protocol, and the golden vectors the host decodes too.
import json
import struct

import protocol as P
from clock import PORT_EPOCH_OFFSET, Clock, FakeClock
from golden_cases import SAMPLES, T, cases
from mptest import run


def test_encoder_still_gives_the_golden_bytes():
    with open("../golden/protocol_v1.json") as f:
        golden = json.loads(f.read())
    mine = dict(cases())
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


def test_float_11073():
    assert P.ieee11073_float(-1.5) == struct.pack("<I", 0xFE000000 | (-150 & 0xFFFFFF))


run(globals())
