# The strap's hardware on an ESP32 (pin map: hardware/pinmap.md). Only this file names pins.
from battery import Battery
from lis3dh import LIS3DH
from machine import ADC, I2C, Pin, TouchPad
from pads import Pad
from sampler import Sensors
from tmp117 import TMP117

PIN_SDA = 21
PIN_SCL = 22
PIN_TOUCH_CONTACT = 4  # T0: outer pad, caregiver skin
PIN_TOUCH_WORN = 15  # T3: inner pad, the baby
PIN_BATTERY = 35  # ADC1_CH7, through a 1:2 divider
PIN_LED = 2
PIN_BUZZER = 25
ADDR_INFANT = 0x48  # TMP117 ADD0 to GND, inner face
ADDR_OUTER = 0x49  # TMP117 ADD0 to V+, outer face
ADDR_ACCEL = 0x18


def sensors(cfg):
    i2c = I2C(0, sda=Pin(PIN_SDA), scl=Pin(PIN_SCL), freq=400000)
    adc = ADC(Pin(PIN_BATTERY))
    adc.atten(ADC.ATTN_11DB)
    accel = LIS3DH(i2c, ADDR_ACCEL)
    return Sensors(
        TMP117(i2c, ADDR_INFANT, cfg["infant_offset_c"]),
        TMP117(i2c, ADDR_OUTER, cfg["outer_offset_c"]),
        Pad(
            TouchPad(Pin(PIN_TOUCH_CONTACT)),
            cfg["pad_on_ratio"],
            cfg["pad_off_ratio"],
            cfg["pad_direction"],
            cfg["contact_baseline"],
        ),
        Pad(
            TouchPad(Pin(PIN_TOUCH_WORN)),
            cfg["pad_on_ratio"],
            cfg["pad_off_ratio"],
            cfg["pad_direction"],
            cfg["worn_baseline"],
        ),
        Battery(adc),
        accel if accel.ok else None,  # optional part: absent on boards without it
    )


def alarm_pins():
    return Pin(PIN_LED, Pin.OUT, value=0), Pin(PIN_BUZZER, Pin.OUT, value=0)
