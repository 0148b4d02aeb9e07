# Battery voltage through a 1:2 divider on an ADC pin, using the ESP32's calibrated read_uv().
_CURVE = (
    (3.30, 0),
    (3.50, 5),
    (3.60, 10),
    (3.70, 30),
    (3.75, 45),
    (3.80, 55),
    (3.90, 70),
    (4.00, 85),
    (4.10, 95),
    (4.20, 100),
)


class Battery:
    def __init__(self, adc, divider=2.0):
        self.adc = adc
        self.divider = divider
        self.ok = True

    def read_v(self):
        try:
            volts = self.adc.read_uv() * self.divider / 1000000
        except (OSError, ValueError):
            self.ok = False
            return None
        self.ok = 2.5 < volts < 4.6  # outside: divider or ADC fault
        return volts if self.ok else None


def percent(volts):
    """State of charge of a 1-cell LiPo from its resting voltage (piecewise linear)."""
    if volts is None:
        return 0
    if volts <= _CURVE[0][0]:
        return 0
    for k in range(1, len(_CURVE)):
        v1, p1 = _CURVE[k]
        if volts <= v1:
            v0, p0 = _CURVE[k - 1]
            return int(p0 + (p1 - p0) * (volts - v0) / (v1 - v0))
    return 100
