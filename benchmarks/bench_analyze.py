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
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

DETECTOR_ONLY = r"""
import json, sys, time, tracemalloc
from kmc_analysis.samples_io import SampleReader, RowsOutOfOrder
from kmc_host.detect import StrapDetector
reader = SampleReader(sys.argv[1])
dets, busy, n = {}, 0.0, 0
peak_one = 0
for device, chunk in reader.chunks():
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
print(json.dumps({"samples": n, "seconds": busy, "peak_first_strap_bytes": peak_one}))
"""


def run_measured(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    ap.add_argument("--skip-baseline", action="store_true", help="do not run the pandas baseline")
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    args = ap.parse_args()

    samples = args.data / f"ward_{args.straps}x{args.days:g}d_seed{args.seed}.{args.format}"
    if not samples.exists():
        print(f"simulating {args.straps} straps x {args.days:g} days -> {samples}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "kmc_host",
                "simulate",
                "--devices",
                str(args.straps),
                "--days",
                str(args.days),
                "--seed",
                str(args.seed),
                "--out",
                str(samples),
            ],
            check=True,
        )
    work = args.results / samples.name.replace(".", "_")
    work.mkdir(parents=True, exist_ok=True)

    ours_s, ours_mb, out = run_measured(
        [
            sys.executable,
            "-m",
            "kmc_host",
            "analyze",
            str(samples),
            "--out",
            str(work / "ours"),
        ]
    )
    n = int(out.split(" rows,")[0].rsplit(" ", 1)[-1])
    _, det_mb, det_out = run_measured([sys.executable, "-c", DETECTOR_ONLY, str(samples)])
    det = json.loads(det_out)
    result = {
        "input": str(samples.name),
        "samples": n,
        "analyze_seconds": round(ours_s, 2),
        "analyze_samples_per_s": round(n / ours_s),
        "analyze_peak_rss_mb": round(ours_mb),
        "detector_seconds": round(det["seconds"], 2),
        "detector_samples_per_s": round(det["samples"] / det["seconds"]),
        "detector_peak_traced_mb_one_strap": round(det["peak_first_strap_bytes"] / 2**20, 1),
        "detector_process_peak_rss_mb": round(det_mb),
    }
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
