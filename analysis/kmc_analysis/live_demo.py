"""`kmc demo`: a simulated ward, live: emulated straps -> BLE -> gateway -> MQTT, then a summary.

Everything real but the radio and the babies: the straps run the firmware's own code (CPython,
on bumble), the gateway is the production code with bleak over the bumble backend, the broker
is Mosquitto when installed (else amqtt, an embedded Python broker), and a subscriber collects
what a ward screen would see. Simulated time runs `speed` times faster than the clock.

Scenarios, one per strap in turn: a baby in KMC (with a nappy change), a baby cooling in the cot,
a strap taken off for a while, then straps from the ward simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import BumbleBleakClient, BumbleBleakScanner, VirtualRadio
from kmc_host.ble.emulated_strap import EmulatedStrap, SensorFeed
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.link import BleAccess
from kmc_host.gateway.publisher import BrokerConfig, TopicTree
from kmc_host.gateway.recorder import TopicRecorder
from kmc_host.gateway.service import Gateway

from .simulate import simulate_strap

T2000 = int(dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC).timestamp()) - P.EPOCH_2000_UNIX


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the demo's broker, and the tests' servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ward_broker(workdir: Path) -> Iterator[tuple[int, str]]:
    """A broker on 127.0.0.1: Mosquitto if installed, else amqtt in a thread."""
    port = free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"
        )
        proc = subprocess.Popen(
            [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(port)
            yield port, "Mosquitto"
        finally:
            proc.terminate()
            proc.wait(timeout=5)
        return
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise RuntimeError(
            "no MQTT broker: apt-get install mosquitto, or pip install amqtt"
        ) from None
    loop = asyncio.new_event_loop()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    broker = Broker(config, loop=loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(10)
    try:
        wait_port(port)
        yield port, "amqtt (embedded)"
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


def scenario(index: int, seconds: int, seed: int) -> tuple[str, SensorFeed]:
    """(description, sensor feed) for strap number `index`."""
    m = 60
    i = np.arange(seconds + 1)
    if index == 0:
        contact = ((i >= 5 * m) & (i < seconds - 5 * m) & ~((i >= 25 * m) & (i < 27 * m))).astype(
            int
        )
        return "KMC with a nappy change", SensorFeed(
            contact=lambda k: int(contact[min(k, seconds)])
        )
    if index == 1:
        temp = np.interp(i, [0, 15 * m, 25 * m, seconds], [36.8, 36.8, 35.6, 35.6])
        return "a baby cooling in the cot", SensorFeed(
            infant_c=lambda k: round(float(temp[min(k, seconds)]), 2)
        )
    if index == 2:
        worn = ((i >= 3) & ~((i >= 20 * m) & (i < 30 * m))).astype(int)
        temp = np.where(worn == 1, 36.8, 27.0)
        return "a strap taken off for 10 min", SensorFeed(
            infant_c=lambda k: float(temp[min(k, seconds)]),
            worn=lambda k: int(worn[min(k, seconds)]),
        )
    st = simulate_strap(
        np.random.default_rng(seed + index), index, seconds / 86400 + 1 / 86400, 0.0, 2
    )
    return "from the ward simulator", SensorFeed(
        infant_c=lambda k: float(st.infant_c[min(k, seconds)]),
        outer_c=lambda k: float(st.outer_c[min(k, seconds)]),
        contact=lambda k: int(st.contact[min(k, seconds)]),
        worn=lambda k: int(st.worn[min(k, seconds)]) if k >= 3 else 0,
    )


def run_demo(
    straps: int,
    minutes: float,
    speed: float,
    out: Path | None,
    seed: int,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="kmc-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    # the demo prints its own progress; retries while straps are found one by one, and the
    # embedded broker's shutdown chatter, would only hide it
    for name in ("kmc_host", "amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    seconds = int(minutes * 60)
    with ward_broker(work) as (port, broker_name):
        say(
            f"broker: {broker_name} on 127.0.0.1:{port}; {straps} straps; {minutes:g} simulated min at {speed:g}x"
        )
        screen = TopicRecorder(port, client_id="kmc-demo-screen")
        try:
            result = asyncio.run(_live(straps, seconds, speed, work, port, seed, screen, say))
        finally:
            screen.close()
    return result


async def _live(
    straps: int,
    seconds: int,
    speed: float,
    work: Path,
    port: int,
    seed: int,
    screen: TopicRecorder,
    say: Callable[[str], None],
) -> dict[str, Any]:
    radio = VirtualRadio()
    central = await radio.device("gateway")
    devices = []
    for k in range(straps):
        what, feed = scenario(k, seconds, seed)
        strap = EmulatedStrap(
            await radio.device(f"strap{k}"), f"KMC-{k + 1:04d}", feed, work / f"strap{k + 1}", T2000
        )
        devices.append((what, strap))
        say(f"  KMC-{k + 1:04d}: {what}")
    clock = devices[0][1].clock
    cfg = GatewayConfig(
        TopicTree("kmc", "demo-site", "nicu"),
        "Africa/Addis_Ababa",
        work / "gateway",
        BrokerConfig(port=port, client_id="kmc-demo-gateway"),
        tuple(
            StrapEntry(f"KMC-{k + 1:04d}", str(k + 1), f"INF-{k + 1:04d}") for k in range(straps)
        ),
        DetectorConfig(),
    )
    gateway = Gateway(
        cfg,
        BleAccess(BumbleBleakScanner, BumbleBleakClient, {"central": central}),
        now=lambda: clock.t + P.EPOCH_2000_UNIX,
        scan_timeout=3.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    for st in gateway.straps.values():
        await asyncio.wait_for(st.link.connected.wait(), 60)
    say("all straps connected; simulating")
    started = time.monotonic()
    for second in range(seconds):
        for _, strap in devices:
            strap.tick()
        if second % 600 == 0 and second:
            received = sum(len(b["seq"]) for b in screen.bodies(leaf="samples"))
            alerts = len(screen.bodies(leaf="alert"))
            say(
                f"  t+{second // 60:3d} min: {received} samples at the broker, {alerts} alert messages"
            )
        await asyncio.sleep(1 / speed)
    produced = {strap.strap.cfg["strap_id"]: strap.strap.store.next_seq for _, strap in devices}
    for _ in range(3000):
        if (
            all(len(_seqs(screen, s)) >= n for s, n in produced.items())
            and gateway.publisher.pending() == 0
        ):
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    for _, strap in devices:
        strap.close()
    wall = time.monotonic() - started
    result = _summary(screen, produced, devices, wall, say)
    _store_and_analyze(screen, work, say)
    return result


def _store_and_analyze(screen: TopicRecorder, work: Path, say: Callable[[str], None]) -> None:
    """The demo's store: the samples the broker delivered, as a samples file; then kmc analyze."""
    from .analyze import analyze_file

    path = work / "samples.csv"
    rows = 0
    unset = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["time", "device", "infant_c", "outer_c", "contact", "worn", "battery_v", "seq"]
        )
        seen: set[tuple[str, int]] = set()  # delivery is at least once
        for body in screen.bodies(leaf="samples"):
            for k, seq in enumerate(body["seq"]):
                if (body["strap"], seq) in seen:
                    continue
                seen.add((body["strap"], seq))
                if not body["clock_set"][k]:  # before any gateway set its clock: no wall time
                    unset += 1
                    continue
                cells = [
                    body[c][k] for c in ("infant_c", "outer_c", "contact", "worn", "battery_v")
                ]
                out.writerow(
                    [
                        int(body["time"][k]),
                        body["strap"],
                        *("" if v is None else v for v in cells),
                        seq,
                    ]
                )
                rows += 1
    say(
        f"== stored {rows} samples in {path} ({unset} taken before the clock was set); kmc analyze =="
    )
    summary = analyze_file(path, work / "analysis", tz="Africa/Addis_Ababa")
    for line in summary.lines()[1:]:
        say(line)


def _summary(
    screen: TopicRecorder,
    produced: dict[str, int],
    devices: list[tuple[str, EmulatedStrap]],
    wall: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    say("== summary ==")
    lost = 0
    for strap_id, n in produced.items():
        got = _seqs(screen, strap_id)
        missing = n - len(got & set(range(n)))
        lost += missing
        sessions = [s for s in screen.bodies(leaf="session") if s["strap"] == strap_id]
        say(f"  {strap_id}: {len(got)}/{n} samples received, {len(sessions)} sessions ended")
    latencies = []
    alerts = screen.bodies(leaf="alert")
    for a in alerts:
        if a["state"] != "active":
            continue
        start = dt.datetime.fromisoformat(a["start"].replace("Z", "+00:00")).timestamp()
        raised = dt.datetime.fromisoformat(a["raised"].replace("Z", "+00:00")).timestamp()
        latencies.append(raised - start)
        say(
            f"  alert {a['kind']} on {a['strap']} (bed {a.get('bed', '')}): episode start {a['start']}, raised {raised - start:.0f} s later (simulated)"
        )
    say(f"  samples lost: {lost}; {len(alerts)} alert messages; {wall:.1f} s of wall time")
    return {"lost": lost, "alerts": alerts, "latencies_s": latencies, "produced": produced}


def _seqs(screen: TopicRecorder, strap_id: str) -> set[int]:
    return {s for b in screen.bodies(leaf="samples") if b["strap"] == strap_id for s in b["seq"]}
