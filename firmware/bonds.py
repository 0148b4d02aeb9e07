# The strap's bonds, and the pairing policy built on them.
#
# MicroPython's BLE stack asks the application to keep its security keys (`_IRQ_SET_SECRET`,
# `_IRQ_GET_SECRET`); we keep them in flash as JSON so a bond survives a reboot. A strap with
# no bond accepts one pairing: commissioning, LE Secure Connections with the passkey printed on
# its label. From then on only the bonded gateway gets an authenticated link; any other central
# is disconnected. To commission the strap anew (a new gateway), `kmc firmware forget-bonds`
# removes the file (`<data_root>/bonds.json`) over USB: physical access is the proof of
# authority.
#
# The bond cannot be undone over the air. MicroPython's NimBLE glue answers a pairing request
# from a bonded peer (BLE_GAP_EVENT_REPEAT_PAIRING) by deleting that peer's keys through
# `_IRQ_SET_SECRET` with value None and pairing again; NimBLE's store overflow handler
# (ble_store_util_status_rr -> ble_gap_unpair_oldest_peer) deletes the oldest bond the same way
# when a new one does not fit. Both keep asking until the keys are gone from `_IRQ_GET_SECRET`
# (ble_sm_chk_repeat_pairing, ble_store_util_delete_all, ble_store_write loop), so refusing the
# delete would hang the BLE host. Once bonded, a delete therefore only hides the entry from the
# stack for the rest of the connection (True once, then "not found"), it stays in flash and in
# RAM, and no key of any peer is written; `unhide()` (at disconnect) gives the gateway its keys
# back. The link that asked is not the gateway's (ble_service.py drops it). While no gateway is
# bonded (commissioning) deletes are real.
#
# Keys of the two security record types begin with the peer's address as the stack holds it
# (type byte, then the 6 address bytes least significant first); IRQ addresses are most
# significant first, hence the reversal in `knows`.
import json

from config import keep_bad

SEC_OURS = 1  # our keys for a peer (the stack's store object types)
SEC_PEER = 2  # the peer's keys
CCCD = 3  # subscriptions of a bonded peer


def _hex(data):
    return "".join("%02x" % b for b in data)


class Bonds:
    def __init__(self, path, log=print):
        self.path = path
        self.log = log
        self.entries = []  # (sec_type, key bytes, value bytes)
        self.refused = 0
        self.hidden = []  # (sec_type, key) the stack deleted during this connection
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return  # no bond yet: commissioning is open
        try:
            for sec_type, key, value in json.loads(text):
                self.entries.append((int(sec_type), bytes.fromhex(key), bytes.fromhex(value)))
        except (ValueError, TypeError):
            self.entries = []
            log("bonds: %s is corrupt, kept as %s.bad; commissioning is open" % (path, path))
            keep_bad(path, text)

    def is_open(self):
        """True while no gateway is bonded: the next authenticated pairing is accepted."""
        for entry in self.entries:
            if entry[0] == SEC_PEER:
                return False
        return True

    def knows(self, addr_type, addr):
        """Is the central at this address (from a connect IRQ) the bonded one?"""
        prefix = bytes((addr_type,)) + bytes(reversed(bytes(addr)))
        for entry in self.entries:
            if entry[0] == SEC_PEER and entry[1][:7] == prefix:
                return True
        return False

    def get(self, sec_type, index, key):
        """_IRQ_GET_SECRET: the value for `key`, or the index-th value of the type if no key;
        hidden entries (deleted by the stack during this connection) are not there."""
        n = 0
        for entry in self.entries:
            if entry[0] != sec_type or self._hidden(entry):
                continue
            if key is None:
                if n == index:
                    return entry[2]
                n += 1
            elif entry[1] == bytes(key):
                return entry[2]
        return None

    def set(self, sec_type, key, value):
        """_IRQ_SET_SECRET: store, or delete (value None). Once bonded no key is written and a
        delete hides the entry until `unhide()`. False means "not stored" to a write
        (BLE_HS_ESTORE_CAP) and "not found" to a delete (BLE_HS_ENOENT, which ends the
        stack's delete loops)."""
        key = bytes(key)
        found = -1
        for i, entry in enumerate(self.entries):
            if entry[0] == sec_type and entry[1] == key:
                found = i
        sec = sec_type in (SEC_OURS, SEC_PEER)
        if value is None:
            if found < 0 or self._hidden(self.entries[found]):
                return False
            if sec and not self.is_open():
                self.hidden.append((sec_type, key))
                self.log(
                    "bonds: the stack deleted the gateway's keys; kept (forget-bonds to recommission)"
                )
                return True
            self.entries.pop(found)
            self._save()
            return True
        if sec and not self.is_open():
            self.refused += 1
            self.log("bonds: refused a new bond (already bonded; forget-bonds to recommission)")
            return False
        if found < 0:
            self.entries.append((sec_type, key, bytes(value)))
        else:
            self.entries[found] = (sec_type, key, bytes(value))
        self._save()
        return True

    def hiding(self):
        """True once the stack has deleted a bond entry during this connection (a repeat
        pairing, or its overflow handler): this link is not encrypted with the bond."""
        return len(self.hidden) > 0

    def unhide(self):
        """The connection ended: the stack sees the gateway's keys again."""
        if self.hidden:
            self.hidden = []

    def _hidden(self, entry):
        for sec_type, key in self.hidden:
            if entry[0] == sec_type and entry[1] == key:
                return True
        return False

    def _save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps([[e[0], _hex(e[1]), _hex(e[2])] for e in self.entries]))
        import os

        os.rename(tmp, self.path)  # atomic on littlefs: never a half-written bond
