# The strap's own hypothermia alarm: it works with no gateway at all.
# Raised after `after_s` of infant temperature below `below_c` while the strap is worn and
# its sensor has settled; cleared after `after_s` at or above below_c + hysteresis.
# Its priority (docs/alarms.md): medium (cold stress), high once the reading has stayed below
# `high_below_c` (WHO moderate hypothermia) for `after_s`, medium again when it climbs back to
# high_below_c + hysteresis. While raised, the buzzer plays the priority's burst and the LED
# flashes at the priority's rate (SIGNALS, the same as the ward screen's: kmc_host.clinical).
# Settled, as on the gateway (docs/detector.md): `settle_s` after being put on, and then once
# the reading climbs less than `rise_c_per_min` over `rise_window_s` (a slow sensor still
# warming up is not a cold baby), at the latest `settle_max_s` after being put on.

from clock import ticks_diff

_HISTORY_STEP_S = 30  # one remembered reading per 30 s is enough for a 2 min climb

HIGH = "high"
MEDIUM = "medium"
# priority: (burst in 100 ms steps, x sounding, repeated every ms; LED period ms, LED on ms)
# IEC 60601-1-8: high 10 pulses, flashing 1.4-2.8 Hz; medium 3 pulses, 0.4-0.8 Hz; 20-60 % on
SIGNALS = {
    HIGH: ("x.x.x...x.x.....x.x.x...x.x", 8000, 500, 250),
    MEDIUM: ("xx.xx.xx", 15000, 1667, 834),
}


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
        settle_max_s=900,
        rise_c_per_min=0.03,
        rise_window_s=120,
        high_below_c=36.0,
    ):
        self.led = led
        self.buzzer = buzzer
        self.below_c = below_c
        self.hysteresis_c = hysteresis_c
        self.after_s = after_s
        self.settle_s = settle_s
        self.period_s = period_s  # a sample stands for one period: 60 samples at 1 Hz = 60 s
        self.high_below_c = high_below_c
        self.active = False
        self.priority = None  # HIGH or MEDIUM while active
        self._very_cold_since = None
        self._sounding_since = None  # ticks_ms the burst started from
        self._sounding = None  # the priority whose burst that is
        self._cold_since = None
        self._warm_since = None
        self.settle_max_s = settle_max_s
        self.rise_c_per_min = rise_c_per_min
        self.rise_window_s = rise_window_s
        self._worn_since = None
        self._settled = False
        self._history = []  # (t, reading) every _HISTORY_STEP_S while settling
        self._identify_until = None  # ticks_ms; None: not identifying

    def update(self, t, infant_c, worn):
        """Feed one sample (device time in s); return whether the alarm is raised."""
        active = self._update(t, infant_c, worn)
        # below high_below_c, counted as the cold time is (worn, settled, a reading)
        if self._cold_since is not None and infant_c < self.high_below_c:
            if self._very_cold_since is None:
                self._very_cold_since = t
        else:
            self._very_cold_since = None
        if not active:
            self.priority = None
            return False
        since = self._very_cold_since
        if since is not None and t - since + self.period_s >= self.after_s:
            self.priority = HIGH
        elif self.priority is None or (
            infant_c is not None and infant_c >= self.high_below_c + self.hysteresis_c
        ):
            self.priority = MEDIUM
        return True

    def _update(self, t, infant_c, worn):
        if not worn:
            self._worn_since = None
            self._cold_since = self._warm_since = None
            self.active = False  # a strap off the baby reads room air: no cold alarm
            return False
        if self._worn_since is None:
            self._worn_since = t
            self._settled = False
            self._history = []
        if infant_c is None or not self._settling_done(t, infant_c):
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

    def _settling_done(self, t, reading):
        if self._settled:
            return True
        hist = self._history
        if not hist or t - hist[-1][0] >= _HISTORY_STEP_S:
            hist.append((t, reading))
            if len(hist) > self.rise_window_s // _HISTORY_STEP_S + 1:
                hist.pop(0)
        elapsed = t - self._worn_since
        if elapsed < self.settle_s:
            return False
        if elapsed < self.settle_max_s:
            ref_t, ref_v = hist[0]
            window_ok = t - ref_t >= self.rise_window_s - _HISTORY_STEP_S and t > ref_t
            if window_ok and (reading - ref_v) * 60 / (t - ref_t) >= self.rise_c_per_min:
                return False  # still warming up: the sensor, not the baby
        self._settled = True
        return True

    def identify(self, until_ms):
        """Blink (no sound) until the given ticks_ms, so a nurse can find the strap."""
        self._identify_until = until_ms

    def drive(self, now_ms):
        """Set the LED and buzzer for this moment (called every ~100 ms by the alarm task):
        the burst of the alarm's priority from the moment it was raised, then every repeat."""
        beep = flash = False
        if self.active and self.priority is not None:
            pattern, repeat_ms, period_ms, on_ms = SIGNALS[self.priority]
            if self._sounding_since is None or self._sounding != self.priority:
                self._sounding_since = now_ms  # a new or changed priority: its burst from the start
                self._sounding = self.priority
            since = ticks_diff(now_ms, self._sounding_since)
            step = (since % repeat_ms) // 100
            beep = step < len(pattern) and pattern[step] == "x"
            flash = since % period_ms < on_ms
        else:
            self._sounding_since = self._sounding = None
        if self._identify_until is not None and ticks_diff(self._identify_until, now_ms) <= 0:
            self._identify_until = None  # done: a deadline left over would blink after a wrap
        blink = flash or (self._identify_until is not None and now_ms % 2000 < 1000)
        if self.led is not None:
            self.led.value(1 if blink else 0)
        if self.buzzer is not None:
            self.buzzer.value(1 if beep else 0)
