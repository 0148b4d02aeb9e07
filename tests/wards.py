"""A ward of emulated straps around the production gateway, for the scheduler's tests.

The straps run the firmware's code on bumble, on a `VirtualRadio`; the gateway is the
production service. What every such test repeats lives here: the straps, the gateway's
configuration, sampling while the event loop runs, waiting until every sample is in, the
samples and `signal_lost` alerts a subscriber saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from kmc_host import protocol as P
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway, Radios
from kmc_host.mqtt import BrokerConfig, TopicTree
from kmc_testbed.radio import VirtualRadio
from kmc_testbed.strap import EmulatedStrap, SensorFeed
from packets import PASSKEY, T2000
from servers import Listener

TOPICS = "kmc/site1/nicu"


def strap_id(k: int) -> str:
    return f"KMC-{k + 1:04d}"


async def ward(
    radio: VirtualRadio,
    tmp_path: Path,
    n: int,
    *,
    worn: Callable[[int], Callable[[int], int]] | None = None,
    ble_period_s: float = 0.02,
) -> list[EmulatedStrap]:
    """`n` straps KMC-0001...; `worn(k)`: strap k's worn flag by sample; `ble_period_s`: how
    often each strap sends (8 notifications of 19 samples at most)."""
    return [
        EmulatedStrap(
            await radio.device(f"strap{k}"),
            strap_id(k),
            SensorFeed(worn=worn(k)) if worn else SensorFeed(),
            tmp_path / f"s{k}",
            T2000,
            passkey=PASSKEY,
            ble_period_s=ble_period_s,
        )
        for k in range(n)
    ]


def gateway_config(
    tmp_path: Path, port: int, n: int, slots: int, max_age_s: float = 30.0
) -> GatewayConfig:
    return GatewayConfig(
        TopicTree(*TOPICS.split("/")),
        "UTC",
        tmp_path / "gw",
        BrokerConfig(port=port, client_id="gw"),
        tuple(StrapEntry(strap_id(k), str(k + 1), "", PASSKEY) for k in range(n)),
        DetectorConfig(),
        max_connections=slots,
        max_age_s=max_age_s,
    )


async def sample(
    straps: Iterable[EmulatedStrap],
    seconds: float,
    until: Callable[[], bool] = lambda: False,
    every_s: float = 0.05,
) -> bool:
    """Every strap samples once every `every_s` of wall time, for `seconds` or until
    `until()`; True if `until()` came true."""
    straps = list(straps)
    for _ in range(round(seconds / every_s)):
        for s in straps:
            s.tick()
        await asyncio.sleep(every_s)
        if until():
            return True
    return False


def taken(straps: Iterable[EmulatedStrap]) -> dict[str, int]:
    """How many samples each strap has taken (its next sequence number)."""
    return {s.strap.cfg["strap_id"]: int(s.strap.store.next_seq) for s in straps}


def caught_up(gw: Gateway, straps: Iterable[EmulatedStrap]) -> bool:
    """The gateway holds every sample these straps have taken."""
    return all(gw.cursors.get(sid) >= m for sid, m in taken(straps).items())


async def wait_caught_up(gw: Gateway, straps: Iterable[EmulatedStrap], timeout_s: float = 30.0):
    """Wait (no sampling meanwhile) until the gateway holds every sample, or `timeout_s`."""
    straps = list(straps)
    for _ in range(round(timeout_s / 0.05)):
        if caught_up(gw, straps):
            return
        await asyncio.sleep(0.05)


def seqs(listener: Listener, strap: str) -> list[int]:
    """Every sequence number of a strap's samples messages, in arrival order."""
    return [q for b in listener.bodies(f"{TOPICS}/{strap}/samples") for q in b["seq"]]


def lost_alerts(listener: Listener, straps: Iterable[str]) -> list[dict]:
    return [
        a
        for s in straps
        for a in listener.bodies(f"{TOPICS}/{s}/alert")
        if a["kind"] == "signal_lost"
    ]


def start_gateway(
    cfg: GatewayConfig, access: Radios, straps: list[EmulatedStrap]
) -> tuple[Gateway, asyncio.Event, asyncio.Task[None]]:
    """The production gateway on the straps' clock, running until the returned event is set."""
    clock = straps[0].clock
    gw = Gateway(cfg, access, now=lambda: clock.t + P.EPOCH_2000_UNIX)
    stop = asyncio.Event()
    return gw, stop, asyncio.create_task(gw.run(stop))


async def stop_ward(stop: asyncio.Event, task: asyncio.Task[None], straps: Iterable[EmulatedStrap]):
    """Stop the gateway (a clean stop: every visit ends), then the straps' BLE tasks."""
    stop.set()
    await task
    for s in straps:
        s.close()
