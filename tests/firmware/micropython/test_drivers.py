# Drivers against simulated parts: TMP117, touch pads, battery ADC, LIS3DH.
from battery import Battery, percent
from lis3dh import LIS3DH
from machine import ADC, I2C, SimLIS3DH, SimTMP117, TouchPad
from mptest import run
from pads import Pad
from tmp117 import TMP117


def test_tmp117_checks_id_configures_averaging_and_converts():
    dev = SimTMP117(36.57)
    t = TMP117(I2C(devices={0x48: dev}), 0x48)
    assert t.ok and dev.config == 0x0220  # continuous, 1 s cycle, 8 averaged conversions
    assert abs(t.read_c() - 36.57) < 0.0079  # 1/128 C resolution
    dev.temp_c = -10.25
    assert t.read_c() == -10.25


def test_tmp117_calibration_offset():
    t = TMP117(I2C(devices={0x48: SimTMP117(36.5)}), 0x48, offset_c=-0.06)
    assert abs(t.read_c() - 36.44) < 0.0079


def test_tmp117_wrong_part_or_no_answer_reads_none():
    assert not TMP117(I2C(devices={0x48: SimTMP117(device_id=0x0118)}), 0x48).ok
    t = TMP117(I2C(devices={}), 0x48)
    assert not t.ok and t.read_c() is None and t.errors == 1


def test_tmp117_failure_then_recovery():
    dev = SimTMP117(36.6)
    t = TMP117(I2C(devices={0x48: dev}), 0x48)
    dev.fail = True
    assert t.read_c() is None and not t.ok
    assert t.read_c() is None
    dev.fail = False
    assert abs(t.read_c() - 36.6) < 0.01 and t.ok  # re-initialised on the next read


def test_pad_calibrates_and_uses_hysteresis():
    tp = TouchPad(None, 600)
    pad = Pad(tp, on_ratio=0.10, off_ratio=0.05, direction=-1)
    assert pad.update() == 0 and pad.baseline == 600
    tp.value = 545  # 9 % down: not yet
    assert pad.update() == 0
    tp.value = 530  # 11.7 % down: touched
    assert pad.update() == 1
    tp.value = 565  # 5.8 % down: still touched (hysteresis)
    assert pad.update() == 1
    tp.value = 575  # 4.2 % down: released
    assert pad.update() == 0


def test_pad_switched_on_while_touched_recalibrates_when_released():
    tp = TouchPad(None, 400)  # worn at power-on: the first reading is a touched one
    pad = Pad(tp)
    assert pad.update() == 0
    tp.value = 600  # taken off: baseline follows up at once
    assert pad.update() == 0 and pad.baseline == 600
    tp.value = 400
    assert pad.update() == 1


def test_pad_baseline_follows_slow_drift_but_not_touch():
    tp = TouchPad(None, 600)
    pad = Pad(tp, slow=16)
    pad.update()
    for _ in range(100):  # humidity: reading drifts down 3 % slowly
        tp.value = 582
        pad.update()
    assert 581 < pad.baseline < 584 and pad.touched == 0
    tp.value = 500
    for _ in range(100):
        assert pad.update() == 1
    assert pad.baseline > 580  # held while touched


def test_pad_direction_plus_for_s3_boards():
    tp = TouchPad(None, 20000)
    pad = Pad(tp, direction=1)
    pad.update()
    tp.value = 23000
    assert pad.update() == 1


def test_pad_read_failure_keeps_last_decision():
    tp = TouchPad(None, 600)
    pad = Pad(tp)
    pad.update()
    tp.value = 500
    assert pad.update() == 1
    tp.fail = True
    assert pad.update() == 1 and not pad.ok


def test_battery_voltage_and_percent():
    adc = ADC(None, uv=1955000)
    b = Battery(adc)
    assert abs(b.read_v() - 3.91) < 1e-6
    assert percent(3.91) == 71 and percent(4.25) == 100 and percent(3.2) == 0 and percent(None) == 0
    adc.uv = 100000  # 0.2 V: a broken divider, not an empty cell
    assert b.read_v() is None and not b.ok


def test_lis3dh_tilt():
    dev = SimLIS3DH(0, 16000, 0)  # gravity along the trunk axis: upright
    acc = LIS3DH(I2C(devices={0x18: dev}))
    assert acc.ok and dev.ctrl1 == 0x27
    assert acc.tilt_deg() < 0.5
    dev.xyz = [0, 0, 16000]  # lying on the back
    assert abs(acc.tilt_deg() - 90) < 0.5
    dev.xyz = [0, 11314, 11314]  # 45 degrees reclined
    assert abs(acc.tilt_deg() - 45) < 0.5
    dev.fail = True
    assert acc.tilt_deg() is None


run(globals())
