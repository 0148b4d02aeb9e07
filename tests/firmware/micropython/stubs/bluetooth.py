# Stand-in for MicroPython's `bluetooth` module (tests only): a GATT server that records what
# the firmware does, and test hooks that play the central (connect, write, MTU, disconnect).
import struct

GATEWAY = b"\xf0\xf0\xf0\xf0\xf0\xf0"  # a central's address, as IRQs give it
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

    def central_connect(self, conn=0, addr=GATEWAY):
        self.authenticated.discard(conn)
        self._irq(1, (conn, 0, addr))

    def central_disconnect(self, conn=0):
        self.authenticated.discard(conn)
        self._irq(2, (conn, 0, b"\x00" * 6))

    def central_starts_pairing(self, conn=0):
        """LE Secure Connections, passkey entry: the stack asks the application for the passkey
        to display (the strap answers from its task with gap_passkey)."""
        self._irq(31, (conn, 3, 0))

    def central_enters_passkey(self, passkey, conn=0, addr=GATEWAY):
        """The central types `passkey`: on a match the stack stores both sides' keys (through the
        application) and reports an authenticated, bonded link; on a mismatch pairing fails."""
        if self.passkeys.get(conn) != passkey:
            return False
        key = b"\x00" + bytes(reversed(addr))
        stored = self._irq(30, (1, key, b"our-ltk")) and self._irq(30, (2, key, b"peer-ltk"))
        self.authenticated.add(conn)
        self._irq(28, (conn, 1, 1, 1 if stored else 0, 16))
        return True

    def central_encrypts(self, conn=0, addr=GATEWAY):
        """A bonded central reconnects: the stack looks its key up (GET_SECRET); without one
        the encryption fails and the link ends."""
        key = b"\x00" + bytes(reversed(addr))
        if self._irq(29, (2, 0, key)) is None:
            self.central_disconnect(conn)
            return False
        self.authenticated.add(conn)
        self._irq(28, (conn, 1, 1, 1, 16))
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


def u32(v):
    return struct.pack("<I", v)
