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
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import (
    VirtualRadio,
    central_access,
)
from kmc_host.ble.emulated_strap import EmulatedStrap, SensorFeed
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.publisher import BrokerConfig, TopicTree
from kmc_host.gateway.recorder import TopicRecorder
from kmc_host.gateway.service import Gateway
from kmc_host.sink.influx import InfluxQL
from kmc_host.sink.service import Sink
from kmc_host.ward.config import WardConfig
from kmc_host.ward.server import WardThread

from .local_services import LocalInfluxDB, free_port, local_sink, ward_broker
from .simulate import simulate_strap

T2000 = int(dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC).timestamp()) - P.EPOCH_2000_UNIX


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
    broker_port: int | None = None,
    ward_port: int | None = None,
    hold: bool = False,
) -> dict[str, Any]:
    """Run the simulated ward; `broker_port`: use that broker instead of starting one;
    `ward_port`: the ward screen's port (0: none); `hold`: keep serving until Ctrl-C."""
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="kmc-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    # the demo prints its own progress; retries while straps are found one by one, and the
    # embedded broker's shutdown chatter, would only hide it
    for name in ("kmc_host", "amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    seconds = int(minutes * 60)
    with (
        ward_broker(work, broker_port) as (port, broker_name),
        ward_store(work, port) as store,
        ward_screen(work, port, ward_port) as screen_url,
    ):
        if screen_url:
            say(f"ward screen: {screen_url} (PIN {DEMO_PIN} to acknowledge alerts)")
        say(
            f"broker: {broker_name} on 127.0.0.1:{port}; store: "
            f"{'InfluxDB at ' + store.cfg.influx.url + ' via kmc sink' if store else 'samples.csv (InfluxDB not installed)'}; "
            f"{straps} straps; {minutes:g} simulated min at {speed:g}x"
        )
        screen = TopicRecorder(port, client_id="kmc-demo-screen")
        try:
            result = asyncio.run(_live(straps, seconds, speed, work, port, seed, screen, say))
        finally:
            screen.close()
        if store is not None:
            _report_from_store(store, result["produced"], work, say)
        if hold and screen_url:
            say(f"the ward screen stays at {screen_url}; Ctrl-C to stop")
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    return result


DEMO_PIN = "2580"


@contextlib.contextmanager
def ward_screen(work: Path, port: int, ward_port: int | None) -> Iterator[str | None]:
    """The ward screen (`kmc ward`) on 127.0.0.1, fed by the demo's broker."""
    if ward_port == 0:
        yield None
        return
    cfg = WardConfig(
        "demo-site",
        "nicu",
        work / "ward",
        DEMO_PIN,
        BrokerConfig(port=port, client_id="kmc-demo-ward"),
        port=ward_port or free_port(),
        escalate_after_s=120.0,
    )
    screen = WardThread(cfg).start()
    try:
        yield screen.url
    finally:
        screen.stop()


@contextlib.contextmanager
def ward_store(work: Path, port: int) -> Iterator[Sink | None]:
    """The store: InfluxDB on loopback with `kmc sink` feeding it, when InfluxDB is installed."""
    if not LocalInfluxDB.installed():
        yield None
        return
    server = LocalInfluxDB(work).start()
    try:
        sink = local_sink(work / "sink", port, server.url, "kmc-demo-sink")
    except RuntimeError:
        server.stop()
        raise
    try:
        yield sink
    finally:
        sink.stop(drain_timeout_s=30)
        server.stop()


def _report_from_store(
    sink: Sink, produced: dict[str, int], work: Path, say: Callable[[str], None]
) -> None:
    """Wait until InfluxDB holds every sample, then `kmc report` from it."""
    from .cli import main as kmc

    query = InfluxQL(sink.cfg.influx)
    expected = sum(produced.values())
    stored = 0
    for _ in range(600):
        series = query.run('SELECT count("seq") FROM "kmc_sample"')
        unclocked = query.run('SELECT count("seq") FROM "kmc_sample_unclocked"')
        stored = sum(s["values"][0][1] for s in series + unclocked)
        if stored >= expected and sink.pending() == 0:
            break
        time.sleep(0.1)
    say(
        f"== InfluxDB holds {stored} of the {expected} samples the straps took; "
        f"{sink.stats.rejected} messages rejected; kmc report from InfluxDB =="
    )
    toml = work / "influx.toml"
    toml.write_text(f'[influx]\nurl = "{sink.cfg.influx.url}"\ndatabase = "kmc"\n')
    roster = work / "roster.csv"
    with roster.open("w", newline="") as fh:  # the demo's babies: all eligible (< 2000 g)
        w = csv.writer(fh)
        w.writerow(["device", "infant_id", "birth_time", "birth_weight_g"])
        born = dt.datetime(2026, 2, 27, 3, 0, tzinfo=dt.UTC).isoformat()
        for k, strap in enumerate(sorted(produced)):
            w.writerow([strap, f"INF-{k + 1:04d}", born, 1450 + 100 * k])
    # an hour of ward time: days count with half an hour of data (in a ward: 20 h, the default)
    args = ["report", "--influx", str(toml), "--roster", str(roster), "--tz", "Africa/Addis_Ababa"]
    args += ["--min-monitored-hours", "0.5", "--site", "demo-site", "--ward", "nicu"]
    kmc([*args, "--out", str(work / "report")])


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
    # each strap's label passkey, as commissioning reads it into the gateway's configuration
    passkeys = [secrets.randbelow(1_000_000) for _ in range(straps)]
    for k in range(straps):
        what, feed = scenario(k, seconds, seed)
        strap = EmulatedStrap(
            await radio.device(f"strap{k}"),
            f"KMC-{k + 1:04d}",
            feed,
            work / f"strap{k + 1}",
            T2000,
            passkey=passkeys[k],
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
            StrapEntry(f"KMC-{k + 1:04d}", str(k + 1), f"INF-{k + 1:04d}", passkeys[k])
            for k in range(straps)
        ),
        DetectorConfig(),
    )
    gateway = Gateway(
        cfg,
        central_access(central),
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
