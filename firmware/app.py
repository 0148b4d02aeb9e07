# The strap application: a sampler task, a BLE task and an alarm task, each supervised.
# A task that raises is logged and restarted after a pause; the watchdog is fed only by the
# sampler, so a sampler stuck for `watchdog_ms` resets the board, and sampling resumes after
# the last sample in flash. `main.py` calls `run()`; tests call `Strap` directly.
import asyncio
import sys
import time

import config
from alarm import ColdAlarm
from clock import Clock
from sampler import Sampler
from store import SampleStore

LOG_LIMIT = 50


class Strap:
    """Everything on one strap, wired together (hardware passed in, so tests can stand in)."""

    def __init__(
        self,
        cfg,
        sensors,
        ble=None,
        led=None,
        buzzer=None,
        clock=None,
        data_root="/kmc_data",
        wdt=None,
        now_ms=None,
        link_ms=None,
    ):
        self.cfg = cfg
        self.clock = clock or Clock()
        self.store = SampleStore(
            data_root,
            ram_records=max(600, 2 * cfg["flush_every"]),
            segment_samples=cfg["segment_samples"],
            max_segments=cfg["max_segments"],
            flush_every=cfg["flush_every"],
        )
        self.alarm = ColdAlarm(
            led,
            buzzer,
            cfg["alarm_below_c"],
            cfg["alarm_hysteresis_c"],
            cfg["alarm_after_s"],
            cfg["settle_s"],
            cfg["interval_ms"] / 1000,
            high_below_c=cfg["alarm_high_below_c"],
        )
        self.sampler = Sampler(sensors, self.store, self.clock, self.alarm)
        self.wdt = wdt
        self.log = []
        self.restarts = {}
        self.ble = None
        if ble is not None:
            from ble_service import StrapBLE
            from bonds import Bonds

            self.ble = StrapBLE(
                ble,
                cfg["strap_id"],
                self.store,
                self.sampler,
                self.clock,
                self.alarm,
                cfg,
                now_ms or time.ticks_ms,  # the emulated strap (CPython) brings its own
                Bonds(data_root + "/bonds.json", self.note),
                link_ms or time.ticks_ms,
            )

    def note(self, text):
        """Keep the last few log lines (shown over the REPL; printed too)."""
        print(text)
        self.log.append(text)
        if len(self.log) > LOG_LIMIT:
            self.log.pop(0)

    async def sampler_task(self):
        interval = self.cfg["interval_ms"]
        next_at = time.ticks_ms()
        while True:
            self.sampler.sample()
            if self.wdt is not None:
                self.wdt.feed()
            interval = self.cfg["interval_ms"]  # may be changed over BLE
            next_at = time.ticks_add(next_at, interval)
            wait = time.ticks_diff(next_at, time.ticks_ms())
            if wait < 0:  # late (flash write, GC): do not try to catch up in a burst
                next_at = time.ticks_ms()
                wait = 0
            await asyncio.sleep_ms(wait)

    async def ble_task(self):
        tick = 0
        while True:
            if self.ble is not None:
                self.ble.pump()
                tick += 1
                if tick % 20 == 0:
                    self.ble.publish_status()
            await asyncio.sleep_ms(100)

    async def alarm_task(self):
        # every 50 ms: the bursts are drawn in 100 ms steps, and a loop of 100 ms plus its own
        # run time would now and then skip a step (merging or losing a pulse)
        while True:
            self.alarm.drive(time.ticks_ms())
            await asyncio.sleep_ms(50)

    async def supervise(self, name, factory, pause_ms=1000):
        """Run factory() forever: an exception is logged and the task restarted."""
        while True:
            try:
                await factory()
            except Exception as exc:  # noqa: BLE001 - any failure must not stop the strap
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.note("task %s failed (%s: %s), restarting" % (name, type(exc).__name__, exc))
                if name == "sampler":
                    self.store.flush()  # keep what we have before anything else goes wrong
            await asyncio.sleep_ms(pause_ms)

    async def run(self):
        await asyncio.gather(
            self.supervise("sampler", self.sampler_task),
            self.supervise("ble", self.ble_task),
            self.supervise("alarm", self.alarm_task),
        )


def run():
    """On the board: load the config, build the hardware, run until power-off."""
    import bluetooth
    import board
    import machine

    cfg = config.load()
    machine.freq(80000000)  # 80 MHz is plenty for 1 Hz sampling and BLE, and saves power
    wdt = machine.WDT(timeout=cfg["watchdog_ms"])
    led, buzzer = board.alarm_pins()
    strap = Strap(cfg, board.sensors(cfg), bluetooth.BLE(), led, buzzer, wdt=wdt)
    try:
        asyncio.run(strap.run())
    except Exception as exc:  # noqa: BLE001 - last resort: log, keep data, reset
        sys.print_exception(exc)
        strap.store.flush()
        machine.reset()
