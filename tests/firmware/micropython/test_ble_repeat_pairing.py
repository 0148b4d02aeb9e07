# The bond cannot be wiped or taken over the air (issue 16 item 1). A central at the bonded
# gateway's address (it is on the air at every connection) but without its keys sends a
# Pairing Request: the stand-in's security manager runs what MicroPython's NimBLE glue and
# NimBLE run (stubs/bluetooth.py: repeat pairing deletes the peer and retries, a refused store
# write runs the overflow handler, which unpairs the oldest bonded peer), and raises where the
# BLE host would loop forever. The gateway's bond must stay on flash and in use, the host must
# not hang, the impostor must get nothing, and the gateway must then reconnect and drain.
# heap: 256K (a strap per test, and the stand-in keeps every notification)
import gc
import struct

import protocol as P
from bluetooth import BLE, GATEWAY, sec_key
from bonds import Bonds
from mptest import run
from strapkit import PASSKEY, gateway_connects, make_strap, run_seconds

STRANGER = b"\x12\x34\x56\x78\x9a\xbc"
ATTACKER = 1  # the impostor's connection


def bonded_strap(name, samples=20):
    """A strap commissioned to GATEWAY, `samples` samples taken, the gateway gone."""
    gc.collect()
    ble = BLE()
    strap, _, clock = make_strap(name, ble)
    run_seconds(strap, clock, samples)
    assert gateway_connects(ble, strap) and strap.ble.secure
    ble.central_disconnect()
    strap.ble.pump()
    bond = list(strap.ble.bonds.entries)
    assert len(bond) == 2  # our keys and the gateway's
    return strap, clock, ble, bond


def samples_sent(ble, strap):
    n = 0
    for _, h, data in ble.notified:
        if h == strap.ble.h_meas:
            n += data[2]  # the header's record count
    return n


def gets_nothing(strap, ble):
    """The impostor's link: no command obeyed (ATT refuses, so would the strap), no sample."""
    att = ble.att_errors
    assert not strap.ble.secure
    assert not ble.central_write(strap.ble.h_ctrl, b"\x02" + struct.pack("<I", 0), ATTACKER)
    assert ble.att_errors == att + 1
    assert strap.ble._command(b"\x02" + struct.pack("<I", 0)) == P.RESULT_NOT_BONDED
    strap.ble.publish_status()
    strap.ble.pump()
    assert samples_sent(ble, strap) == 0 and ble.indicated == []


def the_bond_is_kept(strap, bond):
    assert strap.ble.bonds.entries == bond  # in RAM
    assert Bonds(strap.ble.bonds.path).entries == bond  # and on flash: a reboot keeps it too


def the_gateway_reconnects_and_drains(strap, clock, ble, samples):
    """After the impostor: the gateway encrypts with its bond, resumes and gets every sample."""
    assert strap.ble.bonds.get(2, 0, sec_key(GATEWAY)) is not None  # visible to the stack again
    assert gateway_connects(ble, strap) and strap.ble.secure
    ble.central_write(strap.ble.h_ctrl, b"\x02" + struct.pack("<I", 0))
    strap.ble.pump(max_packets=100)
    assert samples_sent(ble, strap) == samples == strap.store.next_seq


def repeat_pairing(name, passkey):
    strap, clock, ble, bond = bonded_strap(name)
    ble.central_connect(ATTACKER, GATEWAY)  # the gateway's address, not its keys
    assert strap.ble.bonds.knows(0, GATEWAY)  # by address it looks like the gateway
    ble.central_starts_pairing(ATTACKER)  # raises if the repeat pairing never ends
    assert ble.repeat_pairings == 1 and ble.deletes == [sec_key(GATEWAY)]
    # the stack takes the bond for deleted; it is only hidden, and the strap pairs no more
    assert strap.ble.bonds.get(2, 0, sec_key(GATEWAY)) is None
    assert strap.ble.bonds.get(2, 0, None) is None  # nor found by index
    strap.ble.pump(max_packets=0)
    assert ATTACKER not in ble.passkeys and ble.disconnected == [ATTACKER]
    assert not ble.central_enters_passkey(passkey, ATTACKER)  # pairing cannot complete
    the_bond_is_kept(strap, bond)
    gets_nothing(strap, ble)
    ble.central_disconnect(ATTACKER)
    strap.ble.pump()
    the_bond_is_kept(strap, bond)
    the_gateway_reconnects_and_drains(strap, clock, ble, 20)


def test_a_repeat_pairing_at_the_gateways_address_without_the_passkey_keeps_the_bond():
    repeat_pairing("rp1", (PASSKEY + 1) % 1000000)


def test_a_repeat_pairing_at_the_gateways_address_with_the_label_passkey_gets_nothing():
    repeat_pairing("rp2", PASSKEY)


def test_a_just_works_repeat_pairing_runs_the_overflow_handler_and_gets_nothing():
    """No passkey to show: pairing completes, unauthenticated. Storing its keys is refused;
    NimBLE's overflow handler looks for a bonded peer to unpair and finds none visible."""
    strap, clock, ble, bond = bonded_strap("rp3")
    ble.central_connect(ATTACKER, GATEWAY)
    ble.central_pairs_just_works(ATTACKER)  # raises if a store loop never ends
    assert ble.repeat_pairings == 1 and ble.overflows == 2  # our keys, the peer's
    assert strap.ble.bonds.refused == 2
    strap.ble.pump(max_packets=0)
    assert ble.disconnected == [ATTACKER] and strap.ble.refused == 1
    the_bond_is_kept(strap, bond)
    gets_nothing(strap, ble)
    ble.central_disconnect(ATTACKER)
    the_gateway_reconnects_and_drains(strap, clock, ble, 20)


def test_a_strangers_bond_is_refused_and_the_overflow_handler_cannot_unpair_the_gateway():
    """A stranger's Just Works keys are refused: the overflow handler unpairs the oldest bonded
    peer, the gateway, which must survive, and the store loop must end."""
    strap, clock, ble, bond = bonded_strap("rp4")
    ble.central_connect(ATTACKER, STRANGER)
    ble.central_pairs_just_works(ATTACKER)
    assert ble.repeat_pairings == 0  # the stranger had no bond
    assert ble.deletes == [sec_key(GATEWAY)]  # ble_gap_unpair_oldest_peer, once
    # our keys: refused, the gateway unpaired (hidden), refused again, nobody left to unpair;
    # the peer's keys: refused, nobody to unpair
    assert ble.overflows == 3 and strap.ble.bonds.refused == 3
    strap.ble.pump(max_packets=0)
    assert ble.disconnected == [ATTACKER]
    the_bond_is_kept(strap, bond)
    gets_nothing(strap, ble)
    ble.central_disconnect(ATTACKER)
    the_gateway_reconnects_and_drains(strap, clock, ble, 20)


def test_a_delete_of_a_key_that_is_not_there_says_so():
    """NimBLE's ble_store_util_delete_all deletes until BLE_HS_ENOENT: True for a key that is
    not there (or no longer visible) would loop forever."""
    bonds = Bonds(bonded_strap("rp5")[0].ble.bonds.path)
    assert not bonds.set(2, sec_key(STRANGER), None)
    assert bonds.set(2, sec_key(GATEWAY), None)  # hidden, not deleted
    assert not bonds.set(2, sec_key(GATEWAY), None)  # the loop's next turn: not found
    assert len(bonds.entries) == 2 and bonds.hiding()
    bonds.unhide()
    assert bonds.get(2, 0, None) is not None and not bonds.hiding()


run(globals())
