"""Benchmark: a whole ward through a few connection slots (the gateway's connection scheduler).

    python benchmarks/bench_scheduler.py          # 40 straps, 1 adapter, 30 min in real time
    python benchmarks/bench_scheduler.py --straps 80 --adapters 2 --gateway process
    python benchmarks/bench_scheduler.py --straps 20 --minutes 5 --speed 2  # quick

Emulated straps (the firmware's own code, on bumble) sample at 1 Hz on a virtual radio whose
controllers hold 7 connections each; the production gateway (bleak on the bumble backend, the
scheduler, the detector, MQTT to a real Mosquitto) serves them. Every 10th baby cools to 35.4 C
from its 600th sample on.

Where the gateway runs (`--gateway`):
- `inline` (default): in this process, on the emulated adapters' bumble devices. Time is
  simulated `--speed` times faster than real time, for the straps, the gateway's clocks and the
  radio's delays alike; only CPU time is not scaled, so the figures are if anything
  pessimistic. The straps are commissioned first (one pairing each, a one-time event at a
  ward) and start sampling when every strap has been reached. The gateway's own counters give
  the visit and set-up times.
- `process`: `kmc gateway` in a process of its own, as on a ward, driving each emulated
  adapter as a USB dongle over a bumble `tcp-client:` HCI transport ([[ble.adapters]]), in real
  time (`--speed 1`). The straps sample from the start; the clock starts when every strap has
  samples at the broker. Visit time is read off the straps' controllers (link up to link down),
  and the CPU time of the gateway, of this process (the straps and the radio) and of the broker
  is measured over the run: the gateway's share shows whether it or the emulation is the limit.

The radio (kmc_testbed.radio) refuses an 8th connection per controller, connects only at the
strap's next advert (every 250 ms) plus two connection intervals, and scales its delays with
the simulation. With two adapters they stand 6 m apart and the cots in a row between them.

Figures (JSON in benchmarks/results/scheduler-<straps>x<adapters>[-process].json):
- every sample at the broker exactly once (per strap: all sequence numbers, no duplicates);
- the age of each strap's newest data, sampled every simulated second for every strap: p50,
  p99, max (goal: p99 <= max_age_s + 5 s). `inline`: at the gateway's detector; `process`: at
  the broker (newest sample taken minus newest sample published, so never less than at the
  gateway);
- visits per second and visit time (connect to disconnect), set-up time (connect to resumed,
  `inline` only);
- cold-alert latency: from the first cold sample to the alert's arrival at an MQTT subscriber
  (goal: p99 <= 60 s persistence + 30 s);
- per strap-hour: the time connected (against 3600 s for a strap always connected), the
  advertising events and the scan responses it sent (what the battery budget in hardware/
  README.md turns into radio-on time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import central_access
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import AdapterEntry, GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import ALERT, SAMPLES, BrokerConfig, TopicTree
from kmc_testbed.radio import TcpDongle, VirtualRadio
from kmc_testbed.servers import Mosquitto, free_port, stop_process
from kmc_testbed.strap import EmulatedStrap, SensorFeed

ROOT = Path(__file__).resolve().parents[1]
T2000 = 825_638_400  # 2026-03-01T00:00:00Z in the straps' 2000 epoch (inline runs)
COOL_AFTER = 600  # samples: every 10th baby cools from here on
SLOTS = 7
MAX_AGE_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def feed(k: int) -> SensorFeed:
    cold = k % 10 == 0
    return SensorFeed(infant_c=lambda i: 35.4 if cold and i >= COOL_AFTER else 36.8)


def strap_id(k: int) -> str:
    return f"S{k:04d}"


def passkey(k: int) -> int:
    return 100000 + k


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


class Tally:
    """What a subscriber at the broker sees, counted as it arrives: each strap's sequence
    numbers (duplicates counted), its newest one, and the alerts with their arrival times."""

    def __init__(self, port: int) -> None:
        self.seqs: dict[str, set[int]] = {}
        self.newest: dict[str, int] = {}
        self.duplicates = 0
        self.alerts: list[tuple[float, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="bench-screen", clean_session=False
        )
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe("kmc/#", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        leaf = msg.topic.rsplit("/", 1)[-1]
        if leaf not in (SAMPLES, ALERT):
            return
        body = json.loads(msg.payload)
        with self._lock:
            if leaf == ALERT:
                self.alerts.append((time.monotonic(), body))
                return
            have = self.seqs.setdefault(body["strap"], set())
            for seq in body["seq"]:
                if seq in have:
                    self.duplicates += 1
                have.add(seq)
            if body["seq"]:
                self.newest[body["strap"]] = max(self.newest.get(body["strap"], -1), *body["seq"])

    def count(self, strap: str, below: int) -> int:
        """How many of `strap`'s sequence numbers 0..below-1 arrived."""
        with self._lock:
            return sum(1 for s in self.seqs.get(strap, ()) if s < below)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Ward:
    """The straps on a virtual radio, with the controllers' own counts of what they sent and
    how long they were linked (polled, as a visit lasts a second or more)."""

    def __init__(self, radio: VirtualRadio, straps: list[EmulatedStrap]) -> None:
        self.radio = radio
        self.straps = straps
        self.controllers = [radio.controller(s.ble.device) for s in straps]
        self.links: list[float] = []  # durations of links that ended, seconds (wall)
        self._up: dict[int, tuple[object, float]] = {}  # strap index -> (connection, since)
        self.connected_s = 0.0  # strap-seconds with a link up
        self.ticks: list[float] = []  # monotonic time of each tick

    @classmethod
    async def on(cls, radio: VirtualRadio, n: int, adapters: int, work: Path, t2000: int) -> Ward:
        straps = []
        for k in range(n):
            device = await radio.device(
                f"strap{k}", position=(6.0 * (adapters - 1) * k / max(n - 1, 1), 2.0)
            )
            straps.append(
                EmulatedStrap(
                    device, strap_id(k), feed(k), work / f"strap{k}", t2000, passkey=passkey(k)
                )
            )
        return cls(radio, straps)

    def tick(self) -> None:
        self.ticks.append(time.monotonic())
        for strap in self.straps:
            strap.tick()

    def reset_counts(self) -> None:
        for c in self.controllers:
            c.adverts_sent = c.scan_responses_sent = 0
        self.links.clear()
        self.connected_s = 0.0

    def watch_links(self, period: float) -> None:
        """One poll: links that started or ended since the last (every `period` wall s)."""
        now = time.monotonic()
        for i, c in enumerate(self.controllers):
            conn = next(iter(c.le_connections.values()), None)
            seen = self._up.get(i)
            if seen is not None and seen[0] is not conn:
                self.links.append(now - seen[1])
                del self._up[i]
                seen = None
            if conn is not None:
                if seen is None:
                    self._up[i] = (conn, now)
                self.connected_s += period

    def produced(self) -> dict[str, int]:
        return {s.strap.cfg["strap_id"]: int(s.strap.store.next_seq) for s in self.straps}

    def close(self) -> None:
        for strap in self.straps:
            strap.close()


async def watching(ward: Ward, period: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        ward.watch_links(period)
        await asyncio.sleep(period)


def config_file(work: Path, n: int, hci_ports: list[int], broker_port: int) -> Path:
    """The gateway's TOML, as a ward would write it: the straps with their label passkeys and
    one [[ble.adapters]] entry per dongle."""
    lines = [
        "[gateway]",
        'site = "bench"',
        'ward = "ward"',
        'timezone = "UTC"',
        f'data_dir = "{work / "gateway"}"',
        f"max_connections = {SLOTS}",
        f"max_age_s = {MAX_AGE_S:g}",
        "[mqtt]",
        f"port = {broker_port}",
    ]
    for k in range(n):
        lines += [
            "[[straps]]",
            f'id = "{strap_id(k)}"',
            f'bed = "{k + 1}"',
            f'infant = "I{k:04d}"',
            f"passkey = {passkey(k)}",
        ]
    for port in hci_ports:
        lines += ["[[ble.adapters]]", f'hci = "tcp-client:127.0.0.1:{port}"']
    path = work / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def run_window(
    ward: Ward, tally: Tally, seconds: int, speed: float, newest_at: Any, start_seq: dict[str, int]
) -> tuple[list[float], float]:
    """`seconds` simulated seconds of 1 Hz samples; after each tick, every strap's data age:
    the time since its newest sample at `newest_at(strap)` was taken (sample k at second k of
    the strap; from the window's start on), in seconds."""
    ages: list[float] = []
    t0 = time.monotonic()
    for i in range(seconds):
        ward.tick()
        for sid, taken in ward.produced().items():
            newest = max(newest_at(sid), start_seq[sid] - 1)
            ages.append(float(taken - newest))
        await asyncio.sleep(max(0.0, t0 + (i + 1) / speed - time.monotonic()))
    return ages, time.monotonic() - t0 - seconds / speed


async def wait_delivered(ward: Ward, tally: Tally, timeout: float) -> dict[str, int]:
    produced = ward.produced()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(tally.count(s, m) >= m for s, m in produced.items()):
            break
        await asyncio.sleep(0.2)
    return produced


def figures(
    ward: Ward,
    tally: Tally,
    produced: dict[str, int],
    ages: list[float],
    seconds: int,
    speed: float,
    visits: list[float],
) -> dict[str, Any]:
    n = len(ward.straps)
    hours = seconds / 3600
    missing = sum(m - tally.count(s, m) for s, m in produced.items())
    latencies = [  # from the straps' first cold sample to the alert's arrival at a subscriber
        (at - ward.ticks[COOL_AFTER]) * speed
        for at, a in tally.alerts
        if a["state"] == "active" and a["kind"] == "cold_stress" and len(ward.ticks) > COOL_AFTER
    ]
    return {
        "samples": sum(produced.values()),
        "missing": missing,
        "duplicates_at_broker": tally.duplicates,
        "age_p50_s": round(pct(ages, 50), 1),
        "age_p99_s": round(pct(ages, 99), 1),
        "age_max_s": round(max(ages), 1),
        "visits_per_s": round(len(visits) / seconds, 2),
        "visit_p50_s": round(pct(visits, 50), 2),
        "visit_p99_s": round(pct(visits, 99), 2),
        "cold_alerts": len(latencies),
        "cold_alert_latency_p99_s": round(pct(latencies, 99), 1),
        "cold_alert_latency_max_s": round(max(latencies), 1) if latencies else None,
        "connected_s_per_strap_hour": round(ward.connected_s * speed / n / hours, 1),
        "adverts_per_strap_hour": round(sum(c.adverts_sent for c in ward.controllers) / n / hours),
        "scan_responses_per_strap_hour": round(
            sum(c.scan_responses_sent for c in ward.controllers) / n / hours
        ),
        "signal_lost_raised": sum(1 for _, a in tally.alerts if a["kind"] == "signal_lost"),
    }


async def bench_inline(
    n: int, adapters: int, seconds: int, speed: float, work: Path, port: int
) -> dict:
    radio = VirtualRadio(time_scale=speed)  # the radio's delays as fast as the ward
    # each adapter a controller that refuses an 8th link; two adapters 6 m apart, the straps
    # in cots between them
    centrals = [
        await radio.device(f"gateway{a}", max_connections=SLOTS, position=(6.0 * a, 0.0))
        for a in range(adapters)
    ]
    ward = await Ward.on(radio, n, adapters, work, T2000)
    clock = ward.straps[0].clock

    def sim() -> float:  # the straps' clock: wall-clock time for the gateway
        return clock.t + P.EPOCH_2000_UNIX

    def elapsed() -> float:  # the gateway's monotonic clock, as fast as the simulation
        return time.monotonic() * speed

    cfg = GatewayConfig(
        TopicTree("kmc", "bench", "ward"),
        "UTC",
        work / "gateway",
        BrokerConfig(port=port, client_id="bench-gateway"),
        tuple(StrapEntry(strap_id(k), str(k + 1), f"I{k:04d}", passkey(k)) for k in range(n)),
        DetectorConfig(),
        max_connections=SLOTS,
        max_age_s=MAX_AGE_S,
        adapters=tuple(AdapterEntry(f"hci{a}", None, SLOTS) for a in range(adapters)),
    )
    access = {f"hci{a}": central_access(c) for a, c in enumerate(centrals)}
    gw = Gateway(cfg, access, now=sim, elapsed=elapsed)
    tally = Tally(port)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    began = time.monotonic()
    for st in gw.straps.values():  # commissioning: each strap paired once
        await asyncio.wait_for(st.link.reached.wait(), 60 + 5 * n)
    commissioned_s = time.monotonic() - began
    links = [st.link for st in gw.straps.values()]
    for link in links:  # from here on, the figures
        link.stats.visit_s.clear()
        link.stats.setup_s.clear()
        link.stats.visits = 0
    ward.reset_counts()
    watch_stop = asyncio.Event()
    watcher = asyncio.create_task(watching(ward, 0.1 / speed, watch_stop))
    start = sim()

    def newest_at_gateway(sid: str) -> int:  # as a sequence number: samples are 1 s apart
        last = gw.straps[sid].detector.last_time  # NaN: nothing yet
        return int(round(last - start)) if last >= start else -1

    ages, lag_s = await run_window(
        ward, tally, seconds, speed, newest_at_gateway, {s: 0 for s in ward.produced()}
    )
    watch_stop.set()
    await watcher
    produced = await wait_delivered(ward, tally, 120)
    stop.set()
    await task
    ward.close()
    tally.close()
    visits = [t for link in links for t in link.stats.visit_s]
    setups = [t for link in links for t in link.stats.setup_s]
    out = {
        "straps": n,
        "adapters": adapters,
        "gateway": "inline",
        "slots_per_adapter": SLOTS,
        "max_age_s": MAX_AGE_S,
        "simulated_s": seconds,
        "speed": speed,
        "commissioning_wall_s": round(commissioned_s, 1),
        "fell_behind_wall_s": round(lag_s, 1),
    }
    out.update(figures(ward, tally, produced, ages, seconds, speed, visits))
    out.update(
        {
            "setup_p50_s": round(pct(setups, 50), 3),
            "setup_p99_s": round(pct(setups, 99), 3),
            "duplicates_at_gateway": sum(link.stats.duplicates for link in links),
            "connect_failures": sum(link.stats.connect_failures for link in links),
            "stalls": sum(link.stats.stalls for link in links),
        }
    )
    return out


async def bench_process(n: int, adapters: int, seconds: int, work: Path, broker: Mosquitto) -> dict:
    radio = VirtualRadio()
    dongles = [
        TcpDongle(radio, free_port(), position=(6.0 * a, 0.0), max_connections=SLOTS)
        for a in range(adapters)
    ]
    for dongle in dongles:
        await dongle.plug()
    t2000 = int(time.time()) - P.EPOCH_2000_UNIX  # the gateway keeps the straps' clocks on UTC
    ward = await Ward.on(radio, n, adapters, work, t2000)
    tally = Tally(broker.port)
    cfg = config_file(work, n, [d.port for d in dongles], broker.port)
    log = (work / "gateway.log").open("ab")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "kmc_host", "gateway", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    watch_stop = asyncio.Event()
    watcher = asyncio.create_task(watching(ward, 0.1, watch_stop))
    try:
        began = time.monotonic()
        t0 = time.monotonic()
        while len(tally.newest) < n:  # commissioning, while the straps sample
            if gateway.poll() is not None:
                raise RuntimeError(
                    f"kmc gateway exited ({gateway.returncode}): {work / 'gateway.log'}"
                )
            if time.monotonic() - began > 60 + 5 * n:
                raise TimeoutError(f"{n - len(tally.newest)} straps never reached the broker")
            ward.tick()
            await asyncio.sleep(max(0.0, t0 + len(ward.ticks) - time.monotonic()))
        commissioned_s = time.monotonic() - began
        ward.reset_counts()
        start_seq = ward.produced()
        cpu0 = (cpu_s(gateway.pid), time.process_time(), cpu_s(broker.proc.pid))  # type: ignore[union-attr]
        ages, lag_s = await run_window(
            ward, tally, seconds, 1.0, lambda sid: tally.newest.get(sid, -1), start_seq
        )
        cpu1 = (cpu_s(gateway.pid), time.process_time(), cpu_s(broker.proc.pid))  # type: ignore[union-attr]
        watch_stop.set()
        await watcher
        produced = await wait_delivered(ward, tally, 120)
    finally:
        watch_stop.set()
        stop_process(gateway, timeout=30)
        log.close()
        ward.close()
        tally.close()
    out = {
        "straps": n,
        "adapters": adapters,
        "gateway": "process",
        "slots_per_adapter": SLOTS,
        "max_age_s": MAX_AGE_S,
        "simulated_s": seconds,
        "speed": 1.0,
        "commissioning_wall_s": round(commissioned_s, 1),
        "fell_behind_wall_s": round(lag_s, 1),
        "cpu_gateway_pct": round(100 * (cpu1[0] - cpu0[0]) / seconds, 1),
        "cpu_ward_emulation_pct": round(100 * (cpu1[1] - cpu0[1]) / seconds, 1),
        "cpu_broker_pct": round(100 * (cpu1[2] - cpu0[2]) / seconds, 1),
    }
    out.update(figures(ward, tally, produced, ages, seconds, 1.0, ward.links))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--straps", type=int, default=40)
    ap.add_argument("--adapters", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    ap.add_argument("--gateway", choices=("inline", "process"), default="inline")
    args = ap.parse_args()
    if not 1 <= args.straps <= 200 or not 1 <= args.adapters <= 8:
        ap.error("--straps must be 1..200 and --adapters 1..8")
    if args.gateway == "process" and args.speed != 1.0:
        ap.error(
            "--gateway process runs in real time (the gateway's clocks are its own): --speed 1"
        )
    work = Path(tempfile.mkdtemp(prefix="kmc-bench-sched-"))
    broker = Mosquitto(work).start()
    seconds = int(args.minutes * 60)
    try:
        if args.gateway == "process":
            result = asyncio.run(bench_process(args.straps, args.adapters, seconds, work, broker))
        else:
            result = asyncio.run(
                bench_inline(args.straps, args.adapters, seconds, args.speed, work, broker.port)
            )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-process" if args.gateway == "process" else ""
    path = out / f"scheduler-{args.straps}x{args.adapters}{suffix}.json"
    path.write_text(json.dumps(result, indent=1))
    for key, value in result.items():
        print(f"{key:30s} {value}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
