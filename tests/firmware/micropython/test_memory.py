# The firmware's heap on the target: what importing it keeps, and the live heap through 24 h of
# sampling at 1 Hz (simulated time) with the BLE task busy (a gateway that drains the store,
# drops the link for half of every hour and resumes from flash) and the flash store rotating.
# run.sh gives the interpreter the heap that stands for the ESP32's (firmware/README.md, Memory
# budget); this test fails with MemoryError if the firmware does not fit it. It prints the
# figures the README quotes ("memory: ..." lines).
import gc

gc.collect()
AT_START = gc.mem_alloc()  # the interpreter and the test runner (mptest)
import bluetooth  # noqa: E402 - the stand-ins (C modules on the board, Python here)
import machine  # noqa: E402, F401

gc.collect()
STAND_INS = gc.mem_alloc() - AT_START
import app  # noqa: E402, F401 - every module the strap imports at boot (board.py: the pins)
import battery  # noqa: E402, F401
import ble_service  # noqa: E402, F401
import bonds  # noqa: E402, F401
import lis3dh  # noqa: E402, F401
import pads  # noqa: E402, F401
import tmp117  # noqa: E402, F401

gc.collect()
IMPORT = gc.mem_alloc() - AT_START - STAND_INS
import struct  # noqa: E402

import protocol as P  # noqa: E402
from mptest import run  # noqa: E402
from strapkit import gateway_connects, make_strap  # noqa: E402

gc.collect()
HARNESS = gc.mem_alloc() - AT_START - STAND_INS - IMPORT  # strapkit and this test's imports
NOT_FIRMWARE = AT_START + STAND_INS + HARNESS

DAY = 86400
OUTAGE = (1800, 3600)  # the gateway is away from :30 to :00 of every hour
SEGMENTS = 36  # as deployed (config.DEFAULTS); 600 samples each, so they wrap 4 times a day
SEGMENT_SAMPLES = 600


def mem(name, value):
    print("memory: %s %d B" % (name, value))


class Central(bluetooth.BLE):
    """The stand-in stack with a gateway that takes in every notification and keeps only the
    next sequence number it expects (the stand-in's own lists would fill the heap in a day)."""

    def __init__(self):
        bluetooth.BLE.__init__(self)
        self.h_meas = None
        self.expected = 0
        self.records = 0
        self.bad = 0

    def gatts_notify(self, conn, handle, data=None):
        if handle != self.h_meas:
            return bluetooth.BLE.gatts_notify(self, conn, handle, data)
        _, _, count, _, first = struct.unpack_from(P.HEADER_FMT, data, 0)
        if first != self.expected or len(data) != P.HEADER_SIZE + count * P.RECORD_SIZE:
            self.bad += 1
        self.expected = first + count
        self.records += count

    def gatts_indicate(self, conn, handle, data=None):
        pass  # the Health Thermometer value every 2 s: seen, not kept

    def drop_history(self):
        self.notified = []  # control point answers, kept by the stand-in
        self.advertised = self.advertised[-1:]


def test_a_day_of_sampling_with_the_ble_task_busy_and_the_store_rotating():
    ble = Central()
    strap, parts, clock = make_strap(
        "mem", ble, segment_samples=SEGMENT_SAMPLES, max_segments=SEGMENTS
    )
    ble.h_meas = strap.ble.h_meas
    parts.put_on(contact=True)
    gc.collect()
    built = gc.mem_alloc()
    mem("imported, firmware", IMPORT)
    mem("strap built, firmware (imports, store RAM ring, BLE, alarm)", built - NOT_FIRMWARE)
    pump, sample, advance = strap.ble.pump, strap.sampler.sample, clock.advance
    peak = built  # the live heap (after a collection), every 10 s and after each drain
    peak_raw = 0  # gc.mem_alloc() before each collection: live + garbage since the last one
    at_6h = None
    connected = False
    for t in range(DAY):
        away = OUTAGE[0] <= t % 3600 < OUTAGE[1]
        if connected and away:
            ble.central_disconnect()
            connected = False
        elif not connected and not away:
            gateway_connects(ble, strap)
            ble.central_mtu(247)
            ble.central_write(strap.ble.h_ctrl, b"\x02" + struct.pack("<I", ble.expected))
            connected = True
        sample()
        for tick in range(10):  # the BLE task: every 100 ms, the status every 2 s
            pump()
            if tick == 0 and t % 2 == 0:
                strap.ble.publish_status()
        advance(1)
        if t % 10 == 9:
            raw = gc.mem_alloc()
            if raw > peak_raw:
                peak_raw = raw
            gc.collect()
            live = gc.mem_alloc()
            if live > peak:
                peak = live
            if t == 6 * 3600 - 1:
                at_6h = live
        if t % 3600 == 0:
            ble.drop_history()
    gc.collect()
    end = gc.mem_alloc()
    gateway_connects(ble, strap)  # the last half hour, from flash
    ble.central_write(strap.ble.h_ctrl, b"\x02" + struct.pack("<I", ble.expected))
    while pump():
        pass
    gc.collect()
    peak = max(peak, gc.mem_alloc())
    mem("live peak over 24 h, firmware", peak - NOT_FIRMWARE)
    mem("live at 6 h (store full), firmware", at_6h - NOT_FIRMWARE)
    mem("live at 24 h, firmware", end - NOT_FIRMWARE)
    mem("mem_alloc peak before a collection, all", peak_raw)
    mem("not the firmware: interpreter + test runner", AT_START)
    mem("not the firmware: stand-in machine + bluetooth", STAND_INS)
    mem("not the firmware: strapkit, struct", HARNESS)
    print(
        "memory: heap %d B, free at the end %d B" % (gc.mem_alloc() + gc.mem_free(), gc.mem_free())
    )
    # the day went as a day goes: every sample reached the gateway once, in order
    assert strap.store.next_seq == DAY and strap.sampler.samples == DAY
    assert ble.bad == 0 and ble.records == DAY and ble.expected == DAY, (ble.bad, ble.records)
    # the store wrapped: 36 files, the oldest 6 h ago
    assert strap.store.oldest() == DAY - SEGMENTS * SEGMENT_SAMPLES
    assert len(strap.store.segments) == SEGMENTS and not strap.restarts
    # no leak: once the store is full, the live heap stays where it was (within a few blocks)
    assert end - at_6h <= 256, (at_6h, end)


run(globals())
