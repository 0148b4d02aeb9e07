# Capacitive pads on ESP32 touch pins: `contact` (outer face, caregiver skin) and `worn`
# (inner face, the baby). Each pad keeps its own baseline (the untouched reading): it follows
# the reading quickly towards "untouched" and slowly otherwise, so a strap switched on while
# worn still calibrates once taken off. Touch is decided with hysteresis around the baseline.


class Pad:
    """One pad: raw reading in, 0/1 decision out."""

    def __init__(self, touch, on_ratio=0.10, off_ratio=0.05, direction=-1, baseline=0, slow=64):
        self.touch = touch  # machine.TouchPad (or anything with read())
        self.on_ratio = on_ratio
        self.off_ratio = off_ratio
        self.direction = direction  # -1: touch lowers the reading (ESP32), +1: raises it
        self.baseline = baseline  # 0: take the first reading
        self.slow = slow
        self.touched = 0
        self.raw = 0
        self.ok = True

    def update(self):
        """Read the pad; return 1 when touched. A failing read keeps the last decision."""
        try:
            raw = self.touch.read()
        except (OSError, ValueError):
            self.ok = False
            return self.touched
        self.ok = True
        self.raw = raw
        if self.baseline <= 0:
            self.baseline = raw
        # signed distance from the baseline, positive in the "touched" direction
        moved = (self.baseline - raw) if self.direction < 0 else (raw - self.baseline)
        if moved < 0:  # more untouched than the baseline: follow at once
            self.baseline = raw
            moved = 0
        ratio = moved / self.baseline if self.baseline else 0
        if self.touched:
            if ratio < self.off_ratio:
                self.touched = 0
        elif ratio >= self.on_ratio:
            self.touched = 1
        if not self.touched:  # drift (temperature, humidity) is followed slowly
            self.baseline += (raw - self.baseline) / self.slow
        return self.touched
