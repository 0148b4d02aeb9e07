# TMP117 digital temperature sensor (+-0.1 C from -20 to 50 C) over I2C.
# Continuous conversion, 8 averaged conversions per result, one result per second: ~16 uA,
# noise ~0.01 C. `offset_c` is the per-sensor correction from calibration (hardware/README.md).
# A sensor that does not answer or answers wrongly reads as None; the sampler carries on.
from micropython import const

REG_TEMP = const(0x00)
REG_CONFIG = const(0x01)
REG_DEVICE_ID = const(0x0F)
DEVICE_ID = const(0x0117)
LSB_C = 0.0078125
# MOD=00 continuous, CONV=100 (1 s cycle), AVG=01 (8 averaged conversions)
CONFIG_AVG8 = const(0x0220)


class TMP117:
    def __init__(self, i2c, address=0x48, offset_c=0.0):
        self.i2c = i2c
        self.address = address
        self.offset_c = offset_c
        self.ok = False
        self.errors = 0
        self._buf = bytearray(2)
        self.init()

    def init(self):
        """Check the device id and configure averaging; sets and returns `ok`."""
        try:
            self.i2c.readfrom_mem_into(self.address, REG_DEVICE_ID, self._buf)
            if ((self._buf[0] << 8) | self._buf[1]) & 0x0FFF != DEVICE_ID:
                self.ok = False
                return False
            self._buf[0] = CONFIG_AVG8 >> 8
            self._buf[1] = CONFIG_AVG8 & 0xFF
            self.i2c.writeto_mem(self.address, REG_CONFIG, self._buf)
            self.ok = True
        except OSError:
            self.ok = False
        return self.ok

    def read_c(self):
        """The latest temperature in C, or None (and `ok` False) when the sensor fails."""
        if not self.ok and not self.init():
            self.errors += 1
            return None
        try:
            self.i2c.readfrom_mem_into(self.address, REG_TEMP, self._buf)
        except OSError:
            self.ok = False
            self.errors += 1
            return None
        raw = (self._buf[0] << 8) | self._buf[1]
        if raw & 0x8000:
            raw -= 0x10000
        if raw == -32768:  # reset value: no conversion yet
            return None
        return raw * LSB_C + self.offset_c
