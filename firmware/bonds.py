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
        """_IRQ_GET_SECRET: the value for `key`, or the index-th value of the type if no key."""
        n = 0
        for entry in self.entries:
            if entry[0] != sec_type:
                continue
            if key is None:
                if n == index:
                    return entry[2]
                n += 1
            elif entry[1] == bytes(key):
                return entry[2]
        return None

    def set(self, sec_type, key, value):
        """_IRQ_SET_SECRET: store (or delete, value None); refuse a new peer once bonded."""
        key = bytes(key)
        found = -1
        for i, entry in enumerate(self.entries):
            if entry[0] == sec_type and entry[1] == key:
                found = i
        if value is None:
            if found >= 0:
                self.entries.pop(found)
                self._save()
            return True
        if found < 0 and sec_type in (SEC_OURS, SEC_PEER) and not self.is_open():
            self.refused += 1
            self.log("bonds: refused a new bond (already bonded; forget-bonds to recommission)")
            return False
        if found < 0:
            self.entries.append((sec_type, key, bytes(value)))
        else:
            self.entries[found] = (sec_type, key, bytes(value))
        self._save()
        return True

    def _save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps([[e[0], _hex(e[1]), _hex(e[2])] for e in self.entries]))
        import os

        os.rename(tmp, self.path)  # atomic on littlefs: never a half-written bond
