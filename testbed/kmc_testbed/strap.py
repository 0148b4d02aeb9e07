"""An emulated strap: the firmware's own code, in CPython, on a bumble BLE device.

The strap firmware (firmware/, MicroPython) is loaded by `kmc_testbed.firmware` with two small
stand-ins, `micropython` (just `const`) and `bluetooth` (`kmc_testbed.bluetooth`: a `BLE` on a
bumble `Device` on a `VirtualRadio`). The firmware's sampler, store, alarm and GATT server then
run unchanged; the gateway reaches them over real BLE (HCI, ATT, GATT, SMP) through bleak with
the bumble backend. Sensor values come from a `SensorFeed` (constant, or arrays from the
simulator).

Security runs through the firmware as on the board: bumble's security manager does LE Secure
Connections pairing, asks the firmware for the passkey to show (`_IRQ_PASSKEY_ACTION`), keeps
its keys in the firmware's bond store and reports each encryption change.

This needs the firmware sources (a checkout's firmware/ folder).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bumble.device import Device

from .bluetooth import BumbleBLE
from .firmware import load_firmware

__all__ = ["EmulatedStrap", "SensorFeed"]


class SensorFeed:
    """What the emulated strap's sensors read: callables of the sample index."""

    def __init__(
        self,
        infant_c: Callable[[int], float | None] = lambda i: 36.8,
        outer_c: Callable[[int], float | None] = lambda i: 30.0,
        contact: Callable[[int], int] = lambda i: 0,
        worn: Callable[[int], int] = lambda i: int(i >= 3),  # switched on, then put on the baby
        battery_v: Callable[[int], float | None] = lambda i: 3.9,
    ) -> None:
        self.i = 0
        self.infant_c, self.outer_c, self.contact, self.worn, self.battery_v = (
            infant_c,
            outer_c,
            contact,
            worn,
            battery_v,
        )


class _Temp:
    def __init__(self, feed: SensorFeed, fn: Callable[[int], float | None]) -> None:
        self.feed, self.fn, self.ok = feed, fn, True

    def read_c(self) -> float | None:
        value = self.fn(self.feed.i)
        self.ok = value is not None
        return value


class _Touch:
    """A touch pin: the raw reading drops by 25 % when touched (as on the ESP32)."""

    def __init__(self, feed: SensorFeed, fn: Callable[[int], int]) -> None:
        self.feed, self.fn = feed, fn

    def read(self) -> int:
        return 450 if self.fn(self.feed.i) else 600


class _Battery:
    def __init__(self, feed: SensorFeed) -> None:
        self.feed, self.ok = feed, True

    def read_v(self) -> float | None:
        return self.feed.battery_v(self.feed.i)


class EmulatedStrap:
    """One strap: firmware `Strap` with bumble BLE, a feed for its sensors, a settable clock.
    `passkey` is the 6-digit number on its label (what the gateway's config says for it)."""

    def __init__(
        self,
        device: Device,
        strap_id: str,
        feed: SensorFeed,
        data_root: Path,
        t2000: int,
        *,
        passkey: int,
        ble_period_s: float = 0.02,
        **cfg: Any,
    ) -> None:
        """`ble_period_s`: how often (wall time) the BLE task sends the samples the strap
        holds; a ward run faster than real time sets it longer, so each notification carries
        more samples instead of the gateway receiving more notifications than a radio carries
        (commands and pairing are still handled every 20 ms, as on the strap)."""
        fw = load_firmware()
        config = dict(fw["config"].DEFAULTS)
        config.update(strap_id=strap_id, passkey=passkey, **cfg)
        self.feed = feed
        self.clock = fw["clock"].FakeClock(t2000)
        pad = fw["pads"].Pad
        sensors = fw["sampler"].Sensors(
            _Temp(feed, feed.infant_c),
            _Temp(feed, feed.outer_c),
            pad(_Touch(feed, feed.contact)),
            pad(_Touch(feed, feed.worn)),
            _Battery(feed),
            None,
        )
        data_root.mkdir(parents=True, exist_ok=True)
        self.ble = BumbleBLE(device)
        self.strap = fw["app"].Strap(
            config,
            sensors,
            self.ble,
            clock=self.clock,
            data_root=str(data_root),
            now_ms=lambda: int(self.clock.t * 1000),
            link_ms=lambda: int(time.monotonic() * 1000),  # links run in real time
        )
        assert self.strap.ble is not None
        self.strap.ble.publish_status()
        self._ble_task = asyncio.get_running_loop().create_task(self._ble_loop(ble_period_s))

    async def _ble_loop(self, send_every_s: float = 0.02, tick_s: float = 0.02) -> None:
        """The firmware's BLE task: handle commands and security events every `tick_s`, send
        what the link takes every `send_every_s`, refresh the status now and then."""
        assert self.strap.ble is not None
        n = 0
        sent_at = 0.0
        while True:
            now = time.monotonic()
            if now - sent_at >= send_every_s:
                self.strap.ble.pump()
                sent_at = now
            else:
                self.strap.ble.pump(max_packets=0)  # commands and pairing only
            n += 1
            if n % 100 == 0:
                self.strap.ble.publish_status()
            await asyncio.sleep(tick_s)

    @property
    def address(self) -> str:
        """The strap's BLE address (what a gateway pins); kept across a reboot."""
        return str(self.ble.device.random_address)

    def close(self) -> None:
        self._ble_task.cancel()

    def tick(self) -> int:
        """One sampling period: sample, advance the clock, send what the link takes."""
        seq = self.strap.sampler.sample()
        self.feed.i += 1
        self.clock.advance(self.strap.cfg["interval_ms"] / 1000)
        assert self.strap.ble is not None
        if self.feed.i % 2 == 0:  # the firmware refreshes Status and the SIG values every 2 s
            self.strap.ble.publish_status()
        return int(seq)

    async def run(self, samples: int, seconds_per_sample: float = 0.0) -> None:
        """Sample `samples` times, yielding to the event loop (and the radio) in between."""
        for _ in range(samples):
            self.tick()
            await asyncio.sleep(seconds_per_sample)

    async def drain(self, rounds: int = 50) -> None:
        """Let the BLE task send the backlog (as the firmware's 100 ms BLE task would)."""
        assert self.strap.ble is not None
        for _ in range(rounds):
            self.strap.ble.pump()
            await asyncio.sleep(0.01)
