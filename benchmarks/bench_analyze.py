"""Benchmark: `kmc analyze` end to end, the detector alone, and a pandas baseline side by side.

    pip install -e '.[bench]'
    python benchmarks/bench_analyze.py                 # 100 straps x 7 days at 1 Hz
    python benchmarks/bench_analyze.py --straps 10 --days 2

The input is a simulated ward (`kmc simulate`, Parquet, cached under benchmarks/data/). Each
contender runs in its own process so its peak memory (ru_maxrss) is its own. The pandas baseline
(benchmarks/pandas_baseline.py) implements the same rules the straightforward way; its outputs
are compared with ours before the speeds are, so the ratio compares equal work.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
KMC = [sys.executable, "-m", "kmc_host"]

DETECTOR_ONLY = r"""
import json, sys, time, tracemalloc
from kmc_analysis.samples_io import SampleReader
from kmc_host.detect import StrapDetector

def feed_all(chunks):  # one thread: the detector's own time, chunk by chunk
    dets, busy, n, peak_one = {}, 0.0, 0, 0
    for device, chunk in chunks:
        det = dets.get(device) or dets.setdefault(device, StrapDetector(device))
        first = len(dets) == 1
        if first:
            tracemalloc.start()
        t = time.perf_counter()
        det.feed(chunk)
        busy += time.perf_counter() - t
        if first:
            peak_one = max(peak_one, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        n += len(chunk)
    t = time.perf_counter()
    for det in dets.values():
        det.finish()
    busy += time.perf_counter() - t
    return {"samples": n, "seconds": busy, "peak_first_strap_bytes": peak_one}

print(json.dumps(SampleReader(sys.argv[1]).consume(feed_all)))
"""


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of a child process (`env`: added to ours)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}):\n{err}")
    return wall, usage.ru_maxrss / 1024.0, out


def _norm(x: str) -> str:
    """Numbers to 3 decimals, empty and NaN alike: both writers' spellings compare equal."""
    if x in ("", "nan", "NaN"):
        return ""
    try:
        return f"{float(x):.3f}"
    except ValueError:
        return x


def agreement(ours: Path, theirs: Path) -> dict[str, str]:
    """Row-by-row comparison of the contract columns of both outputs."""
    spec = {
        "sessions.csv": ["device", "start", "end", "duration_min"],
        "daily.csv": ["device", "date", "kmc_hours", "monitored_hours"],
        "alerts.csv": ["device", "kind", "start", "end", "extreme_c"],
    }
    out = {}
    for name, cols in spec.items():
        rows = []
        for folder in (ours, theirs):
            with (folder / name).open(newline="") as fh:
                rows.append(sorted(tuple(_norm(r[c]) for c in cols) for r in csv.DictReader(fh)))
        out[name] = (
            "identical" if rows[0] == rows[1] else f"DIFFER ({len(rows[0])} vs {len(rows[1])} rows)"
        )
    return out


def samples_file(args: argparse.Namespace) -> Path:
    """The simulated ward as Parquet (`kmc simulate`, cached), and as CSV made from that same
    file (ISO 8601 times, as a gateway export writes them, or Unix seconds)."""
    stem = f"ward_{args.straps}x{args.days:g}d_seed{args.seed}"
    parquet = args.data / f"{stem}.parquet"
    if not parquet.exists():
        print(f"simulating {args.straps} straps x {args.days:g} days -> {parquet}")
        subprocess.run(
            [
                *KMC,
                "simulate",
                "--devices",
                str(args.straps),
                "--days",
                str(args.days),
                "--seed",
                str(args.seed),
                "--out",
                str(parquet),
            ],
            check=True,
        )
    if args.format == "parquet":
        return parquet
    csv_path = args.data / f"{stem}_{args.csv_times}.csv"
    if not csv_path.exists():
        print(f"writing {csv_path} from {parquet.name}")
        write_csv(parquet, csv_path, iso=args.csv_times == "iso")
    return csv_path


def write_csv(parquet: Path, out: Path, iso: bool) -> None:
    """`parquet` as CSV, row group by row group (memory stays flat)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(parquet)

    def groups() -> Iterator[pa.Table]:
        for i in range(pf.num_row_groups):
            t = pf.read_row_group(i)
            if iso:
                ts = pc.cast(t["time"], pa.timestamp("s", tz="UTC"))
                t = t.set_column(0, "time", pc.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ"))
            yield t

    tables = groups()
    first = next(tables)
    tmp = out.with_suffix(".part")
    with pacsv.CSVWriter(tmp, first.schema) as writer:
        writer.write_table(first)
        for t in tables:
            writer.write_table(t)
    tmp.rename(out)


def alternate(
    a: list[str], b: list[str], repeat: int
) -> tuple[list[tuple[float, float]], list[tuple[float, float]], str]:
    """`a` and `b` in turn, `repeat` times each: (wall s, peak MB) of each run, a's output."""
    runs_a, runs_b, out = [], [], ""
    for _ in range(repeat):
        wall, mb, out = run_measured(a)
        runs_a.append((wall, mb))
        wall, mb, _ = run_measured(b)
        runs_b.append((wall, mb))
    return runs_a, runs_b, out


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--straps", type=int, default=100)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--format", choices=["parquet", "csv"], default="parquet", help="input file format"
    )
    ap.add_argument(
        "--csv-times",
        choices=["iso", "unix"],
        default="iso",
        help="CSV: times as ISO 8601 (default) or Unix seconds",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of kmc analyze and of the typed read, in turn"
    )
    ap.add_argument("--skip-baseline", action="store_true", help="do not run the pandas baseline")
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat: at least 1")
    os.environ["KMC_CSV_PARSE"] = "typed"  # whatever the caller's environment says

    samples = samples_file(args)
    work = args.results / samples.name.replace(".", "_")
    work.mkdir(parents=True, exist_ok=True)

    analyze = [*KMC, "analyze", str(samples), "--out", str(work / "ours")]
    typed_read = [sys.executable, str(HERE / "typed_read.py"), str(samples)]
    ours, ref, out = alternate(analyze, typed_read, args.repeat)  # (KMC_CSV_PARSE: see main)
    n = int(out.split(" rows,")[0].rsplit(" ", 1)[-1])
    ratios = [a[0] / b[0] for a, b in zip(ours, ref, strict=True)]
    goal = 2.5 if args.format == "parquet" else 1.5
    ours_s = median([w for w, _ in ours])
    result: dict[str, object] = {
        "input": samples.name,
        "input_mb": round(samples.stat().st_size / 2**20),
        "samples": n,
        "runs": args.repeat,
        "analyze_seconds_median": round(ours_s, 2),
        "analyze_seconds_min_max": [
            round(min(w for w, _ in ours), 2),
            round(max(w for w, _ in ours), 2),
        ],
        "analyze_samples_per_s": round(n / ours_s),
        "analyze_peak_rss_mb_max": round(max(mb for _, mb in ours)),
        "typed_read_seconds_median": round(median([w for w, _ in ref]), 2),
        "typed_read_peak_rss_mb_max": round(max(mb for _, mb in ref)),
        "analyze_over_typed_read_median": round(median(ratios), 2),
        "analyze_over_typed_read_min_max": [round(min(ratios), 2), round(max(ratios), 2)],
        "goal_analyze_over_typed_read": f"<= {goal} ({'met' if median(ratios) <= goal else 'NOT met'})",
    }
    if args.format == "csv":  # the previous path: every column as text, then converted
        prev_s, prev_mb, _ = run_measured(
            analyze[:-1] + [str(work / "checking")], {"KMC_CSV_PARSE": "checking"}
        )
        result.update(
            {
                "checking_parse_analyze_seconds_one_run": round(prev_s, 2),
                "checking_parse_peak_rss_mb": round(prev_mb),
                "checking_parse_outputs": agreement(work / "ours", work / "checking"),
            }
        )
    _, det_mb, det_out = run_measured([sys.executable, "-c", DETECTOR_ONLY, str(samples)])
    det = json.loads(det_out)
    result.update(
        {
            "detector_seconds": round(det["seconds"], 2),
            "detector_samples_per_s": round(det["samples"] / det["seconds"]),
            "detector_peak_traced_mb_one_strap": round(det["peak_first_strap_bytes"] / 2**20, 1),
            "detector_process_peak_rss_mb": round(det_mb),
        }
    )
    if not args.skip_baseline:
        pd_s, pd_mb, _ = run_measured(
            [sys.executable, str(HERE / "pandas_baseline.py"), str(samples), str(work / "pandas")]
        )
        result.update(
            {
                "pandas_seconds": round(pd_s, 2),
                "pandas_samples_per_s": round(n / pd_s),
                "pandas_peak_rss_mb": round(pd_mb),
                "speedup_vs_pandas": round(pd_s / ours_s, 1),
                "outputs_vs_pandas": agreement(work / "ours", work / "pandas"),
            }
        )
    (args.results / f"{work.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
