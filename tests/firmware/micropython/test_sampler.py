# Sampling: one record per interval, sequence numbers, failing sensors, 24 h in the store.
import asyncio
import gc

import protocol as P
from machine import WDT
from mptest import run
from strapkit import T0, make_strap, run_seconds


def each(strap, start=0):
    """Every record held from `start`, one at a time: (seq, t2000, infant_c, outer_c, flags,
    battery_v, tilt). A generator, so that a test under the ESP32's heap need not hold them all."""
    buf = bytearray(P.RECORD_SIZE * 50)
    seq = start
    while True:
        first, n = strap.store.read_into(seq, 50, buf)
        if n == 0:
            return
        for k in range(n):
            yield (first + k,) + P.unpack_record(buf, k * P.RECORD_SIZE)
        seq = first + n


def records(strap, start=0, count=100):
    out = []
    for r in each(strap, start):
        if len(out) == count:
            break
        out.append(r)
    return out


def test_every_sample_has_the_next_seq_and_device_time():
    strap, parts, clock = make_strap("s1")
    run_seconds(strap, clock, 5)  # switched on, then put on the baby in KMC
    parts.put_on(contact=True)
    run_seconds(strap, clock, 295)
    n = 0
    for r in each(strap):
        assert r[0] == n and r[1] == T0 + n, r
        n += 1
    assert n == 300
    recs = records(strap, 0, 10)
    assert recs[0][4] == 0  # not worn, no contact
    r = recs[5]
    assert abs(r[2] - 36.8) < 0.01 and abs(r[3] - 30.0) < 0.01
    assert r[4] & P.FLAG_CONTACT and r[4] & P.FLAG_WORN
    assert not r[4] & P.FLAG_CLOCK_SET  # the gateway has not set the clock yet
    assert abs(r[5] - 3.91) < 0.006 and r[6] == 0


def test_a_failing_sensor_marks_its_field_and_sampling_goes_on():
    strap, parts, clock = make_strap("s2")
    run_seconds(strap, clock, 10)
    parts.infant.fail = True
    parts.accel.fail = True
    run_seconds(strap, clock, 10)
    assert not strap.sampler.health() & P.HEALTH_INFANT
    parts.infant.fail = False
    run_seconds(strap, clock, 10)
    recs = records(strap)
    assert len(recs) == 30
    assert all(r[2] is None for r in recs[10:20]) and all(r[6] is None for r in recs[10:20])
    assert recs[20][2] is not None and strap.sampler.health() & P.HEALTH_INFANT


def test_24_hours_of_samples_survive_an_outage_and_a_reboot():
    _a_day_then_the_power_goes("s3")
    gc.collect()  # the reboot: the old strap's RAM is gone, as on the board
    strap2, _, _ = make_strap_same_root("s3")
    assert strap2.store.oldest() == 0 and strap2.store.flash_end() == 86400
    recs = records(strap2, 86400 - 5)
    assert [r[0] for r in recs] == list(range(86395, 86400))


def _a_day_then_the_power_goes(name):
    # A function of its own, so that no stale reference on the caller's stack keeps this strap
    # (7 KB of RAM ring) alive under the ESP32-sized heap once it returns.
    strap, _, clock = make_strap(name)
    run_seconds(strap, clock, 86400)
    strap.store.flush()


def make_strap_same_root(name):
    import config
    from app import Strap
    from clock import FakeClock
    from strapkit import Parts

    parts = Parts()
    return (
        Strap(dict(config.DEFAULTS), parts.sensors(), clock=FakeClock(T0), data_root=_root(name)),
        parts,
        None,
    )


def _root(name):
    import os

    return (os.getenv("KMC_FW_TMP") or "/tmp/kmc-fw-tests") + "/" + name


def allocated(fn, n=50):
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(n):
        fn()
    used = gc.mem_alloc() - before
    gc.enable()
    return used // n


def test_sampling_allocates_only_the_readings_floats():
    from sampler import FLOATS_PER_SAMPLE

    strap, parts, clock = make_strap("s4")
    strap.sampler.sensors.infant.offset_c = 0.04  # calibrated, as a strap in use is
    parts.put_on(contact=True)
    run_seconds(strap, clock, 120)  # the measured window (120..169) has no flush (every 60)
    buf2, buf6 = bytearray(2), bytearray(6)

    def stub_reads():  # what the stand-in I2C bus allocates per sample (not on the board)
        parts.i2c.readfrom_mem_into(0x48, 0, buf2)
        parts.i2c.readfrom_mem_into(0x49, 0, buf2)
        parts.i2c.readfrom_mem_into(0x18, 0xA8, buf6)

    a, b = 36.8, 0.01

    def one_float():
        return a * b

    total = allocated(strap.sampler.sample)
    firmware = total - allocated(stub_reads)
    per_float = allocated(one_float)  # 32 B on a 64-bit port, 16 B on a 32-bit one (ESP32)
    print(
        "heap per sample: %d bytes (%d without the stand-in bus: %d floats of %d B)"
        % (total, firmware, firmware // per_float, per_float)
    )
    assert per_float > 0 and firmware == FLOATS_PER_SAMPLE * per_float
    run_seconds(strap, clock, 5)
    before = strap.store.flushed
    flush = allocated(strap.store.flush, 1)
    assert strap.store.flushed == before + 50 + 5
    print("heap per flush to flash (once a minute): %d bytes" % flush)


def test_cadence_under_asyncio():
    strap, parts, clock = make_strap("s5", interval_ms=50)
    strap.wdt = WDT(timeout=8000)

    async def main():
        task = asyncio.create_task(strap.sampler_task())
        await asyncio.sleep_ms(1020)
        task.cancel()

    asyncio.run(main())
    n = strap.sampler.samples
    assert 19 <= n <= 22, n  # 50 ms for ~1 s
    assert strap.wdt.feeds == n
    assert strap.store.newest() == n - 1


run(globals())
