"""The live demo: a simulated ward, emulated straps -> BLE -> gateway -> MQTT, then a summary.

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

from kmc_analysis.cli import make_report
from kmc_analysis.sources import InfluxSource
from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import central_access
from kmc_host.detect import DetectorConfig
from kmc_host.errors import StepFailed, doing
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import ACTIVE, ALERT, SAMPLES, SESSION, BrokerConfig, TopicTree, iso_seconds
from kmc_host.shutdown import Interrupted, StopSignals
from kmc_host.sink.influx import InfluxQL
from kmc_host.sink.service import Sink
from kmc_host.ward.config import WardConfig
from kmc_host.ward.server import WardThread

from .radio import VirtualRadio
from .recorder import TopicRecorder
from .scenarios import T2000, scenario
from .servers import LocalInfluxDB, free_port, local_sink, ward_broker
from .strap import EmulatedStrap

SLOTS = 7  # connections the emulated adapter holds at once, as a real controller
# each strap's turn comes this often in wall time (at 120x: every 20 simulated minutes), so a
# backlog drains in a second or two
MAX_AGE_S = 10.0
RADIO_BATCHES_PER_S = 40.0  # what the gateway digests in the demo (~10 ms of CPU a batch)
# wall time for the straps to be found, bonded and connected, one after the other on the one
# adapter (about 2 s each on the emulated radio: a scan, then the connection set-up)
CONNECT_TIMEOUT_S = 30.0
CONNECT_PER_STRAP_S = 5.0
DRAIN_TIMEOUT_S = 60.0  # wall time for the broker to hold every sample after the last tick


def _say(line: str) -> None:
    """Progress as it happens, also through a pipe (`kmc demo | tee demo.log`)."""
    print(line, flush=True)


def run_demo(
    straps: int,
    minutes: float,
    speed: float,
    out: Path | None,
    seed: int,
    say: Callable[[str], None] | None = None,
    broker_port: int | None = None,
    ward_port: int | None = None,
    hold: bool = False,
    tz: str = "Africa/Addis_Ababa",
    signals: StopSignals | None = None,
) -> dict[str, Any]:
    """Run the simulated ward; `broker_port`: use that broker instead of starting one;
    `ward_port`: the ward screen's port (0: none); `hold`: keep serving until a stop signal.

    `signals` (installed raising by the caller) stops the run at any point: the straps and the
    gateway stop, the sink pushes what it can in a short drain (the rest stays in its spool),
    the servers it started are stopped, and `Interrupted` carries the signal to the caller."""
    signals = signals or StopSignals()
    say = say or _say
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="kmc-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    # the demo prints its own progress; retries while straps are found one by one, and the
    # embedded broker's shutdown chatter, would only hide it
    for name in ("kmc_host", "amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    seconds = int(minutes * 60)
    with contextlib.ExitStack() as running:  # stopped in reverse: screen, store, broker
        with doing("starting the MQTT broker"):
            port, broker_name = running.enter_context(ward_broker(work, broker_port))
        with doing("starting the store (InfluxDB and kmc sink)"):
            store = running.enter_context(ward_store(work, port, signals))
        with doing("starting the ward screen"):
            url = running.enter_context(ward_screen(work, port, ward_port))
        if url:
            say(f"ward screen: {url} (PIN {DEMO_PIN} to acknowledge alerts)")
        say(
            f"broker: {broker_name} on 127.0.0.1:{port}; store: "
            f"{'InfluxDB at ' + store.cfg.influx.url + ' via kmc sink' if store else 'samples.csv (InfluxDB not installed)'}; "
            f"{straps} straps; {minutes:g} simulated min at {speed:g}x"
        )
        screen = TopicRecorder(port, client_id="kmc-demo-screen")
        try:
            ward = DemoWard(straps, seconds, speed, work, port, seed, tz)
            with doing("running the simulated ward"):
                result = signals.run_asyncio(lambda stop: ward.run(screen, say, stop))
        finally:  # (run_asyncio handed the signals back from its event loop already)
            screen.close()
        if signals.signum is not None:
            raise Interrupted(signals.signum)
        with doing("storing and analysing the delivered samples"):
            _store_and_analyze(screen, work, tz, say)
        if store is not None:
            with doing("reading the samples back from InfluxDB for kmc report"):
                _report_from_store(store, result["produced"], work, tz, say)
        if hold and url:
            say(f"the ward screen stays at {url}; Ctrl-C to stop")
            while True:  # until a stop signal raises Interrupted
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
def ward_store(work: Path, port: int, signals: StopSignals) -> Iterator[Sink | None]:
    """The store: InfluxDB on loopback with `kmc sink` feeding it, when InfluxDB is installed.
    On the way out the sink drains its spool into InfluxDB (briefly when stopping on a signal)."""
    if not LocalInfluxDB.installed():
        yield None
        return
    server = LocalInfluxDB(work).start()
    try:
        sink = local_sink(work / "sink", port, server.url, "kmc-demo-sink")
    except BaseException:
        server.stop()
        raise
    try:
        yield sink
    finally:
        try:
            sink.stop(drain_timeout_s=1.0 if signals.requested else 30.0)
        finally:  # even when a stop signal cuts the drain short
            server.stop()


def _report_from_store(
    sink: Sink, produced: dict[str, int], work: Path, tz: str, say: Callable[[str], None]
) -> None:
    """Wait until InfluxDB holds every sample, then `kmc report` from it."""
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
    roster = work / "roster.csv"
    with roster.open("w", newline="") as fh:  # the demo's babies: all eligible (< 2000 g)
        w = csv.writer(fh)
        w.writerow(["device", "infant_id", "birth_time", "birth_weight_g"])
        born = dt.datetime(2026, 2, 27, 3, 0, tzinfo=dt.UTC).isoformat()
        for k, strap in enumerate(sorted(produced)):
            w.writerow([strap, f"INF-{k + 1:04d}", born, 1450 + 100 * k])
    # an hour of ward time: days count with half an hour of data (in a ward: 20 h, the default)
    make_report(
        InfluxSource(sink.cfg.influx, "demo-site", "nicu"),
        work / "report",
        tz=tz,
        roster_path=str(roster),
        site="demo-site",
        ward="nicu",
        min_monitored_hours=0.5,
    )


class DemoWard:
    """The ward's straps on one virtual radio, the gateway, and the simulated clock."""

    def __init__(
        self, straps: int, seconds: int, speed: float, work: Path, port: int, seed: int, tz: str
    ) -> None:
        self.n, self.seconds, self.speed = straps, seconds, speed
        self.work, self.port, self.seed, self.tz = work, port, seed, tz
        # the radio carries about RADIO_BATCHES_PER_S notifications a second in all, shared
        # by the straps connected at once (SLOTS): each sends its backlog that often, and more
        # samples per notification when faster
        self.ble_period_s = max(0.02, min(straps, SLOTS) / RADIO_BATCHES_PER_S)

    async def run(
        self, screen: TopicRecorder, say: Callable[[str], None], stop: asyncio.Event
    ) -> dict[str, Any]:
        """The ward until its minutes are simulated or `stop` (a stop signal) ends it where it is."""
        radio = VirtualRadio()
        # the adapter's controller refuses an 8th link, as a real one does
        central = await radio.device("gateway", max_connections=SLOTS)
        devices: list[tuple[str, EmulatedStrap]] = []
        # each strap's label passkey, as commissioning reads it into the gateway's configuration
        passkeys = [secrets.randbelow(1_000_000) for _ in range(self.n)]
        for k in range(self.n):
            with doing(f"preparing strap KMC-{k + 1:04d}"):
                what, feed = scenario(k, self.seconds, self.seed)
                strap = EmulatedStrap(
                    await radio.device(f"strap{k}"),
                    f"KMC-{k + 1:04d}",
                    feed,
                    self.work / f"strap{k + 1}",
                    T2000,
                    passkey=passkeys[k],
                    ble_period_s=self.ble_period_s,
                )
            devices.append((what, strap))
            say(f"  KMC-{k + 1:04d}: {what}")
        clock = devices[0][1].clock
        cfg = GatewayConfig(
            TopicTree("kmc", "demo-site", "nicu"),
            self.tz,
            self.work / "gateway",
            BrokerConfig(port=self.port, client_id="kmc-demo-gateway"),
            tuple(
                StrapEntry(f"KMC-{k + 1:04d}", str(k + 1), f"INF-{k + 1:04d}", passkeys[k])
                for k in range(self.n)
            ),
            DetectorConfig(),
            # as a real controller: 7 links at once; the scheduler gives every strap its turns
            max_connections=SLOTS,
            max_age_s=MAX_AGE_S,
        )
        gateway = Gateway(
            cfg,
            central_access(central),
            now=lambda: clock.t + P.EPOCH_2000_UNIX,
            scan_timeout=3.0,
        )
        halt = asyncio.Event()  # the gateway's own stop: after the run, or on a stop signal
        task = asyncio.create_task(gateway.run(halt))
        try:
            result = await self._simulate(gateway, devices, screen, say, stop)
        finally:
            halt.set()
            await task
            for _, strap in devices:
                strap.close()
        if stop.is_set():
            return result
        _turns(gateway, say)
        return result | _summary(screen, result["produced"], devices, result["wall_s"], say)

    async def _simulate(
        self,
        gateway: Gateway,
        devices: list[tuple[str, EmulatedStrap]],
        screen: TopicRecorder,
        say: Callable[[str], None],
        stop: asyncio.Event,
    ) -> dict[str, Any]:
        """Connect every strap, tick the clock `seconds` times, wait for the broker to hold
        every sample; cut short (returning what is known) when `stop` is set."""
        limit = CONNECT_TIMEOUT_S + CONNECT_PER_STRAP_S * self.n
        deadline = time.monotonic() + limit
        for k, st in enumerate(gateway.straps.values(), start=1):
            if not await _first(st.link.reached, stop, deadline - time.monotonic()):
                if stop.is_set():
                    return {"produced": {}, "wall_s": 0.0}
                raise StepFailed(
                    f"connecting the straps: {st.entry.id} was not reached within "
                    f"{limit:g} s (the machine may be too busy for {self.n} straps)"
                )
            if k % 10 == 0 and k < self.n:
                say(f"  {k} of {self.n} straps reached")
        say("all straps reached; simulating")
        started = time.monotonic()
        ticks = 0
        for second in range(self.seconds):
            if stop.is_set():
                break
            ticks += 1
            for _, strap in devices:
                strap.tick()
            if second % 600 == 0 and second:
                received = sum(len(b["seq"]) for b in screen.bodies(leaf=SAMPLES))
                alerts = len(screen.bodies(leaf=ALERT))
                say(
                    f"  t+{second // 60:3d} min: {received} samples at the broker, {alerts} alert messages"
                )
            await asyncio.sleep(1 / self.speed)
        produced = {s.strap.cfg["strap_id"]: s.strap.store.next_seq for _, s in devices}
        ticked = time.monotonic() - started
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while not stop.is_set() and time.monotonic() < deadline:
            if (
                all(len(_seqs(screen, s)) >= n for s, n in produced.items())
                and gateway.publisher.pending() == 0
            ):
                break
            await asyncio.sleep(0.02)
        wall = time.monotonic() - started
        say(f"  simulated {ticks} s in {ticked:.1f} s ({ticks / max(ticked, 1e-9):.0f}x)")
        return {"produced": produced, "wall_s": wall}


async def _first(event: asyncio.Event, stop: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` until `stop` or the timeout; True when `event` came."""
    waits = [asyncio.ensure_future(e.wait()) for e in (event, stop)]
    try:
        await asyncio.wait(waits, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return event.is_set() and not stop.is_set()


def _store_and_analyze(
    screen: TopicRecorder, work: Path, tz: str, say: Callable[[str], None]
) -> None:
    """The demo's store: the samples the broker delivered, as a samples file; then kmc analyze."""
    from kmc_analysis.analyze import analyze_file

    path = work / "samples.csv"
    rows = 0
    unset = 0
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["time", "device", "infant_c", "outer_c", "contact", "worn", "battery_v", "seq"]
        )
        seen: set[tuple[str, int]] = set()  # delivery is at least once
        for body in screen.bodies(leaf=SAMPLES):
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
    summary = analyze_file(path, work / "analysis", tz=tz)
    for line in summary.lines()[1:]:
        say(line)


def _turns(gateway: Gateway, say: Callable[[str], None]) -> None:
    """How the straps shared the adapter's slots: visits, their set-up and length."""
    links = [st.link for st in gateway.straps.values()]
    setups = sorted(t for link in links for t in link.stats.setup_s)
    visits = sorted(t for link in links for t in link.stats.visit_s)
    if not visits:
        return
    say(
        f"  turns: {sum(link.stats.visits for link in links)} visits on {SLOTS} slots; "
        f"set-up median {1000 * setups[len(setups) // 2]:.0f} ms, "
        f"visit median {visits[len(visits) // 2]:.1f} s (wall time)"
    )


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
        sessions = [s for s in screen.bodies(leaf=SESSION) if s["strap"] == strap_id]
        say(f"  {strap_id}: {len(got)}/{n} samples received, {len(sessions)} sessions ended")
    latencies = []
    alerts = screen.bodies(leaf=ALERT)
    for a in alerts:
        if a["state"] != ACTIVE:
            continue
        start, raised = iso_seconds(a["start"]), iso_seconds(a["raised"])
        latencies.append(raised - start)
        say(
            f"  alert {a['kind']} on {a['strap']} (bed {a.get('bed', '')}): episode start {a['start']}, raised {raised - start:.0f} s later (simulated)"
        )
    say(f"  samples lost: {lost}; {len(alerts)} alert messages; {wall:.1f} s of wall time")
    return {"lost": lost, "alerts": alerts, "latencies_s": latencies}


def _seqs(screen: TopicRecorder, strap_id: str) -> set[int]:
    return {s for b in screen.bodies(leaf=SAMPLES) if b["strap"] == strap_id for s in b["seq"]}
