# The strap's own hypothermia alarm: it works with no gateway at all.
# Raised after `after_s` of infant temperature below `below_c` while the strap is worn and
# its sensor has settled (`settle_s` after being put on); cleared after `after_s` at or above
# below_c + hysteresis. While raised, the LED blinks and the buzzer beeps (200 ms every 2 s).


class ColdAlarm:
    def __init__(
        self,
        led=None,
        buzzer=None,
        below_c=36.5,
        hysteresis_c=0.1,
        after_s=60,
        settle_s=300,
        period_s=1,
    ):
        self.led = led
        self.buzzer = buzzer
        self.below_c = below_c
        self.hysteresis_c = hysteresis_c
        self.after_s = after_s
        self.settle_s = settle_s
        self.period_s = period_s  # a sample stands for one period: 60 samples at 1 Hz = 60 s
        self.active = False
        self._cold_since = None
        self._warm_since = None
        self._worn_since = None
        self._identify_until = 0

    def update(self, t, infant_c, worn):
        """Feed one sample (device time in s); return whether the alarm is raised."""
        if not worn:
            self._worn_since = None
            self._cold_since = self._warm_since = None
            self.active = False  # a strap off the baby reads room air: no cold alarm
            return False
        if self._worn_since is None:
            self._worn_since = t
        if infant_c is None or t - self._worn_since < self.settle_s:
            self._cold_since = self._warm_since = None
            return self.active
        if infant_c < self.below_c:
            self._warm_since = None
            if self._cold_since is None:
                self._cold_since = t
            if t - self._cold_since + self.period_s >= self.after_s:
                self.active = True
        else:
            self._cold_since = None
            if infant_c >= self.below_c + self.hysteresis_c:
                if self._warm_since is None:
                    self._warm_since = t
                if t - self._warm_since + self.period_s >= self.after_s:
                    self.active = False
            else:
                self._warm_since = None
        return self.active

    def identify(self, until_ms):
        """Blink (no sound) until the given ticks_ms, so a nurse can find the strap."""
        self._identify_until = until_ms

    def drive(self, now_ms):
        """Set the LED and buzzer for this moment (called every ~100 ms by the alarm task)."""
        phase = now_ms % 2000
        beep = self.active and phase < 200
        blink = beep or (now_ms < self._identify_until and phase < 1000)
        if self.led is not None:
            self.led.value(1 if blink else 0)
        if self.buzzer is not None:
            self.buzzer.value(1 if beep else 0)
