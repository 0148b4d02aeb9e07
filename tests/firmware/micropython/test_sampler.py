# Sampling: one record per interval, sequence numbers, failing sensors, 24 h in the store.
import asyncio
import gc

import protocol as P
from machine import WDT
from mptest import run
from strapkit import T0, make_strap, run_seconds


def records(strap, start=0):
    out = []
    buf = bytearray(P.RECORD_SIZE * 50)
    seq = start
    while True:
        first, n = strap.store.read_into(seq, 50, buf)
        if n == 0:
            return out
        for k in range(n):
            out.append((first + k,) + P.unpack_record(buf, k * P.RECORD_SIZE))
        seq = first + n


def test_every_sample_has_the_next_seq_and_device_time():
    strap, parts, clock = make_strap("s1")
    run_seconds(strap, clock, 5)  # switched on, then put on the baby in KMC
    parts.put_on(contact=True)
    run_seconds(strap, clock, 295)
    recs = records(strap)
    assert [r[0] for r in recs] == list(range(300))
    assert [r[1] for r in recs] == list(range(T0, T0 + 300))
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
    strap, parts, clock = make_strap("s3")
    run_seconds(strap, clock, 86400)
    strap.store.flush()
    strap2, _, _ = make_strap_same_root("s3")
    assert strap2.store.oldest() == 0 and strap2.store.flash_end() == 86400
    recs = records(strap2, 86400 - 5)
    assert [r[0] for r in recs] == list(range(86395, 86400))


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


def test_sampling_allocates_little():
    strap, parts, clock = make_strap("s4")
    run_seconds(strap, clock, 100)  # no flush in the measured window (flush_every = 60)
    buf2, buf6 = bytearray(2), bytearray(6)

    def stub_reads():  # what the stand-in I2C bus allocates per sample (not on the board)
        parts.i2c.readfrom_mem_into(0x48, 0, buf2)
        parts.i2c.readfrom_mem_into(0x49, 0, buf2)
        parts.i2c.readfrom_mem_into(0x18, 0xA8, buf6)

    total = allocated(strap.sampler.sample)
    firmware = total - allocated(stub_reads)
    print("heap per sample: %d bytes (%d without the stand-in bus)" % (total, firmware))
    assert firmware < 600  # a few boxed floats; at 1 Hz the ESP32 collects every few minutes


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
