"""Coverage-guided fuzzing of the parsers with atheris (libFuzzer for Python).

    python fuzz/run.py                      # every target, 60 s each
    python fuzz/run.py packet --seconds 600 # one target, longer

Each target runs in its own process (atheris takes over the interpreter), instrumented on our
packages only, from a small seed corpus of valid inputs (fuzz/corpus/<target>/). A crash
(an exception other than the parser's own error) stops the run and leaves the input in
fuzz/crashes/; the summary says how many inputs each target ran.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(name: str, seconds: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["kmc_host", "kmc_analysis"]):
        import targets
    target = targets.TARGETS[name]
    corpus = HERE / "corpus" / name
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/{name}-",
        "-print_final_stats=1",
        "-rss_limit_mb=4096",
    ]
    if corpus.is_dir():
        argv.append(str(corpus))
    atheris.Setup(argv, target)
    atheris.Fuzz()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", nargs="*", help="default: all")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    if args.child:
        child(args.child, args.seconds)
        return
    import targets

    names = args.targets or list(targets.TARGETS)
    failed = []
    for name in names:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--seconds", str(args.seconds)],
            capture_output=True,
            text=True,
            env=os.environ | {"PYTHONPATH": str(HERE)},
        )
        stats = [
            ln
            for ln in proc.stderr.splitlines()
            if "stat::number_of_executed_units" in ln or "Done" in ln
        ]
        runs = stats[-1].split(":")[-1].strip() if stats else "?"
        print(f"{name:14} {'ok' if proc.returncode == 0 else 'CRASH'}  executions: {runs}")
        if proc.returncode != 0:
            failed.append(name)
            print(proc.stderr[-3000:])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
