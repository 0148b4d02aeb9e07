"""Benchmark: how many straps one gateway core serves at 1 Hz, and alert latency to MQTT.

    python benchmarks/bench_gateway.py                # 200 straps
    python benchmarks/bench_gateway.py --straps 400

The gateway's own work per notification is measured: numpy decode, publishing the samples
(JSON into the on-disk outbox, then QoS 1 to a real Mosquitto), the incremental detector, and
the state/alert messages. The BLE transport is not: in a ward BlueZ does it in C, and the
bumble emulation used in tests would measure Python's BLE stack instead of the gateway.

1. Throughput: every strap's first 7 minutes (one sample per notification, as at 1 Hz) are fed
   as fast as possible; CPU seconds per strap-second give the straps one core can serve.
2. Latency: then one simulated second per wall second, every strap, while every 10th baby cools;
   each alert's latency is from handing the notification that completed the 60 s persistence
   to the gateway, to a subscriber receiving the alert from the broker (p50 / p99).
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
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
from kmc_host.detect import DetectorConfig  # noqa: E402
from kmc_host.gateway.config import GatewayConfig, StrapEntry  # noqa: E402
from kmc_host.gateway.service import Gateway  # noqa: E402
from kmc_host.mqtt import BrokerConfig, TopicTree  # noqa: E402
from kmc_testbed.recorder import TopicRecorder  # noqa: E402
from packets import T2000, notifications, records  # noqa: E402
from servers import Mosquitto  # noqa: E402

WARMUP_S = 420  # settled, history in the detector
LIVE_S = 100
COOL_AT = 440  # every 10th baby drops to 35.4 C here: cold_stress and moderate at +60 s


def packets(strap: int, seconds: int) -> list[bytes]:
    """One measurement notification per second, as the strap sends them at 1 Hz."""
    cold = strap % 10 == 0
    temp = np.where((np.arange(seconds) >= COOL_AT) & cold, 35.4, 36.8)
    return notifications(records(seconds, np.round(temp * 100).astype(np.int16), 3000), 1)


async def bench(n: int, work: Path, port: int) -> dict[str, float]:
    seconds = WARMUP_S + LIVE_S
    streams = {f"S{k:04d}": packets(k, seconds) for k in range(n)}
    cfg = GatewayConfig(
        TopicTree("kmc", "bench", "ward"),
        "UTC",
        work / "gateway",
        BrokerConfig(port=port, client_id="bench-gateway"),
        tuple(StrapEntry(s) for s in streams),
        DetectorConfig(),
        32,
    )
    clock = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
    gw = Gateway(cfg, now=lambda: clock["t"])
    gw.publisher.start()
    stop = asyncio.Event()
    pump = asyncio.create_task(gw.publisher.run(stop))
    while not gw.publisher.connected.is_set():
        await asyncio.sleep(0.02)

    # 1. throughput: the warm-up as fast as possible
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for second in range(WARMUP_S):
        clock["t"] = T2000 + P.EPOCH_2000_UNIX + second
        for strap, stream in streams.items():
            await gw._on_batch(strap, P.decode_measurement(stream[second]))
        if second % 20 == 0:
            await asyncio.sleep(0)  # let the pump send
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    strap_seconds = n * WARMUP_S
    while gw.publisher.pending():
        await asyncio.sleep(0.05)

    # 2. latency: real time, one simulated second per second
    listener = TopicRecorder(port, "kmc/+/+/+/alert", client_id="bench-screen")
    await asyncio.sleep(0.3)
    handed: dict[tuple[str, int], float] = {}
    for second in range(WARMUP_S, seconds):
        tick = time.monotonic()
        clock["t"] = T2000 + P.EPOCH_2000_UNIX + second
        for strap, stream in streams.items():
            handed[(strap, second)] = time.monotonic()
            await gw._on_batch(strap, P.decode_measurement(stream[second]))
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    await asyncio.sleep(2)
    stop.set()
    await pump
    gw.publisher.stop()
    listener.close()
    latencies = []
    for t_recv, alert in listener.timed("alert"):
        if alert.get("state") != "active":
            continue
        start = calendar.timegm(time.strptime(alert["start"], "%Y-%m-%dT%H:%M:%SZ"))
        trigger = int(start - P.EPOCH_2000_UNIX - T2000) + 59  # the 60th second beyond
        latencies.append(t_recv - handed[(alert["strap"], trigger)])
    lat = np.array(latencies)
    return {
        "straps": n,
        "throughput_strap_samples_per_cpu_s": round(strap_seconds / cpu),
        "cpu_ms_per_strap_second": round(1000 * cpu / strap_seconds, 3),
        "straps_per_core_at_1hz": int(strap_seconds / cpu),
        "warmup_wall_s": round(wall, 1),
        "alerts": int(lat.size),
        "alert_latency_p50_s": round(float(np.percentile(lat, 50)), 3)
        if lat.size
        else float("nan"),
        "alert_latency_p99_s": round(float(np.percentile(lat, 99)), 3)
        if lat.size
        else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--straps", type=int, default=200)
    args = ap.parse_args()
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        sys.exit("needs Mosquitto (apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp)).start()
        try:
            result = asyncio.run(bench(args.straps, Path(tmp), broker.port))
        finally:
            broker.stop()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"gateway_{args.straps}.json").write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:<36} {v}")


if __name__ == "__main__":
    main()
