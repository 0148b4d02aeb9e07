"""Benchmark: a simulated ward-week through MQTT and `kmc sink` into InfluxDB, the sink's new
line protocol and its previous path side by side, InfluxDB's own ingest of the same points, then
`kmc report` from InfluxDB.

    python benchmarks/bench_sink.py                            # 10 straps x 7 days, both paths
    python benchmarks/bench_sink.py --straps 2 --days 1        # a quick look
    python benchmarks/bench_sink.py --paths vectorised --no-raw --no-report

The week is simulated (`kmc simulate`) and encoded as the gateway's `samples` messages (60
samples each) before any clock starts. For each path, fresh servers: a real Mosquitto (with the
in-flight window of deploy/mosquitto/kmc.conf, 200) and a real InfluxDB 1.x; a `kmc sink`
process (the command a ward runs) with `$KMC_SINK_LINES` set to the path (`reference`: the
previous, point-at-a-time line protocol; `vectorised`: the new); the messages published with
QoS 1; the clock runs from the first publish until InfluxDB has every point (its own counter of
points written, `/debug/vars`, then an exact count). Exactly once: the samples stored per strap
equal those published, nothing unclocked, nothing rejected. The CPU seconds each process spent
in that time say where the two cores went.

Then InfluxDB alone (`raw`): a fresh server, the same points as line protocol built beforehand,
POSTed `batch_lines` at a time, two requests in flight, as the sink does: the ceiling the sink
is measured against. And `kmc report --influx` on the last path's InfluxDB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kmc_analysis.samples_io import load_straps  # noqa: E402
from kmc_analysis.simulate import simulate_ward  # noqa: E402
from kmc_host.sink.config import LINES_ENV  # noqa: E402
from kmc_host.sink.schema import REFERENCE, VECTORISED, to_lines_many  # noqa: E402
from kmc_host.sink.service import WRITES_IN_FLIGHT  # noqa: E402
from packets import samples_messages  # noqa: E402
from servers import InfluxDB, Mosquitto  # noqa: E402

TZ = "Africa/Addis_Ababa"
BATCH_LINES = 5000  # the sink's default [sink] batch_lines
CLIENT_ID = "bench-sink"


def messages(device: str, bed: int, s, per: int = 60):
    """A minute of samples a message, readings rounded to 0.01 as the gateway sends them."""
    for msg in samples_messages(device, str(bed), f"INF-{bed:02d}", s, per, digits=2):
        yield json.dumps(msg, separators=(",", ":")).encode()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def points_written(influx: InfluxDB) -> int:
    """InfluxDB's own counter of points written over HTTP (cheap, unlike a count query)."""
    with urllib.request.urlopen(f"{influx.url}/debug/vars", timeout=10) as resp:
        stats = json.loads(resp.read())
    return sum(v["values"]["pointsWrittenOK"] for k, v in stats.items() if k.startswith("httpd"))


def per_strap(influx: InfluxDB, measurement: str = "kmc_sample") -> dict[str, int]:
    series = influx.query(f'SELECT count(seq) FROM "{measurement}" GROUP BY strap')
    return {s["tags"]["strap"]: int(s["values"][0][1]) for s in series}


def wait_online(port: int, timeout: float = 30) -> None:
    """Until the sink's retained status says online (it subscribes before it says so)."""
    online = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-status")

    def on_message(client, userdata, msg) -> None:
        if json.loads(msg.payload).get("state") == "online":
            online.set()

    sub.on_message = on_message
    sub.on_connect = lambda c, *_: c.subscribe(f"kmc/sink/{CLIENT_ID}/status", qos=1)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    try:
        if not online.wait(timeout):
            raise SystemExit(f"the sink did not come online in {timeout} s")
    finally:
        sub.disconnect()
        sub.loop_stop()


def run_path(
    path: str, work: Path, bodies: list[tuple[str, bytes]], want: dict[str, int], keep: bool
) -> tuple[dict, InfluxDB | None]:
    """Fresh servers, a `kmc sink` on `path`, every message published; the figures."""
    work.mkdir(parents=True)
    (work / "mq").mkdir()
    broker = Mosquitto(work / "mq")
    with broker.config.open("a") as f:  # as a ward's broker: deploy/mosquitto/kmc.conf
        f.write("max_inflight_messages 200\n")
    broker.start()
    influx = InfluxDB(work).start()
    sink_dir = work / "sink"
    config = work / "sink.toml"
    config.write_text(
        f'[sink]\ndata_dir = "{sink_dir}"\nbatch_lines = {BATCH_LINES}\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "{CLIENT_ID}"\n'
        f'[influx]\nurl = "{influx.url}"\ndatabase = "kmc"\ncreate_database = true\n'
    )
    log = (work / "sink.log").open("wb")
    sink = subprocess.Popen(
        [sys.executable, "-m", "kmc_host", "sink", "--config", str(config)],
        stdout=log,
        stderr=log,
        env=os.environ | {LINES_ENV: path},
    )
    total = sum(want.values())
    try:
        wait_online(broker.port)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-gateway")
        pub.max_inflight_messages_set(200)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        procs = {
            "sink": sink.pid,
            "influxd": influx.proc.pid,
            "mosquitto": broker.proc.pid,
            "publisher (this process)": os.getpid(),
        }
        cpu0 = {k: cpu_s(pid) for k, pid in procs.items()}
        t0 = time.perf_counter()
        for n, (topic, body) in enumerate(bodies, start=1):
            info = pub.publish(topic, body, qos=1)
            if n % 200 == 0:
                info.wait_for_publish(60)
        info.wait_for_publish(60)
        published = time.perf_counter() - t0
        while points_written(influx) < total:
            time.sleep(0.2)
            if time.perf_counter() - t0 > 7200:
                raise SystemExit("not every point written after two hours")
        stored = time.perf_counter() - t0
        cpu = {k: round(cpu_s(pid) - cpu0[k], 1) for k, pid in procs.items()}
        # InfluxDB counted every point it took; a point written twice (a replay) counts twice
        # there, so the exact figure is the count, waited for (a minute at most) if it is short
        got = per_strap(influx)
        while got != want and time.perf_counter() - t0 < stored + 60:
            time.sleep(1.0)
            got = per_strap(influx)
            stored = time.perf_counter() - t0
        pub.disconnect()
        pub.loop_stop()
    finally:
        sink.terminate()
        sink.wait(timeout=60)
        log.close()
        broker.stop()
    unclocked = sum(per_strap(influx, "kmc_sample_unclocked").values())
    rejected = (sink_dir / "rejected.jsonl").exists()
    result = {
        "samples_published": total,
        "samples_stored": sum(got.values()),
        "exactly_once": got == want and unclocked == 0 and not rejected,
        "publish_s": round(published, 1),
        "published_to_stored_s": round(stored, 1),
        "samples_per_s": int(total / stored),
        "cpu_s": cpu,
    }
    if keep:
        return result, influx
    influx.stop()
    shutil.rmtree(work, ignore_errors=True)
    return result, None


def raw_ingest(work: Path, bodies: list[tuple[str, bytes]]) -> dict:
    """InfluxDB alone: the same points, built before the clock starts, POSTed as the sink
    posts them (batch_lines a request, WRITES_IN_FLIGHT at a time)."""
    chunks: list[bytes] = []
    lines: list[str] = []
    points = 0
    for a in range(0, len(bodies), 500):
        for out in to_lines_many(bodies[a : a + 500]):
            assert not isinstance(out, Exception)
            lines.extend(out)
        while len(lines) >= BATCH_LINES or (lines and a + 500 >= len(bodies)):
            chunks.append("\n".join(lines[:BATCH_LINES]).encode())
            points += len(lines[:BATCH_LINES])
            del lines[:BATCH_LINES]
    work.mkdir(parents=True)
    influx = InfluxDB(work).start()
    try:
        influx.query("CREATE DATABASE kmc")
        url = f"{influx.url}/write?db=kmc&precision=ns"
        pid = influx.proc.pid
        c0 = cpu_s(pid)
        t0 = time.perf_counter()

        def post(body: bytes) -> None:
            urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read()

        with ThreadPoolExecutor(WRITES_IN_FLIGHT) as pool:
            list(pool.map(post, chunks))
        took = time.perf_counter() - t0
        cpu = cpu_s(pid) - c0
        stored = sum(per_strap(influx).values())
    finally:
        influx.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "writes_in_flight": WRITES_IN_FLIGHT,
        "points": points,
        "stored": stored,
        "s": round(took, 1),
        "points_per_s": int(points / took),
        "influxd_cpu_s": round(cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--straps", type=int, default=10)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument(
        "--paths",
        nargs="+",
        choices=[REFERENCE, VECTORISED],
        default=[REFERENCE, VECTORISED],
        help="the sink's line protocol paths to run, in this order ($KMC_SINK_LINES)",
    )
    ap.add_argument("--no-raw", action="store_true", help="skip InfluxDB's ingest alone")
    ap.add_argument("--no-report", action="store_true", help="skip kmc report --influx")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kmc-bench-sink-"))
    samples, truth, _ = simulate_ward(
        work / "week.parquet", args.straps, args.days, seed=3, tz=TZ, start="2026-03-02"
    )
    _, straps = load_straps(samples)
    want = {device: len(s) for device, s in straps.items()}
    bodies = [
        (f"kmc/site1/ward-a/{device}/samples", body)
        for k, (device, s) in enumerate(sorted(straps.items()), start=1)
        for body in messages(device, k, s)
    ]
    result: dict = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "straps": args.straps,
        "days": args.days,
        "samples": sum(want.values()),
        "messages": len(bodies),
        "paths": {},
    }
    influx = None
    for k, path in enumerate(args.paths):
        last = k == len(args.paths) - 1 and not args.no_report
        fig, influx = run_path(path, work / path, bodies, want, keep=last)
        result["paths"][path] = fig
        print(f"{path}: {json.dumps(fig)}", flush=True)
    figs = result["paths"]
    if REFERENCE in figs and VECTORISED in figs:
        ratio = figs[VECTORISED]["samples_per_s"] / figs[REFERENCE]["samples_per_s"]
        result["vectorised_over_reference"] = round(ratio, 2)
    if not args.no_raw:
        result["influxdb_alone"] = raw_ingest(work / "raw", bodies)
        best = max(f["samples_per_s"] for f in figs.values())
        result["sink_over_influxdb_alone"] = round(
            best / result["influxdb_alone"]["points_per_s"], 2
        )
    if influx is not None:
        cfg = work / "influx.toml"
        cfg.write_text(f'[influx]\nurl = "{influx.url}"\ndatabase = "kmc"\n')
        t1 = time.perf_counter()
        rep = subprocess.run(
            [sys.executable, "-m", "kmc_host", "report", "--influx", str(cfg)]
            + ["--roster", str(truth / "roster.csv"), "--tz", TZ, "--site", "site1"]
            + ["--ward", "ward-a", "--out", str(work / "report")],
            capture_output=True,
            text=True,
        )
        result["report_from_influxdb_s"] = round(time.perf_counter() - t1, 1)
        result["report"] = str(work / "report" / "report.html")
        influx.stop()
        print(rep.stdout.strip() or rep.stderr.strip())
    print(json.dumps(result, indent=1))
    if not args.keep:
        for p in args.paths:
            shutil.rmtree(work / p / "sink", ignore_errors=True)
    ok = all(f["exactly_once"] for f in figs.values())
    if not ok:
        raise SystemExit("a path did not store every sample exactly once")


if __name__ == "__main__":
    main()
