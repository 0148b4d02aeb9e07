"""Benchmark: a simulated ward-week through MQTT and `kmc sink` into InfluxDB, then `kmc report`
from InfluxDB.

    python benchmarks/bench_sink.py                  # 10 straps x 7 days
    python benchmarks/bench_sink.py --straps 4 --days 1

The week is simulated (`kmc simulate`), published as the gateway's `samples` messages (60 samples
each, QoS 1) to a real Mosquitto, stored by the production `Sink` in a real InfluxDB 1.x, and
counted back: every sample exactly once. Then `kmc report --influx` reads the week back with
InfluxQL and writes the report (its folder is printed). Figures: samples per second through the
sink (publish to stored), and the report's wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kmc_analysis.samples_io import load_straps  # noqa: E402
from kmc_analysis.simulate import simulate_ward  # noqa: E402
from kmc_testbed.servers import local_sink  # noqa: E402
from packets import samples_messages  # noqa: E402
from servers import InfluxDB, Mosquitto  # noqa: E402

TZ = "Africa/Addis_Ababa"


def messages(device: str, bed: int, s, per: int = 60):
    """A minute of samples a message, readings rounded to 0.01 as the gateway sends them."""
    for msg in samples_messages(device, str(bed), f"INF-{bed:02d}", s, per, digits=2):
        yield json.dumps(msg, separators=(",", ":")).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--straps", type=int, default=10)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kmc-bench-sink-"))
    samples, truth, _ = simulate_ward(
        work / "week.parquet", args.straps, args.days, seed=3, tz=TZ, start="2026-03-02"
    )
    _, straps = load_straps(samples)
    total = sum(len(s) for s in straps.values())
    (work / "mq").mkdir()
    broker = Mosquitto(work / "mq").start()
    influx = InfluxDB(work).start()
    sink = local_sink(work / "sink", broker.port, influx.url, "bench-sink")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-gateway")
    pub.max_inflight_messages_set(200)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    t0 = time.perf_counter()
    n_msgs = 0
    for k, (device, s) in enumerate(sorted(straps.items()), start=1):
        for body in messages(device, k, s):
            info = pub.publish(f"kmc/site1/ward-a/{device}/samples", body, qos=1)
            n_msgs += 1
            if n_msgs % 200 == 0:
                info.wait_for_publish(30)
    info.wait_for_publish(30)
    published = time.perf_counter() - t0
    while influx.count("kmc_sample", "seq") < total:
        time.sleep(0.5)
        if time.perf_counter() - t0 > 3600:
            raise SystemExit("not all samples stored after an hour")
    stored = time.perf_counter() - t0
    count = influx.count("kmc_sample", "seq")
    pub.loop_stop()
    sink.stop()

    cfg = work / "influx.toml"
    cfg.write_text(f'[influx]\nurl = "{influx.url}"\ndatabase = "kmc"\n')
    t1 = time.perf_counter()
    rep = subprocess.run(
        [
            sys.executable,
            "-m",
            "kmc_host",
            "report",
            "--influx",
            str(cfg),
            "--roster",
            str(truth / "roster.csv"),
            "--tz",
            TZ,
            "--site",
            "site1",
            "--ward",
            "ward-a",
            "--out",
            str(work / "report"),
        ],
        capture_output=True,
        text=True,
    )
    report_s = time.perf_counter() - t1
    influx.stop()
    broker.stop()
    print(rep.stdout.strip() or rep.stderr.strip())
    result = {
        "straps": args.straps,
        "days": args.days,
        "samples": total,
        "messages": n_msgs,
        "stored_in_influxdb": count,
        "exactly_once": count == total,
        "publish_s": round(published, 1),
        "published_to_stored_s": round(stored, 1),
        "samples_per_s_through_sink": int(total / stored),
        "report_from_influxdb_s": round(report_s, 1),
        "report": str(work / "report" / "report.html"),
    }
    print(json.dumps(result, indent=1))
    if not args.keep:
        shutil.rmtree(work / "sink", ignore_errors=True)
    assert np.isfinite(report_s)


if __name__ == "__main__":
    main()
