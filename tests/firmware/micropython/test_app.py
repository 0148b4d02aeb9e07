# The application: supervised tasks restart after an exception, the watchdog is fed by the
# sampler, the alarm pin follows a cold baby, and a reboot carries on after the flash.
import asyncio

from bluetooth import BLE
from machine import WDT
from mptest import run
from strapkit import gateway_connects, make_strap, run_seconds


def test_a_failing_task_is_logged_and_restarted():
    strap, _, _ = make_strap("a1")
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("sensor bus stuck")
        await asyncio.sleep_ms(1000)

    async def main():
        task = asyncio.create_task(strap.supervise("flaky", flaky, pause_ms=10))
        await asyncio.sleep_ms(100)
        task.cancel()

    asyncio.run(main())
    assert len(calls) == 3 and strap.restarts["flaky"] == 2
    assert "task flaky failed (RuntimeError: sensor bus stuck), restarting" in strap.log


def test_sampler_failure_flushes_then_sampling_resumes():
    strap, parts, clock = make_strap("a2", flush_every=60)
    strap.wdt = WDT()
    original = strap.sampler.sample
    state = {"n": 0}

    def sample():
        state["n"] += 1
        if state["n"] == 5:
            raise OSError(5)
        return original()

    strap.sampler.sample = sample

    async def main():
        strap.cfg["interval_ms"] = 10
        task = asyncio.create_task(strap.supervise("sampler", strap.sampler_task, pause_ms=20))
        await asyncio.sleep_ms(300)
        task.cancel()

    asyncio.run(main())
    assert strap.restarts["sampler"] == 1
    assert strap.store.flash_end() == 4  # flushed at the failure
    assert strap.sampler.samples > 10 and strap.wdt.feeds == strap.sampler.samples


def test_everything_runs_together():
    ble = BLE()
    strap, parts, clock = make_strap("a3", ble, interval_ms=50)
    strap.wdt = WDT()

    async def main():
        task = asyncio.create_task(strap.run())
        await asyncio.sleep_ms(600)
        gateway_connects(ble, strap)
        ble.central_write(strap.ble.h_ctrl, b"\x02\x00\x00\x00\x00")
        await asyncio.sleep_ms(600)
        task.cancel()

    asyncio.run(main())
    assert strap.wdt.feeds > 15 and not strap.restarts
    assert len([1 for _, h, _ in ble.notified if h == strap.ble.h_meas]) > 0


def test_cold_baby_sounds_the_alarm_with_no_gateway():
    strap, parts, clock = make_strap("a4", settle_s=300)
    run_seconds(strap, clock, 5)
    parts.put_on()
    run_seconds(strap, clock, 400)  # settled at 36.8
    parts.infant.temp_c = 35.6
    run_seconds(strap, clock, 59)
    assert not strap.alarm.active
    run_seconds(strap, clock, 2)
    assert strap.alarm.active
    strap.alarm.drive(100)
    assert parts.buzzer.value() == 1 and parts.led.value() == 1


run(globals())
