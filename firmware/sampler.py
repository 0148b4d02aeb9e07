# The sampler: one sample per interval from the sensors into the store, alarm updated.
# It never raises for a sensor fault: a failing sensor's field is marked missing in the record.
# Per sample it allocates FLOATS_PER_SAMPLE boxed floats and nothing else (the record is packed
# into one preallocated buffer with struct.pack_into): the readings are floats (C, V, degrees:
# the sensors' interface, which the emulated strap shares), and a float is a heap object on the
# ESP32 (MicroPython object representation A), 16 B there: 192 B a sample, one collection every
# few minutes at 1 Hz. tests/firmware/micropython/test_sampler.py counts them.
from protocol import (
    FLAG_ALARM,
    FLAG_CLOCK_SET,
    FLAG_CONTACT,
    FLAG_WORN,
    HEALTH_ACCEL,
    HEALTH_CLOCK,
    HEALTH_FLASH,
    HEALTH_INFANT,
    HEALTH_OUTER,
    RECORD_SIZE,
    pack_record,
)

# two temperatures (reading * LSB + offset: 2 each), the battery (microvolts * divider / 1e6:
# 2), the tilt (sqrt, atan2, degrees: 3), and packing them (protocol.centi x2, battery_code:
# 1 each)
FLOATS_PER_SAMPLE = 12


class Sensors:
    """The strap's sensors; tilt and battery may be None when not fitted."""

    def __init__(self, infant, outer, contact_pad, worn_pad, battery=None, accel=None):
        self.infant = infant
        self.outer = outer
        self.contact_pad = contact_pad
        self.worn_pad = worn_pad
        self.battery = battery
        self.accel = accel


class Sampler:
    def __init__(self, sensors, store, clock, alarm):
        self.sensors = sensors
        self.store = store
        self.clock = clock
        self.alarm = alarm
        self.record = bytearray(RECORD_SIZE)
        self.last_infant_c = None
        self.last_battery_v = None
        self.last_worn = None  # None until the first sample
        self.last_alarm = False
        # how often worn or the alarm has changed since boot: news for the gateway, which the
        # GATT server flags in its advertising (VISIT_NOW) until the gateway resumes; a count,
        # not a flag, so that a change the BLE task did not see in between is not lost
        self.changes = 0
        self.samples = 0

    def sample(self):
        """Take one sample now; return its sequence number."""
        s = self.sensors
        t = self.clock.now()
        infant_c = s.infant.read_c()
        outer_c = s.outer.read_c()
        contact = s.contact_pad.update()
        worn = s.worn_pad.update()
        battery_v = s.battery.read_v() if s.battery is not None else None
        tilt = s.accel.tilt_deg() if s.accel is not None else None
        alarm = self.alarm.update(t, infant_c, worn)
        flags = (FLAG_CONTACT if contact else 0) | (FLAG_WORN if worn else 0)
        if self.clock.is_set:
            flags |= FLAG_CLOCK_SET
        if alarm:
            flags |= FLAG_ALARM
        pack_record(self.record, 0, t, infant_c, outer_c, flags, battery_v, tilt)
        self.last_infant_c = infant_c
        self.last_battery_v = battery_v
        if worn != self.last_worn or alarm != self.last_alarm:
            if self.last_worn is not None:  # the first sample is where it starts, not a change
                self.changes += 1
            self.last_worn = worn
            self.last_alarm = alarm
        self.samples += 1
        return self.store.append(self.record)

    def health(self):
        """Sensor and clock health bits for the status characteristic."""
        s = self.sensors
        h = HEALTH_INFANT if s.infant.ok else 0
        h |= HEALTH_OUTER if s.outer.ok else 0
        h |= HEALTH_ACCEL if s.accel is not None and s.accel.ok else 0
        h |= HEALTH_CLOCK if self.clock.is_set else 0
        h |= HEALTH_FLASH if self.store.flash_ok else 0
        return h
