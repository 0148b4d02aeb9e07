# The GATT server: services, advertising, commands, and resume with zero loss, no duplicates.
# Notifications are also written to $KMC_FW_TMP/ble/notifications.hex for the host decoder.
# heap: 1M (the stand-in keeps every notification it is given, ~400 packets of 236 B in the
# two-hour resume test, for the host decoder; the firmware's own heap: test_memory.py, 140K)
import gc
import json
import struct
from array import array

import protocol as P
from bluetooth import BLE, GATEWAY
from bonds import Bonds
from golden_cases import ANSWERS
from mptest import run, tmpdir
from strapkit import PASSKEY, T0, gateway_connects, make_strap, run_seconds


def strap_with_ble(name, **cfg):
    ble = BLE()
    strap, parts, clock = make_strap(name, ble, **cfg)
    return strap, parts, clock, ble


def received(ble, handle):
    """Decode every measurement notification so far: the sequence numbers, in an array (4 B
    each, not a tuple each), every record's time checked to be T0 + its seq on the way."""
    out = array("I")
    for _, h, data in ble.notified:
        if h != handle:
            continue
        version, kind, count, _, first = struct.unpack_from(P.HEADER_FMT, data, 0)
        assert version == 1 and kind == 1 and len(data) == 8 + 12 * count
        for k in range(count):
            assert struct.unpack_from("<I", data, 8 + 12 * k)[0] == T0 + first + k
            out.append(first + k)
    return out


def consecutive(seqs, start=0):
    """seqs is start, start + 1, ... (without a list of them all to compare with)."""
    for k, s in enumerate(seqs):
        if s != start + k:
            return False
    return True


def control(ble, strap, payload):
    """Write the control point; return the strap's response (samples may follow it)."""
    ble.central_write(strap.ble.h_ctrl, payload)
    n = len(ble.notified)
    strap.ble.pump(max_packets=0)
    answers = [data for _, h, data in ble.notified[n:] if h == strap.ble.h_ctrl]
    assert len(answers) == 1, answers
    return answers[0]


def test_services_and_advertising():
    strap, _, _, ble = strap_with_ble("b1", strap_id="KMC-0042")
    uuids = [u.value for u in ble.uuids.values()]
    for u in (
        P.MEASUREMENT_UUID,
        P.CONTROL_UUID,
        P.STATUS_UUID,
        0x2A1C,
        0x2A1D,
        0x2A19,
        0x2A29,
        0x2A24,
        0x2A25,
        0x2A26,
    ):
        assert u in uuids, u
    assert ble.values[ble.handle_of(0x2A25)] == b"KMC-0042"
    assert ble.values[ble.handle_of(0x2A1D)] == b"\x02"  # body
    adv = ble.advertised[-1][1]
    assert P.uuid_le(P.KMC_SERVICE_UUID) in adv and b"KMC-0042" in adv and len(adv) <= 31
    assert ble.advertised[-1][2] == P.scan_response(0)  # nothing to tell yet


def test_nothing_is_sent_until_the_central_asks():
    strap, _, clock, ble = strap_with_ble("b2")
    run_seconds(strap, clock, 30)
    gateway_connects(ble, strap)
    assert strap.ble.pump() == 0


def test_resume_after_disconnect_loses_nothing_and_repeats_nothing():
    strap, _, clock, ble = strap_with_ble("b3", flush_every=60)
    meas = strap.ble.h_meas
    run_seconds(strap, clock, 500)  # 500 s before the gateway first connects
    gateway_connects(ble, strap)
    ble.central_mtu(185)
    assert control(ble, strap, b"\x02" + struct.pack("<I", 0)) == P.response(2, 0)
    strap.ble.pump(max_packets=10)  # 140 samples, then the link drops
    got = received(ble, meas)
    assert len(got) == 140 and consecutive(got)
    ble.central_disconnect()
    strap.ble.pump()
    assert len(ble.advertised) == 2  # advertising again
    run_seconds(strap, clock, 7200)  # two hours without a gateway
    gateway_connects(ble, strap)
    ble.central_mtu(247)
    last = got[-1]
    control(ble, strap, b"\x02" + struct.pack("<I", last + 1))
    while True:  # sampling goes on while the backlog drains
        strap.ble.pump(max_packets=50)
        if strap.ble.cursor > strap.store.newest():
            break
        run_seconds(strap, clock, 1)
    got = received(ble, meas)  # each record's time T0 + seq: checked there
    assert consecutive(got) and len(got) == strap.store.next_seq
    dump(ble, meas)


def dump(ble, handle):
    path = tmpdir("ble") + "/notifications.hex"
    with open(path, "w") as f:
        for _, h, data in ble.notified:
            if h == handle:
                f.write("".join("%02x" % b for b in data) + "\n")


def test_full_controller_queue_loses_nothing():
    strap, _, clock, ble = strap_with_ble("b4")
    run_seconds(strap, clock, 100)
    gateway_connects(ble, strap)
    control(ble, strap, b"\x02" + struct.pack("<I", 0))
    ble.queue_full = 3
    for _ in range(100):  # the BLE task retries every 100 ms
        strap.ble.pump(max_packets=4)
        if strap.ble.cursor > strap.store.newest():
            break
    seqs = received(ble, strap.ble.h_meas)
    assert len(seqs) == 100 and consecutive(seqs) and strap.ble.errors >= 1


def test_resume_from_before_the_oldest_starts_at_the_oldest():
    strap, _, clock, ble = strap_with_ble("b5", flush_every=60, segment_samples=100, max_segments=2)
    run_seconds(strap, clock, 500)
    gateway_connects(ble, strap)
    control(ble, strap, b"\x02" + struct.pack("<I", 5))
    while strap.ble.pump():
        pass
    seqs = received(ble, strap.ble.h_meas)
    assert seqs[0] == strap.store.oldest() and seqs[-1] == 499


def test_set_clock_interval_identify_and_errors():
    strap, _, clock, ble = strap_with_ble("b6")
    gateway_connects(ble, strap)
    t = T0 + 86400
    assert control(ble, strap, b"\x01" + struct.pack("<I", t)) == P.response(1, P.RESULT_OK)
    assert clock.is_set and clock.now() == t
    strap.sampler.sample()
    buf = bytearray(12)
    strap.store.read_into(0, 1, buf)
    t_rec, _, _, flags, _, _ = P.unpack_record(buf, 0)
    assert t_rec == t and flags & P.FLAG_CLOCK_SET
    # a host that sends Unix-epoch seconds of 1970 by mistake (or 0) is refused
    assert control(ble, strap, b"\x01" + struct.pack("<I", 12)) == P.response(1, P.RESULT_BAD_VALUE)
    assert control(ble, strap, b"\x01\x00") == P.response(1, P.RESULT_BAD_LENGTH)
    assert control(ble, strap, b"\x03" + struct.pack("<H", 2000)) == P.response(3, P.RESULT_OK)
    assert strap.cfg["interval_ms"] == 2000 and strap.alarm.period_s == 2
    assert control(ble, strap, b"\x03" + struct.pack("<H", 100)) == P.response(
        3, P.RESULT_BAD_VALUE
    )
    assert control(ble, strap, b"\x04\x05") == P.response(4, P.RESULT_OK)
    assert control(ble, strap, b"\x09") == P.response(9, P.RESULT_UNKNOWN_OP)
    assert control(ble, strap, b"") == P.response(0, P.RESULT_UNKNOWN_OP)


def test_the_strap_answers_each_command_with_its_golden_vector():
    with open("../../golden/protocol_v1.json") as f:
        golden = json.loads(f.read())
    for k, (name, cmd, secure) in enumerate(ANSWERS):
        strap, _, _, ble = strap_with_ble("g%d" % k)
        if secure:
            assert gateway_connects(ble, strap)
            got = control(ble, strap, cmd)
        else:  # the stack refuses the write; should it let one through, the strap answers
            ble.central_connect()
            n = len(ble.notified)
            strap.ble._command(cmd)
            got = [data for _, h, data in ble.notified[n:] if h == strap.ble.h_ctrl]
            assert len(got) == 1, got
            got = got[0]
        assert "".join("%02x" % b for b in got) == golden[name], name


def test_status_battery_and_health_thermometer():
    strap, _, clock, ble = strap_with_ble("b7")
    run_seconds(strap, clock, 10)
    gateway_connects(ble, strap)
    strap.ble.publish_status()
    v = struct.unpack(P.STATUS_FMT, ble.values[strap.ble.h_status])
    assert v[0] == 1 and v[4] == 0 and v[5] == 9 and v[7] == 3910 and v[10] == 1000
    assert v[8] & P.HEALTH_INFANT and v[8] & P.HEALTH_OUTER and not v[8] & P.HEALTH_CLOCK
    assert ble.values[strap.ble.h_batt] == bytes((71,))
    _, h, data = ble.indicated[-1]
    assert h == strap.ble.h_temp and data == P.temperature_measurement(36.8)


# -- advertising: VISIT_NOW in the scan response, for a gateway that visits straps in turns


def advertised_status(ble):
    """The status byte of the scan response on the air (the last gap_advertise)."""
    resp = ble.advertised[-1][2]
    assert resp[:18] == P.scan_response(0)[:18] and len(resp) == 19, resp
    return resp[-1]


def visit(ble, strap):
    """A gateway visit: secured link, RESUME_FROM the next sample, disconnect."""
    assert gateway_connects(ble, strap)
    seq = strap.store.newest() + 1
    assert control(ble, strap, b"\x02" + struct.pack("<I", seq)) == P.response(2, P.RESULT_OK)
    ble.central_disconnect()
    strap.ble.pump()


def worn_strap(name, **cfg):
    """A strap put on the baby (worn 0 -> 1: news), then visited: nothing to tell."""
    strap, parts, clock, ble = strap_with_ble(name, **cfg)
    run_seconds(strap, clock, 5)
    parts.put_on()
    run_seconds(strap, clock, 5)
    strap.ble.pump()
    assert advertised_status(ble) == P.VISIT_NOW  # put on: the gateway should know
    visit(ble, strap)
    assert advertised_status(ble) == 0
    return strap, parts, clock, ble


def test_a_cold_alarm_re_advertises_visit_now_until_it_is_over_and_a_gateway_has_been():
    strap, parts, clock, ble = worn_strap("v1", settle_s=0)
    n = len(ble.advertised)
    run_seconds(strap, clock, 30)
    strap.ble.pump()
    assert len(ble.advertised) == n  # nothing new: the advert stays as it is
    parts.infant.temp_c = 35.6
    run_seconds(strap, clock, 61)
    assert strap.alarm.active and len(ble.advertised) == n
    strap.ble.pump()  # the BLE task sees it within 100 ms
    assert len(ble.advertised) == n + 1 and advertised_status(ble) == P.VISIT_NOW
    assert ble.advertised[-1][1] == ble.advertised[0][1]  # the name and UUID, unchanged
    visit(ble, strap)
    assert advertised_status(ble) == P.VISIT_NOW  # the alarm is still on
    parts.infant.temp_c = 36.8
    run_seconds(strap, clock, 61)
    assert not strap.alarm.active
    strap.ble.pump()
    assert advertised_status(ble) == P.VISIT_NOW  # it is over: that too is news
    visit(ble, strap)
    assert advertised_status(ble) == 0


def test_taken_off_keeps_visit_now_until_a_secured_resume():
    strap, parts, clock, ble = worn_strap("v2")
    parts.worn.value = 600  # taken off the baby (worn 1 -> 0)
    run_seconds(strap, clock, 1)
    strap.ble.pump()
    assert advertised_status(ble) == P.VISIT_NOW
    n = len(ble.advertised)
    parts.put_on()  # put back on before any gateway came: still news, not re-advertised
    run_seconds(strap, clock, 120)
    strap.ble.pump()
    assert advertised_status(ble) == P.VISIT_NOW and len(ble.advertised) == n
    # a stranger (no bond) connecting and being dropped clears nothing
    ble.central_connect(1, STRANGER)
    ble.central_starts_pairing(1)
    strap.ble.pump(max_packets=0)
    ble.central_enters_passkey(PASSKEY, 1, STRANGER)
    strap.ble.pump(max_packets=0)
    assert ble.disconnected == [1]
    ble.central_disconnect(1)
    strap.ble.pump()
    assert advertised_status(ble) == P.VISIT_NOW
    # the gateway connects but has not resumed yet: the news is not taken in
    assert gateway_connects(ble, strap)
    control(ble, strap, b"\x01" + struct.pack("<I", T0 + 86400))
    ble.central_disconnect()
    strap.ble.pump()
    assert advertised_status(ble) == P.VISIT_NOW
    visit(ble, strap)
    assert advertised_status(ble) == 0


def test_no_re_advertising_while_connected():
    strap, parts, clock, ble = worn_strap("v3")
    assert gateway_connects(ble, strap)
    control(ble, strap, b"\x02" + struct.pack("<I", strap.store.newest() + 1))
    n = len(ble.advertised)
    parts.worn.value = 600  # taken off during the visit
    run_seconds(strap, clock, 3)
    for _ in range(5):
        strap.ble.pump()
    assert len(ble.advertised) == n and strap.ble.advert_status() == P.VISIT_NOW
    ble.central_disconnect()
    strap.ble.pump()  # a change during a visit is flagged: the strap cannot know it was seen
    assert len(ble.advertised) == n + 1 and advertised_status(ble) == P.VISIT_NOW


def test_the_ble_task_allocates_nothing_when_the_status_has_not_changed():
    strap, parts, clock, ble = worn_strap("v4")
    pump = strap.ble.pump
    n = len(ble.advertised)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(100):
        pump()
    used = gc.mem_alloc() - before
    gc.enable()
    assert used == 0 and len(ble.advertised) == n, used


# -- security: LE Secure Connections with the label passkey, one bonded gateway

STRANGER = b"\x12\x34\x56\x78\x9a\xbc"


def samples_sent(ble, strap):
    return len(received(ble, strap.ble.h_meas))


def test_commissioning_pairs_with_the_label_passkey_and_bonds():
    strap, _, clock, ble = strap_with_ble("s1")
    run_seconds(strap, clock, 20)
    assert strap.ble.bonds.is_open()
    assert gateway_connects(ble, strap) and strap.ble.secure
    ble.central_mtu(247)
    assert not strap.ble.bonds.is_open() and strap.ble.bonds.knows(0, GATEWAY)
    assert control(ble, strap, b"\x02" + struct.pack("<I", 0)) == P.response(2, P.RESULT_OK)
    strap.ble.pump()
    assert samples_sent(ble, strap) == 20


def test_wrong_passkey_gets_no_bond_and_no_data():
    strap, _, clock, ble = strap_with_ble("s2")
    run_seconds(strap, clock, 20)
    ble.central_connect()
    ble.central_starts_pairing()
    strap.ble.pump(max_packets=0)
    assert ble.passkeys[0] == PASSKEY
    assert not ble.central_enters_passkey(123456)
    assert strap.ble.bonds.is_open() and not strap.ble.secure
    assert not ble.central_write(strap.ble.h_ctrl, b"\x02" + struct.pack("<I", 0))  # ATT refuses
    strap.ble.pump()
    assert samples_sent(ble, strap) == 0 and ble.att_errors == 1


def test_a_command_on_an_unsecured_link_is_refused_by_the_strap_too():
    """Defence in depth: should the stack let a write through, the strap still refuses it."""
    strap, _, clock, ble = strap_with_ble("s3")
    run_seconds(strap, clock, 20)
    ble.central_connect()
    assert strap.ble._command(b"\x02" + struct.pack("<I", 0)) == P.RESULT_NOT_BONDED
    assert strap.ble.cursor is None
    strap.ble.pump()
    assert samples_sent(ble, strap) == 0
    strap.ble.publish_status()
    assert ble.indicated == []  # not even the temperature


def test_a_second_central_is_refused_once_bonded_even_with_the_passkey():
    strap, _, clock, ble = strap_with_ble("s4")
    run_seconds(strap, clock, 20)
    assert gateway_connects(ble, strap)
    ble.central_disconnect()
    strap.ble.pump()
    ble.central_connect(1, STRANGER)
    ble.central_starts_pairing(1)
    strap.ble.pump(max_packets=0)
    # a bonded strap pairs with nobody: it does not show its passkey and ends the link
    assert 1 not in ble.passkeys and ble.disconnected == [1]
    assert not ble.central_enters_passkey(PASSKEY, 1, STRANGER)  # knowing the label is no use
    strap.ble.pump(max_packets=0)
    assert not strap.ble.secure and strap.ble.refused == 1
    assert not strap.ble.bonds.knows(0, STRANGER)
    assert strap.ble._command(b"\x02" + struct.pack("<I", 0)) == P.RESULT_NOT_BONDED
    strap.ble.pump()
    assert samples_sent(ble, strap) == 0


def test_the_bond_survives_a_reboot_and_a_stranger_cannot_encrypt():
    strap, _, clock, ble = strap_with_ble("s5")
    run_seconds(strap, clock, 20)
    assert gateway_connects(ble, strap)
    strap.store.flush()
    ble2 = BLE()  # power cycle: a new stack, the same flash
    strap2, _, clock2 = make_strap("s5", ble2, keep=True)
    assert not strap2.ble.bonds.is_open()
    assert not ble2.central_encrypts(0, STRANGER)  # no key for it: the link ends
    assert gateway_connects(ble2, strap2) and strap2.ble.secure
    assert control(ble2, strap2, b"\x02" + struct.pack("<I", 0)) == P.response(2, 0)


def test_a_strap_without_a_passkey_cannot_be_paired():
    strap, _, clock, ble = strap_with_ble("s6", passkey=-1)
    ble.central_connect()
    ble.central_starts_pairing()
    strap.ble.pump(max_packets=0)
    assert 0 not in ble.passkeys and ble.disconnected == [0]


def test_a_central_that_never_secures_its_link_is_dropped_after_30_s():
    """A phone that connects and idles must not keep the strap from its gateway."""
    ms = [0]
    ble = BLE()
    strap, _, clock = make_strap("s8", ble, link_ms=lambda: ms[0])
    run_seconds(strap, clock, 5)
    ble.central_connect(3, STRANGER)
    ms[0] = 29000
    strap.ble.pump()
    assert ble.disconnected == []
    ms[0] = 30500
    strap.ble.pump()
    assert ble.disconnected == [3] and strap.ble.refused == 1
    # the bonded gateway, securing its link at once, is never dropped
    ble.central_disconnect(3)
    assert gateway_connects(ble, strap)
    ms[0] = 100000
    strap.ble.pump()
    assert ble.disconnected == [3] and strap.ble.secure


def test_a_corrupt_bonds_file_is_kept_and_commissioning_reopens():
    path = tmpdir("s7") + "/bonds.json"
    with open(path, "w") as f:
        f.write("[[2, 'zz'")
    notes = []
    bonds = Bonds(path, notes.append)
    assert bonds.is_open() and "corrupt" in notes[0]
    with open(path + ".bad") as f:
        assert f.read() == "[[2, 'zz'"


run(globals())
