# The strap's local cold alarm: persistence, hysteresis, strap off, settling, identify.
from alarm import ColdAlarm
from machine import Pin
from mptest import run


def feed(alarm, t0, seconds, temp, worn=1):
    state = None
    for k in range(seconds):
        state = alarm.update(t0 + k, temp, worn)
    return state


def settled():
    a = ColdAlarm(Pin(2), Pin(25), settle_s=300)
    feed(a, 0, 400, 36.9)
    return a


def test_sustained_cold_raises_after_60_s():
    a = settled()
    assert feed(a, 400, 59, 36.3) is False
    assert a.update(459, 36.3, 1) is True


def test_brief_dip_does_not_raise():
    a = settled()
    feed(a, 400, 50, 36.3)
    feed(a, 450, 5, 36.7)
    assert feed(a, 455, 50, 36.3) is False


def test_clears_only_60_s_above_threshold_plus_hysteresis():
    a = settled()
    feed(a, 400, 120, 36.0)
    assert feed(a, 520, 300, 36.55) is True  # inside the hysteresis margin: stays raised
    assert feed(a, 820, 59, 36.6) is True
    assert a.update(879, 36.6, 1) is False


def test_no_alarm_while_off_or_settling():
    a = ColdAlarm(settle_s=300)
    assert feed(a, 0, 600, 25.0, worn=0) is False  # room air
    assert feed(a, 600, 299, 35.0) is False  # settling after being put on
    assert feed(a, 899, 70, 35.0) is True  # still cold once settled
    assert a.update(1000, 30.0, 0) is False  # taken off: silent


def test_missing_reading_does_not_raise():
    a = settled()
    assert feed(a, 400, 300, None) is False


def put_back_on(alarm, tau_s, level_c, seconds=1200, room_c=26.0):
    """Strap put on at t=1000 with a first-order sensor; return the first alarm time or None."""
    import math

    feed(alarm, 0, 1000, 25.0, worn=0)
    for k in range(seconds):
        reading = level_c + (room_c - level_c) * math.exp(-k / tau_s)
        if alarm.update(1000 + k, round(reading, 2), 1):
            return k
    return None


def test_a_slow_sensor_does_not_sound_the_alarm():
    assert put_back_on(ColdAlarm(), tau_s=150, level_c=36.8) is None


def test_a_cold_baby_sounds_it_once_the_reading_levels_off():
    k = put_back_on(ColdAlarm(), tau_s=60, level_c=35.6)
    assert k is not None and 360 <= k <= 600, k


def test_drive_beeps_when_raised_and_blinks_to_identify():
    led, buzzer = Pin(2), Pin(25)
    a = ColdAlarm(led, buzzer, settle_s=0)
    a.drive(100)
    assert led.value() == 0 and buzzer.value() == 0
    a.identify(5000)
    a.drive(2100)
    assert led.value() == 1 and buzzer.value() == 0  # identify: light, no sound
    a.drive(6100)
    assert led.value() == 0
    feed(a, 0, 61, 35.0)
    assert a.priority == "high"
    a.drive(8100)
    assert led.value() == 1 and buzzer.value() == 1
    a.drive(8500)  # the LED flashes at 2 Hz
    assert led.value() == 0
    sounded = ""
    for now in range(8100, 16100, 100):  # one repeat of the burst, every 100 ms as the task does
        a.drive(now)
        sounded += "x" if buzzer.value() else "."
    assert sounded.rstrip(".") == "x.x.x...x.x.....x.x.x...x.x"  # 10 pulses
    assert sounded.count("x") == 10
    a.drive(16100)  # and again
    assert buzzer.value() == 1


def test_the_priority_is_medium_for_cold_stress_and_high_below_36():
    """docs/alarms.md: cold stress (below 36.5 C) medium; moderate hypothermia (below 36.0 C
    for the same persistence) high; back to medium once the reading climbs to 36.1 C."""
    led, buzzer = Pin(2), Pin(25)
    a = ColdAlarm(led, buzzer, settle_s=0)
    feed(a, 0, 61, 36.2)
    assert a.active and a.priority == "medium"
    sounded = ""
    for now in range(0, 15000, 100):
        a.drive(now)
        sounded += "x" if buzzer.value() else "."
    assert sounded.rstrip(".") == "xx.xx.xx"  # 3 pulses, every 15 s
    feed(a, 61, 59, 35.9)
    assert a.priority == "medium"  # not yet 60 s below 36.0
    feed(a, 120, 2, 35.9)
    assert a.priority == "high"
    a.drive(15050)  # raised to high: the high burst starts at once, not mid-pattern
    assert buzzer.value() == 1
    a.drive(15150)
    assert buzzer.value() == 0
    feed(a, 122, 5, 36.05)
    assert a.priority == "high"  # within the hysteresis
    feed(a, 127, 1, 36.2)
    assert a.priority == "medium" and a.active
    feed(a, 128, 61, 36.8)
    assert not a.active and a.priority is None
    a.drive(20000)
    assert buzzer.value() == 0 and led.value() == 0


def test_a_baby_already_very_cold_raises_high_at_once():
    a = ColdAlarm(settle_s=0)
    feed(a, 0, 61, 35.0)
    assert a.active and a.priority == "high"


def test_identify_ends_and_stays_ended_across_the_ticks_wrap():
    """ticks_ms wraps every 12.4 days: an old identify deadline must not blink again."""
    led = Pin(2)
    a = ColdAlarm(led)
    wrap = 1 << 30
    a.identify(wrap - 1000 + 10000)  # 10 s, asked 1 s before the wrap: ends 9 s after it
    a.drive(wrap - 1000)
    assert led.value() == 1
    a.drive(4000)  # after the wrap, still within the 10 s
    assert led.value() == 1
    a.drive(9100)
    assert led.value() == 0
    a.identify(5000)
    a.drive(6000)
    for now in (8000, 100000, wrap - 2000):
        a.drive(now)
        assert led.value() == 0, now
    a.drive(1000)  # the next wrap: the old deadline 5000 is not in the future again
    assert led.value() == 0


run(globals())
