"""`kmc demo`: the README's main job, added to the `kmc` command by the testbed.

Live (the default): a simulated ward of emulated straps, a broker, the gateway, the store and
the ward screen, in simulated time (kmc_testbed.demo). Offline (`--offline`): days of a
simulated ward written to a file, `kmc analyze` on it, and the detector scored against the
simulation's ground truth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kmc_host.detect import zone
from kmc_host.errors import BadInput
from kmc_host.shutdown import StopSignals

__all__ = ["add_commands"]

EXIT_FAILED = 1


LIVE_ONLY = ("minutes", "speed", "broker_port", "ward_port", "hold")
OFFLINE_ONLY = ("days",)
# what the options accept; `kmc demo` refuses anything else with exit status 2
STRAPS = (1, 40)  # live: a newborn unit's beds
MINUTES = (5, 1440)  # live: from a quick look to a whole day
SPEED = (1, 1000)  # live: simulated seconds per second
OFFLINE_STRAPS = (1, 200)
OFFLINE_DAYS = (0.01, 31.0)


def _demo(args: argparse.Namespace) -> int:
    """The README's main job: a simulated ward, live (or offline with --offline)."""

    given = {k for k in (*LIVE_ONLY, *OFFLINE_ONLY) if getattr(args, k) not in (None, False)}
    if args.offline:
        if wrong := sorted(given & set(LIVE_ONLY)):
            raise BadInput(f"{_flags(wrong)}: only for the live demo (leave out --offline)")
        args.straps = _in_range(
            "--straps", 12 if args.straps is None else args.straps, *OFFLINE_STRAPS
        )
        args.days = _in_range("--days", 3.0 if args.days is None else args.days, *OFFLINE_DAYS)
        return _offline_demo(args)
    if wrong := sorted(given & set(OFFLINE_ONLY)):
        raise BadInput(f"{_flags(wrong)}: only for the offline demo (add --offline)")
    straps = _in_range("--straps", 4 if args.straps is None else args.straps, *STRAPS)
    minutes = _in_range("--minutes", 60.0 if args.minutes is None else args.minutes, *MINUTES)
    speed = _in_range("--speed", 120.0 if args.speed is None else args.speed, *SPEED)
    if args.broker_port is not None:
        _in_range("--broker-port", args.broker_port, 1, 65535)
    if args.ward_port is not None:
        _in_range("--ward-port", args.ward_port, 0, 65535)
    if args.hold and args.ward_port == 0:
        raise BadInput("--hold keeps the ward screen up: it needs a screen (not --ward-port 0)")
    zone(args.tz)
    if args.out and Path(args.out).is_dir() and any(Path(args.out).iterdir()):
        raise BadInput(
            f"--out {args.out} is not empty: an earlier run's strap flash, "
            "gateway cursors and database would mix with this one; give a new folder"
        )
    from .demo import run_demo  # the emulated ward, loaded only for the demo

    signals = StopSignals()
    signals.install_raising()  # Ctrl-C or SIGTERM: stop the ward in order, exit 130 / 143
    result = run_demo(
        straps,
        minutes,
        speed,
        Path(args.out) if args.out else None,
        args.seed,
        broker_port=args.broker_port,
        ward_port=args.ward_port,
        hold=args.hold,
        tz=args.tz,
        signals=signals,
    )
    return 0 if result["lost"] == 0 else EXIT_FAILED


def _flags(names: Sequence[str]) -> str:
    return ", ".join("--" + n.replace("_", "-") for n in names)


def _in_range(flag: str, value: float, lo: float, hi: float) -> Any:
    if not lo <= value <= hi:
        raise BadInput(f"{flag} must be within {lo:g}..{hi:g}, not {value:g}")
    return value


def _offline_demo(args: argparse.Namespace) -> int:
    """A simulated ward analysed end to end: simulate, analyze, score against the truth."""
    from kmc_analysis.analyze import analyze_file
    from kmc_analysis.score import score
    from kmc_analysis.simulate import simulate_ward

    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="kmc-demo-"))
    samples = base / "samples.csv"
    print(f"== simulating {args.straps} straps for {args.days:g} days (seed {args.seed}) ==")
    _, truth, rows = simulate_ward(
        samples, args.straps, args.days, seed=args.seed, tz=args.tz, truth_dir=base / "truth"
    )
    print(f"{rows} samples -> {samples}")
    print("== kmc analyze ==")
    t0 = time.perf_counter()
    summary = analyze_file(samples, base / "analysis", tz=args.tz, roster_path=truth / "roster.csv")
    elapsed = time.perf_counter() - t0
    print("\n".join(summary.lines()))
    print(
        f"analysed {rows} samples in {elapsed:.1f} s ({rows / max(elapsed, 1e-9) / 1e6:.1f} M samples/s)"
    )
    print("== detector against ground truth ==")
    result = score(truth, base / "analysis")
    print("\n".join(result.lines()))
    print(f"outputs in {base}/analysis")
    return 0


def add_commands(sub: Any) -> None:
    """`kmc demo`."""
    d = sub.add_parser(
        "demo",
        help="a simulated ward, live: emulated straps -> BLE -> gateway -> MQTT (--offline: simulate, analyse, score)",
    )
    d.add_argument(
        "--straps", type=int, help="straps: live 1-40 (default 4), offline 1-200 (default 12)"
    )
    d.add_argument("--minutes", type=float, help="live: simulated minutes, 5-1440 (default 60)")
    d.add_argument(
        "--speed", type=float, help="live: simulated seconds per second, 1-1000 (default 120)"
    )
    d.add_argument(
        "--offline", action="store_true", help="simulate days of a ward and run kmc analyze on it"
    )
    d.add_argument("--days", type=float, help="offline: days to simulate, 0.01-31 (default 3)")
    d.add_argument("--seed", type=_seed, default=1, help="the simulation's seed, 0 or more")
    d.add_argument("--tz", default="Africa/Addis_Ababa", help="the ward's time zone, IANA name")
    d.add_argument("--broker-port", type=int, help="live: use the MQTT broker on this local port")
    d.add_argument(
        "--ward-port", type=int, help="live: the ward screen's port (default: a free one; 0: none)"
    )
    d.add_argument(
        "--hold", action="store_true", help="live: keep the ward screen up after the run"
    )
    d.add_argument("--out", help="folder for the demo files (default: a new temporary folder)")
    d.set_defaults(run=_demo)


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value
