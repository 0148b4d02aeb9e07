# Stand-in for MicroPython's `bluetooth` module (tests only): a GATT server that records what
# the firmware does, and test hooks that play the central (connect, write, MTU, disconnect).
import struct

GATEWAY = b"\xf0\xf0\xf0\xf0\xf0\xf0"  # a central's address, as IRQs give it
LOOP_GUARD = 100  # turns of a stack loop that would never end on the board
_WRITE_AUTHENTICATED = 0x2000


class UUID:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, UUID) and self.value == other.value

    def __repr__(self):
        return "UUID(%r)" % (self.value,)


class BLE:
    def __init__(self):
        self._active = False
        self._config = {"mtu": 23, "gap_name": "", "mac": (0, b"\x24\x0a\xc4\x00\x00\x01")}
        self._irq = None
        self.values = {}
        self.uuids = {}  # handle -> characteristic UUID
        self.notified = []  # (conn, handle, bytes)
        self.indicated = []
        self.advertised = []  # (interval_us, adv_data, resp_data) of each gap_advertise
        self.queue_full = 0  # the next n notifications fail as with a full controller queue
        self.flags = {}  # handle -> characteristic flags
        self.authenticated = set()  # connections encrypted with an authenticated key
        self.passkeys = {}  # conn -> the passkey the application gave to show
        self.disconnected = []  # connections the application ended
        self.att_errors = 0
        self.peers = {}  # conn -> the central's address
        self.repeat_pairings = 0  # BLE_GAP_EVENT_REPEAT_PAIRING events
        self.deletes = []  # the peer keys ble_store_util_delete_peer was run for
        self.overflows = 0  # BLE_STORE_EVENT_OVERFLOW events
        self.terminating = []  # connections ble_gap_unpair terminates

    def active(self, state=None):
        if state is not None:
            self._active = state
        return self._active

    def config(self, *args, **kwargs):
        if args:
            return self._config[args[0]]
        self._config.update(kwargs)

    def irq(self, handler):
        self._irq = handler

    def gatts_register_services(self, services):
        handle = 1
        out = []
        for _svc_uuid, chars in services:
            handles = []
            handle += 1
            for char_uuid, flags in chars:
                handle += 1
                self.uuids[handle] = char_uuid
                self.flags[handle] = flags
                self.values[handle] = b""
                handles.append(handle)
                handle += 1
            out.append(tuple(handles))
        return tuple(out)

    def gatts_write(self, handle, data):
        self.values[handle] = bytes(data)

    def gatts_read(self, handle):
        return self.values[handle]

    def gatts_set_buffer(self, handle, size, append=False):
        pass

    def gatts_notify(self, conn, handle, data=None):
        if self.queue_full:
            self.queue_full -= 1
            raise OSError(12)  # ENOMEM
        self.notified.append((conn, handle, bytes(self.values[handle] if data is None else data)))

    def gatts_indicate(self, conn, handle, data=None):
        self.indicated.append((conn, handle, bytes(self.values[handle] if data is None else data)))

    def gap_advertise(self, interval_us, adv_data=None, *, resp_data=None, connectable=True):
        self.advertised.append((interval_us, adv_data, resp_data))

    def gap_passkey(self, conn, action, passkey):
        self.passkeys[conn] = passkey

    def gap_disconnect(self, conn):
        self.disconnected.append(conn)
        self.authenticated.discard(conn)

    # -- the central's side (and the stack's security manager), for tests
    #
    # The security manager runs the store calls as MicroPython's NimBLE glue and NimBLE do
    # (extmod/nimble/modbluetooth_nimble.c; nimble/host/src/ble_sm.c, ble_store.c,
    # ble_store_util.c, ble_gap.c), loops included: a loop the application's answers would
    # keep going forever raises (the BLE host would hang) after LOOP_GUARD turns.

    def central_connect(self, conn=0, addr=GATEWAY):
        self.authenticated.discard(conn)
        self.peers[conn] = addr
        self._irq(1, (conn, 0, addr))

    def central_disconnect(self, conn=0):
        self.authenticated.discard(conn)
        self.peers.pop(conn, None)
        self._irq(2, (conn, 0, b"\x00" * 6))

    def central_starts_pairing(self, conn=0):
        """A Pairing Request. The stack first checks for a bond with this peer (repeat
        pairing); then LE Secure Connections, passkey entry: it asks the application for the
        passkey to display (the strap answers from its task with gap_passkey)."""
        self._chk_repeat_pairing(conn)
        self._irq(31, (conn, 3, 0))

    def central_enters_passkey(self, passkey, conn=0, addr=None):
        """The central types `passkey`: on a match the stack stores both sides' keys (through the
        application) and reports an authenticated link; on a mismatch pairing fails."""
        if self.passkeys.get(conn) != passkey or conn not in self.peers:
            return False
        self._paired(conn, 1)
        return True

    def central_pairs_just_works(self, conn=0):
        """A central without input or output pairs: no passkey, an unauthenticated key."""
        self._chk_repeat_pairing(conn)
        if conn in self.peers:
            self._paired(conn, 0)

    def central_encrypts(self, conn=0, addr=GATEWAY):
        """A bonded central reconnects: the stack looks its key up (GET_SECRET); without one
        the encryption fails and the link ends."""
        if self._irq(29, (2, 0, sec_key(addr))) is None:
            self.central_disconnect(conn)
            return False
        self.authenticated.add(conn)
        self._irq(28, (conn, 1, 1, 1, 16))
        return True

    def _paired(self, conn, authenticated):
        """ble_sm_process_result at the end of pairing: the encryption event first (`bonded` is
        the pairing's bonding flag: the keys are not stored yet), then ble_sm_persist_keys (our
        keys, then the peer's; the results are not looked at). A connection ble_gap_unpair
        terminated ends after that."""
        key = sec_key(self.peers[conn])
        self.authenticated.add(conn)
        self._irq(28, (conn, 1, authenticated, 1, 16))
        self._store_write(1, key, key + b"our-ltk")
        self._store_write(2, key, key + b"peer-ltk")
        while self.terminating:
            ended = self.terminating.pop(0)
            if ended in self.peers:
                self.central_disconnect(ended)

    def _chk_repeat_pairing(self, conn):
        """ble_sm_chk_repeat_pairing: while the peer's keys are found, raise the repeat
        pairing event; MicroPython's handler deletes the peer and answers RETRY, always."""
        key = sec_key(self.peers[conn])
        turns = 0
        while self._irq(29, (2, 0, key)) is not None:
            turns = _guard(turns, "ble_sm_chk_repeat_pairing")
            self.repeat_pairings += 1
            self._delete_peer(key)

    def _delete_peer(self, key):
        """ble_store_util_delete_peer: our keys, the peer's (CCCDs: MicroPython's glue answers
        ENOENT itself, no IRQ)."""
        self.deletes.append(key)
        for sec_type in (1, 2):
            turns = 0
            while self._irq(30, (sec_type, key, None)):  # ble_store_util_delete_all
                turns = _guard(turns, "ble_store_util_delete_all")

    def _store_write(self, sec_type, key, value):
        """ble_store_write: a refused write (BLE_HS_ESTORE_CAP) raises the overflow event;
        ble_store_util_status_rr unpairs the oldest bonded peer and the write is tried again,
        until it is stored or no bonded peer is left to unpair."""
        turns = 0
        while not self._irq(30, (sec_type, key, value)):
            turns = _guard(turns, "ble_store_write overflow")
            self.overflows += 1
            oldest = self._irq(29, (2, 0, None))  # ble_store_util_bonded_peers: by index
            if oldest is None:
                return False  # BLE_HS_ENOENT: nobody to unpair, the write fails
            peer = bytes(oldest[:7])  # ble_store_value_sec begins with peer_addr
            for conn, addr in self.peers.items():  # ble_gap_unpair ends its connection
                if sec_key(addr) == peer:
                    self.terminating.append(conn)
            self._delete_peer(peer)
        return True

    def central_mtu(self, mtu, conn=0):
        self._irq(21, (conn, mtu))

    def central_write(self, handle, data, conn=0):
        """False (ATT insufficient authentication, no IRQ) when the characteristic needs an
        authenticated link and this one is not."""
        if self.flags.get(handle, 0) & _WRITE_AUTHENTICATED and conn not in self.authenticated:
            self.att_errors += 1
            return False
        self.values[handle] = bytes(data)
        self._irq(3, (conn, handle))
        return True

    def handle_of(self, uuid_value):
        for handle, uuid in self.uuids.items():
            if uuid.value == uuid_value:
                return handle
        raise KeyError(uuid_value)


def sec_key(addr):
    """The key of a security record: ble_addr_t, type then the address least significant
    first (IRQ addresses are most significant first)."""
    return b"\x00" + bytes(reversed(addr))


def _guard(turns, loop):
    if turns >= LOOP_GUARD:
        raise AssertionError("the BLE host would hang: %s never ends" % loop)
    return turns + 1


def u32(v):
    return struct.pack("<I", v)
