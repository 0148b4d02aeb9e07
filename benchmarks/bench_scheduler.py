"""Benchmark: a whole ward through a few connection slots (the gateway's connection scheduler).

    python benchmarks/bench_scheduler.py          # 40 straps, 1 adapter, 30 min in real time
    python benchmarks/bench_scheduler.py --straps 80 --adapters 2
    python benchmarks/bench_scheduler.py --straps 20 --minutes 5 --speed 2  # quick

Emulated straps (the firmware's own code, on bumble) sample at 1 Hz on a virtual radio whose
controllers hold 7 connections each; the production gateway (bleak on the bumble backend, the
scheduler, the detector, MQTT to a real Mosquitto) serves them. Time is simulated `--speed`
times faster than real time, for the straps, the gateway's clocks and the radio's delays alike;
only CPU time is not scaled, so the figures are if anything pessimistic.

The straps are commissioned first (one pairing each, a one-time event at a ward); the clock
starts when every strap has been reached. Every 10th baby cools to 35.4 C after 10 minutes.

The radio (kmc_testbed.radio) refuses an 8th connection per controller, connects only at the
strap's next advert (every 250 ms) plus two connection intervals, and scales its delays with
the simulation. With two adapters they stand 6 m apart and the cots in a row between them.

Figures (JSON in benchmarks/results/scheduler-<straps>x<adapters>.json):
- every sample at the broker exactly once (per strap: all sequence numbers, no duplicates);
- the age of each strap's newest data at the gateway, sampled every simulated second for every
  strap: p50, p99, max (goal: p99 <= max_age_s + 5 s);
- visits per second and visit time (connect to disconnect), set-up time (connect to resumed);
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
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kmc_host import protocol as P  # noqa: E402
from kmc_host.ble.bumble_backend import central_access  # noqa: E402
from kmc_host.detect import DetectorConfig  # noqa: E402
from kmc_host.gateway.config import AdapterEntry, GatewayConfig, StrapEntry  # noqa: E402
from kmc_host.gateway.service import Gateway  # noqa: E402
from kmc_host.mqtt import ALERT, SAMPLES, BrokerConfig, TopicTree  # noqa: E402
from kmc_testbed.radio import VirtualRadio  # noqa: E402
from kmc_testbed.recorder import TopicRecorder  # noqa: E402
from kmc_testbed.servers import Mosquitto  # noqa: E402
from kmc_testbed.strap import EmulatedStrap, SensorFeed  # noqa: E402

T2000 = 825_638_400  # 2026-03-01T00:00:00Z in the straps' 2000 epoch
COOL_AFTER = 600  # samples: every 10th baby cools from here on
SLOTS = 7
MAX_AGE_S = 30.0


def feed(k: int) -> SensorFeed:
    cold = k % 10 == 0
    return SensorFeed(infant_c=lambda i: 35.4 if cold and i >= COOL_AFTER else 36.8)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def bench(n: int, adapters: int, seconds: int, speed: float, work: Path, port: int) -> dict:
    radio = VirtualRadio(time_scale=speed)  # the radio's delays as fast as the ward
    # each adapter a controller that refuses an 8th link; two adapters 6 m apart, the straps
    # in cots between them
    centrals = [
        await radio.device(f"gateway{a}", max_connections=SLOTS, position=(6.0 * a, 0.0))
        for a in range(adapters)
    ]
    straps = []
    for k in range(n):
        device = await radio.device(
            f"strap{k}", position=(6.0 * (adapters - 1) * k / max(n - 1, 1), 2.0)
        )
        straps.append(
            EmulatedStrap(
                device, f"S{k:04d}", feed(k), work / f"strap{k}", T2000, passkey=100000 + k
            )
        )
    clock = straps[0].clock

    def sim() -> float:  # the straps' clock: wall-clock time for the gateway
        return clock.t + P.EPOCH_2000_UNIX

    def elapsed() -> float:  # the gateway's monotonic clock, as fast as the simulation
        return time.monotonic() * speed

    cfg = GatewayConfig(
        TopicTree("kmc", "bench", "ward"),
        "UTC",
        work / "gateway",
        BrokerConfig(port=port, client_id="bench-gateway"),
        tuple(StrapEntry(f"S{k:04d}", str(k + 1), f"I{k:04d}", 100000 + k) for k in range(n)),
        DetectorConfig(),
        max_connections=SLOTS,
        max_age_s=MAX_AGE_S,
        adapters=tuple(AdapterEntry(f"hci{a}", None, SLOTS) for a in range(adapters)),
    )
    access = {f"hci{a}": central_access(c) for a, c in enumerate(centrals)}
    gw = Gateway(cfg, access, now=sim, elapsed=elapsed)
    recorder = TopicRecorder(port, client_id="bench-screen")
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    began = time.monotonic()
    for st in gw.straps.values():  # commissioning: each strap paired once
        await asyncio.wait_for(st.link.reached.wait(), 60 + 5 * n)
    commissioned_s = time.monotonic() - began
    for st in gw.straps.values():  # from here on, the figures
        st.link.stats.visit_s.clear()
        st.link.stats.setup_s.clear()
        st.link.stats.visits = 0
    controllers = [radio.controller(s.ble.device) for s in straps]
    for c in controllers:
        c.adverts_sent = c.scan_responses_sent = 0
    ages: list[float] = []
    connected_s = 0  # strap-seconds with a link up, as the straps' controllers say
    start = sim()
    t0 = time.monotonic()
    tick_at = []  # monotonic time of each sample's tick (sample i of every strap)
    for _ in range(seconds):
        tick_at.append(time.monotonic())
        for strap in straps:
            strap.tick()
        now = sim()
        for st in gw.straps.values():
            last = st.detector.last_time  # NaN: nothing since the clock started
            ages.append(now - (last if last >= start else start))
        connected_s += sum(bool(c.le_connections) for c in controllers)  # each second
        await asyncio.sleep(max(0.0, t0 + (_ + 1) / speed - time.monotonic()))
    lag_s = time.monotonic() - t0 - seconds / speed
    adverts = sum(c.adverts_sent for c in controllers)  # in the window only
    scan_responses = sum(c.scan_responses_sent for c in controllers)
    produced = {s.strap.cfg["strap_id"]: s.strap.store.next_seq for s in straps}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = _seqs(recorder)
        if all(len(got.get(s, ())) >= m for s, m in produced.items()):
            break
        await asyncio.sleep(0.2)
    stop.set()
    await task
    for strap in straps:
        strap.close()
    recorder_bodies = recorder.bodies(leaf=SAMPLES)
    alerts = recorder.bodies(leaf=ALERT)
    timed_alerts = recorder.timed(ALERT)
    recorder.close()
    seen: dict[str, list[int]] = {}
    for b in recorder_bodies:
        seen.setdefault(b["strap"], []).extend(b["seq"])
    missing = sum(m - len(set(seen.get(s, [])) & set(range(m))) for s, m in produced.items())
    duplicates = sum(len(v) - len(set(v)) for v in seen.values())
    links = [st.link for st in gw.straps.values()]
    visits = [t for link in links for t in link.stats.visit_s]
    setups = [t for link in links for t in link.stats.setup_s]
    latencies = []  # from the straps' first cold sample to the alert's arrival at a subscriber
    for at, a in timed_alerts:
        if a["state"] == "active" and a["kind"] == "cold_stress":
            latencies.append((at - tick_at[COOL_AFTER]) * speed)
    hours = seconds / 3600
    return {
        "straps": n,
        "adapters": adapters,
        "slots_per_adapter": SLOTS,
        "max_age_s": MAX_AGE_S,
        "simulated_s": seconds,
        "speed": speed,
        "commissioning_wall_s": round(commissioned_s, 1),
        "fell_behind_wall_s": round(lag_s, 1),
        "samples": sum(produced.values()),
        "missing": missing,
        "duplicates_at_broker": duplicates,
        "duplicates_at_gateway": sum(link.stats.duplicates for link in links),
        "age_p50_s": round(pct(ages, 50), 1),
        "age_p99_s": round(pct(ages, 99), 1),
        "age_max_s": round(max(ages), 1),
        "visits_per_s": round(len(visits) / seconds, 2),
        "visit_p50_s": round(pct(visits, 50), 2),
        "visit_p99_s": round(pct(visits, 99), 2),
        "setup_p50_s": round(pct(setups, 50), 3),
        "setup_p99_s": round(pct(setups, 99), 3),
        "cold_alerts": len(latencies),
        "cold_alert_latency_p99_s": round(pct(latencies, 99), 1),
        "cold_alert_latency_max_s": round(max(latencies), 1) if latencies else None,
        "connected_s_per_strap_hour": round(connected_s / n / hours, 1),
        "adverts_per_strap_hour": round(adverts / n / hours),
        "scan_responses_per_strap_hour": round(scan_responses / n / hours),
        "connect_failures": sum(link.stats.connect_failures for link in links),
        "stalls": sum(link.stats.stalls for link in links),
        "signal_lost_raised": sum(1 for a in alerts if a["kind"] == "signal_lost"),
    }


def _seqs(recorder: TopicRecorder) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for b in recorder.bodies(leaf=SAMPLES):
        out.setdefault(b["strap"], set()).update(b["seq"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--straps", type=int, default=40)
    ap.add_argument("--adapters", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kmc-bench-sched-"))
    broker = Mosquitto(work).start()
    try:
        result = asyncio.run(
            bench(args.straps, args.adapters, int(args.minutes * 60), args.speed, work, broker.port)
        )
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scheduler-{args.straps}x{args.adapters}.json"
    path.write_text(json.dumps(result, indent=1))
    for key, value in result.items():
        print(f"{key:28s} {value}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
