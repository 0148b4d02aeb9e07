"""Benchmark: `kmc report --influx` on a ward's stored week, beside the previous way of reading
it and beside `kmc report` of the same samples from a file.

    python benchmarks/bench_report.py                          # 10 straps x 7 days
    python benchmarks/bench_report.py --straps 40 --days 30 --no-previous   # a ward-month

The ward is simulated (`kmc simulate`'s model, seed 3) and stored in a fresh, real InfluxDB 1.x
as `kmc sink` stores it: the gateway's `samples` messages (60 samples each, readings exact)
turned into line protocol by the sink's own code and POSTed two requests at a time. Then, each
as a whole process: `kmc report --influx` (strap-days queried four at a time, answered as CSV),
`--repeat` times; once with KMC_INFLUX_READ=json (the previous way: a day of every strap a query,
answered as JSON); and `kmc report FILE` on the Parquet file the samples came from. The three
reports' sessions, daily hours and alerts must be identical (infant pseudonyms aside: the file
has none) before any time is printed. InfluxDB's CPU seconds during the reports say where the
two cores went. Then InfluxDB alone: the report's strap-day queries, one at a time, with the
fields it asks for (`sources.SAMPLE_FIELDS`) and with outer_c as well (what it asked before),
alternating, InfluxDB's CPU seconds for each set.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_sink import BATCH_LINES, cpu_s, per_strap  # noqa: E402

from kmc_analysis.samples_io import load_straps  # noqa: E402
from kmc_analysis.simulate import simulate_ward  # noqa: E402
from kmc_analysis.sources import SAMPLE_FIELDS  # noqa: E402
from kmc_host.sink.schema import to_lines_many  # noqa: E402
from kmc_host.sink.service import WRITES_IN_FLIGHT  # noqa: E402
from packets import samples_messages  # noqa: E402
from servers import InfluxDB  # noqa: E402

TZ = "Africa/Addis_Ababa"
KMC = [sys.executable, "-m", "kmc_host"]
TABLES = ("sessions", "daily", "alerts")


def line_batches(straps: dict) -> Iterator[bytes]:
    """The sink's line protocol for every strap's samples, BATCH_LINES a request."""
    lines: list[str] = []
    for k, (device, s) in enumerate(sorted(straps.items()), start=1):
        topic = f"kmc/site1/ward-a/{device}/samples"
        msgs = (
            (topic, json.dumps(m, separators=(",", ":")).encode())
            for m in samples_messages(device, str(k), f"INF-{k:02d}", s, 60)
        )
        while batch := [m for _, m in zip(range(500), msgs, strict=False)]:
            for out in to_lines_many(batch):
                assert not isinstance(out, Exception), out
                lines.extend(out)
            while len(lines) >= BATCH_LINES:
                yield "\n".join(lines[:BATCH_LINES]).encode()
                del lines[:BATCH_LINES]
    if lines:
        yield "\n".join(lines).encode()


def store(influx: InfluxDB, straps: dict) -> float:
    """Every sample into InfluxDB as the sink writes it; seconds taken."""
    influx.query("CREATE DATABASE kmc")
    url = f"{influx.url}/write?db=kmc&precision=ns"

    def post(body: bytes) -> None:
        urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST")).read()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(WRITES_IN_FLIGHT) as pool:
        pending = []
        for body in line_batches(straps):
            pending.append(pool.submit(post, body))
            if len(pending) >= 4 * WRITES_IN_FLIGHT:
                pending.pop(0).result()
        for p in pending:
            p.result()
    return time.perf_counter() - t0


def report(args: list[str], out: Path, influxd: int, env: dict[str, str] | None = None) -> dict:
    """One `kmc report` process: wall seconds, InfluxDB's CPU seconds meanwhile."""
    c0 = cpu_s(influxd)
    t0 = time.perf_counter()
    done = subprocess.run(
        [*KMC, "report", *args, "--tz", TZ, "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"kmc report {' '.join(args[:2])} failed:\n{done.stderr}")
    return {"s": round(wall, 2), "influxd_cpu_s": round(cpu_s(influxd) - c0, 1)}


def query_cpu(influx: InfluxDB, fields: tuple[str, ...], days: int) -> dict:
    """InfluxDB's CPU seconds for the report's strap-day queries (CSV) asking for `fields`."""
    straps = sorted(per_strap(influx))
    first = influx.query("SELECT first(seq) FROM kmc_sample")[0]["values"][0][0]
    c0, t0, size = cpu_s(influx.proc.pid), time.perf_counter(), 0
    for strap in straps:
        for d in range(days):
            a = first + d * 86_400_000
            q = (
                f"SELECT {', '.join(fields)} FROM kmc_sample WHERE strap = '{strap}'"
                f" AND time >= {a}ms AND time < {a + 86_400_000}ms"
            )
            url = f"{influx.url}/query?" + urllib.parse.urlencode(
                {"db": "kmc", "q": q, "epoch": "ms"}
            )
            req = urllib.request.Request(url, method="POST", headers={"Accept": "application/csv"})
            with urllib.request.urlopen(req) as resp:
                size += len(resp.read())
    return {
        "fields": ", ".join(fields),
        "influxd_cpu_s": round(cpu_s(influx.proc.pid) - c0, 1),
        "s": round(time.perf_counter() - t0, 1),
        "answer_mb": round(size / 1e6),
    }


def rows(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / f"{name}.csv").open(newline="") as fh:
        return [{k: v for k, v in r.items() if k != "infant_id"} for r in csv.DictReader(fh)]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--straps", type=int, default=10)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of kmc report --influx")
    ap.add_argument(
        "--no-previous", action="store_true", help="skip the previous way (KMC_INFLUX_READ=json)"
    )
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat: at least 1")
    work = Path(tempfile.mkdtemp(prefix="kmc-bench-report-"))
    try:
        samples, _, _ = simulate_ward(
            work / "ward.parquet", args.straps, args.days, seed=3, tz=TZ, start="2026-03-02"
        )
        _, straps = load_straps(samples)
        n = sum(len(s) for s in straps.values())
        (work / "influx").mkdir()
        influx = InfluxDB(work / "influx").start()
        try:
            stored_s = store(influx, straps)
            got = sum(per_strap(influx).values())
            if got != n:
                sys.exit(f"InfluxDB holds {got} samples of {n}")
            cfg = work / "influx.toml"
            cfg.write_text(f'[influx]\nurl = "{influx.url}"\ndatabase = "kmc"\n')
            db = ["--influx", str(cfg), "--site", "site1", "--ward", "ward-a"]
            pid = influx.proc.pid
            runs = [report(db, work / f"csv{k}", pid) for k in range(args.repeat)]
            previous = (
                None
                if args.no_previous
                else report(db, work / "json", pid, {"KMC_INFLUX_READ": "json"})
            )
            from_file = report([str(samples)], work / "file", pid)
            before = ("infant_c", "outer_c", "contact", "worn", "battery_v")
            fields: dict[str, list[dict]] = {"now": [], "with outer_c": []}
            for _ in range(2):
                fields["now"].append(query_cpu(influx, SAMPLE_FIELDS, math.ceil(args.days) + 1))
                fields["with outer_c"].append(query_cpu(influx, before, math.ceil(args.days) + 1))
        finally:
            influx.stop()
        outs = [work / "csv0", work / "file"] + ([] if previous is None else [work / "json"])
        for name in TABLES:
            for other in outs[1:]:
                if rows(outs[0], name) != rows(other, name):
                    sys.exit(f"{name}.csv of {outs[0].name} and {other.name} differ")
        median = statistics.median(r["s"] for r in runs)
        result = {
            "date": dt.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}",
            "straps": args.straps,
            "days": args.days,
            "samples": n,
            "stored_in_s": round(stored_s, 1),
            "report_influx_s_median": median,
            "report_influx_runs": runs,
            "report_influx_samples_per_s": round(n / median),
            "report_influx_previous_way": previous,
            "report_file": from_file,
            "influxdb_alone_queries": fields,
            "tables_identical": list(TABLES),
        }
        if previous is not None:
            result["previous_over_now"] = round(previous["s"] / median, 1)
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
