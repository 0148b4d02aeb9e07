# Capacitive pads on ESP32 touch pins: `contact` (outer face, caregiver skin) and `worn`
# (inner face, the baby). Each pad keeps its own baseline (the untouched reading): it follows
# the reading at once towards "untouched" and slowly otherwise, so a strap switched on while
# worn still calibrates once taken off. Touch is decided with hysteresis around the baseline.
# Integer arithmetic only (baseline in 1/16 counts): no heap allocation per reading.


class Pad:
    """One pad: raw reading in, 0/1 decision out."""

    def __init__(self, touch, on_ratio=0.10, off_ratio=0.05, direction=-1, baseline=0, slow=64):
        self.touch = touch  # machine.TouchPad (or anything with read())
        self.on_permille = int(on_ratio * 1000)
        self.off_permille = int(off_ratio * 1000)
        self.direction = direction  # -1: touch lowers the reading (ESP32), +1: raises it
        self._base16 = int(baseline) * 16  # 0: take the first reading
        self.slow = slow
        self.touched = 0
        self.raw = 0
        self.ok = True

    @property
    def baseline(self):
        return self._base16 // 16

    def update(self):
        """Read the pad; return 1 when touched. A failing read keeps the last decision."""
        try:
            raw = self.touch.read()
        except (OSError, ValueError):
            self.ok = False
            return self.touched
        self.ok = True
        self.raw = raw
        raw16 = raw * 16
        if self._base16 <= 0:
            self._base16 = raw16
        # distance from the baseline, positive in the "touched" direction
        moved = (self._base16 - raw16) if self.direction < 0 else (raw16 - self._base16)
        if moved < 0:  # more untouched than the baseline: follow at once
            self._base16 = raw16
            moved = 0
        permille = moved * 1000 // self._base16 if self._base16 else 0
        if self.touched:
            if permille < self.off_permille:
                self.touched = 0
        elif permille >= self.on_permille:
            self.touched = 1
        if not self.touched:  # drift (temperature, humidity) is followed slowly
            self._base16 += (raw16 - self._base16) // self.slow
        return self.touched
