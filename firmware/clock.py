# Device time: seconds since 2000-01-01T00:00:00Z on every port.
# The ESP32 counts time.time() from 2000, the unix and WebAssembly ports from 1970; the gateway
# sets the clock over BLE (OP_SET_CLOCK) in the 2000 epoch, and every sample carries it.
import time

from protocol import EPOCH_2000_UNIX

# 0 on the ESP32 (epoch 2000), 946684800 where the port's epoch is 1970.
PORT_EPOCH_OFFSET = 0 if time.gmtime(0)[0] == 2000 else EPOCH_2000_UNIX

TICKS_PERIOD = 1 << 30  # MicroPython's ticks_ms wraps here: every 12.4 days of uptime


# 1 << 30 itself is not a small int on a 32-bit port (they end at 2**30 - 1): the arithmetic
# below keeps to these two, so the alarm task calling it every 50 ms allocates nothing
_TICKS_MASK = (1 << 30) - 1
_TICKS_HALF = 1 << 29


def ticks_diff(a, b):
    """a - b in ms for ticks_ms values across a wrap (as time.ticks_diff, which the emulator's
    CPython lacks); right while the two are less than 6.2 days apart."""
    d = (a - b) & _TICKS_MASK
    return d - _TICKS_MASK - 1 if d >= _TICKS_HALF else d


class Clock:
    """Wall clock in the 2000 epoch, settable without touching the port's RTC."""

    def __init__(self, time_fn=time.time):
        self._time = time_fn
        self.offset = 0
        self.is_set = False

    def now(self):
        return int(self._time()) - PORT_EPOCH_OFFSET + self.offset

    def set(self, t2000):
        self.offset = t2000 - (int(self._time()) - PORT_EPOCH_OFFSET)
        self.is_set = True
        try:  # keep the RTC right too, where there is one, so a soft reset keeps the time
            import machine

            tm = time.gmtime(t2000 + PORT_EPOCH_OFFSET)
            machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
            self.offset = t2000 - (int(self._time()) - PORT_EPOCH_OFFSET)
        except (ImportError, AttributeError, OSError):
            pass


class FakeClock(Clock):
    """A clock the tests advance by hand: hours of sampling in milliseconds."""

    def __init__(self, t2000=0):
        self.t = float(t2000)
        Clock.__init__(self, lambda: self.t + PORT_EPOCH_OFFSET)

    def now(self):
        # int(t) + offset, as Clock.now() with the port's epoch taken off again, but without
        # the sum above 2**30 that is a heap integer on a 32-bit port: no allocation, as with
        # time.time() (an int) on the ESP32
        return int(self.t) + self.offset

    def advance(self, seconds):
        self.t += seconds
