# Stand-in for the ESP32's `machine` module under the MicroPython unix port (tests only).
# The parts behave like the hardware the firmware drives: simulated TMP117 and LIS3DH on an
# I2C bus, touch pads, an ADC, pins that remember their values, a watchdog that counts feeds.
import struct


class Pin:
    IN = 1
    OUT = 3

    def __init__(self, id, mode=None, value=None):
        self.id = id
        self.mode = mode
        self._value = value or 0
        self.history = []

    def value(self, v=None):
        if v is None:
            return self._value
        if v != self._value:
            self.history.append(v)
        self._value = v


class SimTMP117:
    """A TMP117: device id register, config register, temperature in 1/128 C steps."""

    def __init__(self, temp_c=36.8, device_id=0x0117):
        self.temp_c = temp_c
        self.device_id = device_id
        self.config = 0x0000  # not the reset value, so the test sees the driver write it
        self.fail = False

    def read(self, reg):
        if self.fail:
            raise OSError(19)  # ENODEV: no ACK
        if reg == 0x0F:
            return struct.pack(">H", self.device_id)
        if reg == 0x01:
            return struct.pack(">H", self.config)
        if reg == 0x00:
            return struct.pack(">h", int(round(self.temp_c / 0.0078125)))
        raise OSError(5)

    def write(self, reg, data):
        if self.fail:
            raise OSError(19)
        if reg == 0x01:
            self.config = struct.unpack(">H", data)[0]


class SimLIS3DH:
    def __init__(self, x=0, y=16000, z=0):
        self.xyz = [x, y, z]
        self.ctrl1 = 0
        self.fail = False

    def read(self, reg):
        if self.fail:
            raise OSError(19)
        if reg == 0x0F:
            return b"\x33"
        if reg & 0x7F == 0x28:
            return struct.pack("<hhh", *self.xyz)
        raise OSError(5)

    def write(self, reg, data):
        if reg == 0x20:
            self.ctrl1 = data[0]


class I2C:
    def __init__(self, id=0, sda=None, scl=None, freq=400000, devices=None):
        self.devices = devices if devices is not None else {}

    def _dev(self, addr):
        dev = self.devices.get(addr)
        if dev is None:
            raise OSError(19)
        return dev

    def readfrom_mem_into(self, addr, reg, buf):
        data = self._dev(addr).read(reg)
        buf[: len(data)] = data[: len(buf)]

    def readfrom_mem(self, addr, reg, n):
        return self._dev(addr).read(reg)[:n]

    def writeto_mem(self, addr, reg, buf):
        self._dev(addr).write(reg, bytes(buf))


class TouchPad:
    def __init__(self, pin, value=600):
        self.pin = pin
        self.value = value
        self.fail = False

    def read(self):
        if self.fail:
            raise ValueError("touch read failed")
        return self.value


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin, uv=1950000):
        self.pin = pin
        self.uv = uv
        self.attenuation = None

    def atten(self, a):
        self.attenuation = a

    def read_uv(self):
        return self.uv


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


class RTC:
    now = None

    def datetime(self, t=None):
        if t is not None:
            RTC.now = t
        return RTC.now


def reset():
    raise SystemExit("machine.reset()")
