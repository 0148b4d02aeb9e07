# A strap on simulated parts, for the firmware tests.
import config
from app import Strap
from battery import Battery
from clock import FakeClock
from lis3dh import LIS3DH
from machine import ADC, I2C, Pin, SimLIS3DH, SimTMP117, TouchPad
from mptest import tmpdir
from pads import Pad
from sampler import Sensors
from tmp117 import TMP117

T0 = 837000000
PASSKEY = 314159  # the label passkey of the test straps


class Parts:
    def __init__(self):
        self.infant = SimTMP117(36.8)
        self.outer = SimTMP117(30.0)
        self.accel = SimLIS3DH()
        self.i2c = I2C(devices={0x48: self.infant, 0x49: self.outer, 0x18: self.accel})
        self.contact = TouchPad(None, 600)
        self.worn = TouchPad(None, 600)
        self.adc = ADC(None, uv=1955000)
        self.led = Pin(2)
        self.buzzer = Pin(25)

    def sensors(self):
        return Sensors(
            TMP117(self.i2c, 0x48),
            TMP117(self.i2c, 0x49),
            Pad(self.contact),
            Pad(self.worn),
            Battery(self.adc),
            LIS3DH(self.i2c, 0x18),
        )

    def put_on(self, contact=False):
        self.worn.value = 450
        self.contact.value = 450 if contact else 600


def make_strap(name, ble=None, keep=False, link_ms=None, **cfg_values):
    cfg = dict(config.DEFAULTS)
    cfg["passkey"] = PASSKEY
    cfg.update(cfg_values)
    parts = Parts()
    clock = FakeClock(T0)
    strap = Strap(
        cfg,
        parts.sensors(),
        ble,
        parts.led,
        parts.buzzer,
        clock=clock,
        data_root=tmpdir(name, keep),
        link_ms=link_ms,
    )
    return strap, parts, clock


def run_seconds(strap, clock, seconds):
    for _ in range(seconds):
        strap.sampler.sample()
        clock.advance(1)


def gateway_connects(ble, strap, conn=0, passkey=PASSKEY):
    """The gateway connects and secures the link as the stack would: LE Secure Connections
    pairing with the label passkey the first time, encryption with the bond afterwards."""
    from bluetooth import GATEWAY

    ble.central_connect(conn)
    if strap.ble.bonds.knows(0, GATEWAY):
        return ble.central_encrypts(conn)
    ble.central_starts_pairing(conn)
    strap.ble.pump(max_packets=0)  # the BLE task answers with the passkey to show
    return ble.central_enters_passkey(passkey, conn)
