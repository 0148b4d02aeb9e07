# Optional LIS3DH accelerometer: trunk tilt from upright (0 = upright on the chest, 90 = lying).
# The strap's y axis runs head-to-feet along the baby's trunk.
import math

from micropython import const

REG_WHO_AM_I = const(0x0F)
WHO_AM_I = const(0x33)
REG_CTRL1 = const(0x20)
REG_OUT_X_L = const(0x28)


class LIS3DH:
    def __init__(self, i2c, address=0x18):
        self.i2c = i2c
        self.address = address
        self._buf = bytearray(6)
        self.ok = False
        self.init()

    def init(self):
        try:
            if self.i2c.readfrom_mem(self.address, REG_WHO_AM_I, 1)[0] != WHO_AM_I:
                self.ok = False
                return False
            self.i2c.writeto_mem(self.address, REG_CTRL1, b"\x27")  # 10 Hz, x/y/z on
            self.ok = True
        except OSError:
            self.ok = False
        return self.ok

    def tilt_deg(self):
        """Angle between the trunk axis and vertical, in degrees, or None."""
        if not self.ok and not self.init():
            return None
        try:
            self.i2c.readfrom_mem_into(self.address, REG_OUT_X_L | 0x80, self._buf)
        except OSError:
            self.ok = False
            return None
        b = self._buf
        x = _s16(b[0] | b[1] << 8)
        y = _s16(b[2] | b[3] << 8)
        z = _s16(b[4] | b[5] << 8)
        if x == 0 and y == 0 and z == 0:
            return None
        # acos(|y| / norm) as atan2: three float results (boxed on the ESP32) instead of four
        return math.degrees(math.atan2(math.sqrt(x * x + z * z), abs(y)))


def _s16(v):
    return v - 0x10000 if v & 0x8000 else v
