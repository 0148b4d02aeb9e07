# Stand-in for MicroPython's `bluetooth` module (tests only): a GATT server that records what
# the firmware does, and test hooks that play the central (connect, write, MTU, disconnect).
import struct


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
        self.advertised = []
        self.queue_full = 0  # the next n notifications fail as with a full controller queue

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
            for char_uuid, _flags in chars:
                handle += 1
                self.uuids[handle] = char_uuid
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

    def gap_advertise(self, interval_us, adv_data=None, resp_data=None, connectable=True):
        self.advertised.append((interval_us, adv_data))

    # -- the central's side, for tests

    def central_connect(self, conn=0):
        self._irq(1, (conn, 0, b"\x00" * 6))

    def central_disconnect(self, conn=0):
        self._irq(2, (conn, 0, b"\x00" * 6))

    def central_mtu(self, mtu, conn=0):
        self._irq(21, (conn, mtu))

    def central_write(self, handle, data, conn=0):
        self.values[handle] = bytes(data)
        self._irq(3, (conn, handle))

    def handle_of(self, uuid_value):
        for handle, uuid in self.uuids.items():
            if uuid.value == uuid_value:
                return handle
        raise KeyError(uuid_value)


def u32(v):
    return struct.pack("<I", v)
