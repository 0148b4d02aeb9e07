"""The `kmc` command: one entry point for the researchers' tools (and, later, the gateway).

Bad input ends with a one-line message naming the file, line and problem, and exit status 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kmc_host.detect import zone
from kmc_host.errors import BadInput, KmcError, describe
from kmc_host.shutdown import Interrupted, StopSignals, exit_status

from .detection import within
from .samples_io import SampleReader

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
SINK_DRAIN_S = 3.0  # a stopping sink's last push to InfluxDB: stop within 5 s, spool kept


def _analyze(args: argparse.Namespace) -> int:
    from .analyze import analyze_file

    summary = analyze_file(
        args.samples,
        args.out,
        tz=args.tz,
        roster_path=args.roster,
        skip_invalid=args.skip_invalid,
        min_monitored_hours=args.min_monitored_hours,
    )
    print("\n".join(summary.lines()))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulate import simulate_ward

    started = time.perf_counter()
    out, truth, rows = simulate_ward(
        args.out,
        args.devices,
        args.days,
        seed=args.seed,
        tz=args.tz,
        start=args.start,
        truth_dir=args.truth,
        noise_c=args.noise,
    )
    print(f"wrote {rows} samples of {args.devices} straps over {args.days:g} days to {out}")
    print(f"ground truth and roster in {truth}/ ({time.perf_counter() - started:.1f} s)")
    return 0


LIVE_ONLY = ("minutes", "speed", "broker_port", "ward_port", "hold")
OFFLINE_ONLY = ("days",)
OFFLINE_STRAPS = (1, 200)
OFFLINE_DAYS = (0.01, 31.0)


def _demo(args: argparse.Namespace) -> int:
    """The README's main job: a simulated ward, live (or offline with --offline)."""
    from .live_demo import MINUTES, SPEED, STRAPS

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
    from .live_demo import run_demo

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
    from .analyze import analyze_file
    from .score import score
    from .simulate import simulate_ward

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


def _firmware(args: argparse.Namespace) -> int:
    import json

    from kmc_host.deploy import deploy, forget_bonds, strap_config

    if args.action == "forget-bonds":
        commands = forget_bonds(_port(args), dry_run=args.dry_run)
    else:
        if not args.strap_id:
            raise BadInput(f"{args.action} needs --strap-id")
        cfg = strap_config(
            args.strap_id, args.infant_offset, args.outer_offset, args.interval_ms, args.passkey
        )
        label = (
            f"{args.strap_id}: label passkey {cfg['passkey']:06d} (print it on the strap's "
            "label and put it in the gateway's [[straps]] entry as passkey)"
        )
        if args.action == "config":
            text = json.dumps(cfg, indent=2)
            if args.out:
                Path(args.out).write_text(text + "\n")
                print(f"wrote {args.out}")
            else:
                print(text)
            print(label, file=sys.stderr)
            return 0
        port = _port(args)
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(args.source) if args.source else None
            kwargs = {"source": source} if source else {}
            commands = deploy(port, cfg, Path(tmp), dry_run=args.dry_run, **kwargs)
        print(label, file=sys.stderr)
    for cmd in commands:
        print(("would run: " if args.dry_run else "ran: ") + " ".join(cmd))
    return 0


def _port(args: argparse.Namespace) -> str:
    if not args.port:
        raise BadInput(f"{args.action} needs --port (e.g. /dev/ttyUSB0)")
    return str(args.port)


def _service_logging() -> None:
    """The long-running services (gateway, sink, ward screen) log one timestamped line each."""
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _gateway(args: argparse.Namespace) -> int:
    """The ward gateway on this machine's Bluetooth adapter (BlueZ) until SIGINT/SIGTERM."""
    import asyncio

    from kmc_host.gateway.config import load_config
    from kmc_host.gateway.service import Gateway

    cfg = load_config(args.config)
    if args.check:
        print(
            f"{args.config}: ok: {len(cfg.straps)} straps, broker {cfg.broker.host}:{cfg.broker.port}"
        )
        return 0
    _service_logging()
    signals = StopSignals()

    async def main() -> None:
        stop = asyncio.Event()
        signals.install_asyncio(asyncio.get_running_loop(), stop)
        if cfg.hci is None:
            await Gateway(cfg).run(stop)  # bleak on the platform's stack (BlueZ)
            return
        from kmc_host.ble.bumble_backend import open_hci_central

        async with open_hci_central(cfg.hci, str(cfg.data_dir / "ble_bonds.json")) as access:
            await Gateway(cfg, access).run(stop)

    asyncio.run(main())
    return _stopped(signals)


def _stopped(signals: StopSignals) -> int:
    """A service's exit status, with a last log line saying why it stopped."""
    import logging

    if signals.signum is not None:
        logging.getLogger("kmc").info("stopped by %s", signal.Signals(signals.signum).name)
    return signals.exit_status()


def _sink(args: argparse.Namespace) -> int:
    """MQTT -> InfluxDB until SIGINT/SIGTERM; then the spool is kept for the next start."""
    import logging
    import threading

    from kmc_host.sink.config import load_sink_config
    from kmc_host.sink.service import Sink

    cfg = load_sink_config(args.config)
    if args.check:
        print(
            f"{args.config}: ok: broker {cfg.broker.host}:{cfg.broker.port},"
            f" InfluxDB {cfg.influx.api} at {cfg.influx.url}"
        )
        return 0
    _service_logging()
    stop = threading.Event()
    signals = StopSignals()
    signals.install_threads(stop)
    sink = Sink(cfg)
    sink.start()
    while not stop.wait(60):
        logging.getLogger("kmc.sink").info("%s, %d waiting on disk", sink.stats, sink.pending())
    # what InfluxDB has not taken within the drain stays in the spool for the next start
    sink.stop(drain_timeout_s=SINK_DRAIN_S)
    return _stopped(signals)


class _Source:
    """The samples of a file or of InfluxDB (`--influx`), for report and export: `consume(use)`
    hands `use` the per-strap chunks within the period (local dates --from/--to)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .report import period_from_dates

        if (args.samples is None) == (args.influx is None):
            raise BadInput("give either a samples file or --influx CONFIG (one of the two)")
        self.period = period_from_dates(args.date_from, args.date_to, args.tz)
        self.infants: dict[str, str] = {}
        if args.influx:
            from kmc_host.sink.config import load_influx_config

            from .sources import InfluxSource

            influx = load_influx_config(args.influx)
            self.influx = InfluxSource(influx, args.site or "", args.ward or "")
            extent = self.influx.extent()
            if extent is None:
                raise BadInput(f"no samples in InfluxDB at {influx.url} for this site/ward")
            p = self.period or (extent[0], extent[1] + 1)
            self.span = (max(extent[0], p[0]), min(extent[1] + 1, p[1]))
            self.infants = self.influx.infant_tags(*self.span)
            self.label = f"InfluxDB {influx.url} database {influx.database}"
        else:
            self.reader = SampleReader(args.samples, skip_invalid=args.skip_invalid)
            self.label = f"samples file {args.samples}"

    def consume(self, use: Any) -> Any:
        if hasattr(self, "influx"):
            return use(self.influx.chunks(*self.span))
        result = self.reader.consume(lambda chunks: use(within(chunks, self.period)))
        for line in self.reader.report.lines():
            print(line)
        return result


def _build_report(args: argparse.Namespace, keep_trace: bool) -> Any:
    from kmc_host.detect import DetectorConfig

    from .detection import detect_period
    from .report import build_report
    from .roster import load_roster

    roster = load_roster(args.roster) if args.roster else None
    src = _Source(args)
    cfg = DetectorConfig()
    detected = src.consume(lambda chunks: detect_period(chunks, cfg, keep_trace=keep_trace))
    return build_report(
        detected,
        tz=args.tz,
        roster=roster,
        infant_tags=src.infants,
        site=args.site or "",
        ward=args.ward or "",
        period=src.period,
        source=src.label,
        config=cfg,
        min_monitored_hours=args.min_monitored_hours,
    )


def _report(args: argparse.Namespace) -> int:
    from .report import write_tables
    from .report_html import write_html

    rep = _build_report(args, keep_trace=True)
    out = Path(args.out)
    files = write_tables(rep, out)
    html_path = write_html(rep, out / "report.html")
    cohort = rep.tables["cohort"].columns
    mean = float(cohort["mean_kmc_hours"][0])
    print(
        f"{len(rep.straps)} straps; {cohort['eligible_infants'][0]} eligible infants with "
        f"{cohort['infant_days'][0]} observed days; mean KMC "
        + ("n/a" if mean != mean else f"{mean:.1f} h/day")
    )
    print(f"wrote {html_path} and {len(files)} table files in {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .exports import (
        dhis2_data_value_set,
        fhir_bundle,
        load_dhis2_mapping,
        temperature_points,
        write_json,
    )

    out = Path(args.out)
    if args.format == "dhis2":
        if not args.mapping:
            raise BadInput("dhis2 needs --mapping FILE (data element and org unit ids)")
        mapping = load_dhis2_mapping(args.mapping)
        rep = _build_report(args, keep_trace=False)
        doc = dhis2_data_value_set(rep, mapping)
        write_json(doc, out)
        months = sorted({v["period"] for v in doc["dataValues"]})
        print(f"wrote {len(doc['dataValues'])} data values for {', '.join(months)} to {out}")
        return 0
    # fhir: one more pass over the samples for the temperature intervals
    from .roster import load_roster

    if args.every_min <= 0:
        raise BadInput("--every-min must be > 0")
    every = args.every_min * 60.0
    roster = load_roster(args.roster) if args.roster else {}
    src = _Source(args)
    infants = src.infants | {d: i.infant_id for d, i in roster.items()}
    points = src.consume(lambda chunks: temperature_points(chunks, every))
    doc = fhir_bundle(points, infants, every)
    write_json(doc, out)
    print(f"wrote {len(doc['entry'])} Observations of {len(points)} straps to {out}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from kmc_host.detect import DetectorConfig, zone

    from .detection import detect_period
    from .roster import load_roster
    from .validate import compare, load_observer_log, write_agreement

    zone(args.tz)  # a bad zone fails before the file is read
    roster = load_roster(args.roster) if args.roster else None
    observed = load_observer_log(args.observer_log, roster)
    reader = SampleReader(args.samples, skip_invalid=args.skip_invalid)
    detected = reader.consume(
        lambda chunks: detect_period(chunks, DetectorConfig(), keep_trace=False)
    )
    for line in reader.report.lines():
        print(line)
    agreement = compare({d: r for d, (r, _) in detected.items()}, observed, args.tz)
    for line in agreement.lines():
        print(line)
    if args.out:
        files = write_agreement(agreement, Path(args.out))
        print("wrote " + ", ".join(str(p) for p in files))
    return 0


def _ward(args: argparse.Namespace) -> int:
    """The ward screen: a web page for nurses, fed by the gateway's MQTT topics."""
    import logging

    from kmc_host.ward.config import load_ward_config

    cfg = load_ward_config(args.config)
    if args.check:
        print(f"{args.config}: ok: {cfg.site}/{cfg.ward} on http://{cfg.listen}:{cfg.port}/")
        return 0
    import asyncio

    from kmc_host.ward.server import serve_ward

    _service_logging()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    signals = StopSignals()

    async def main() -> None:
        stop = asyncio.Event()
        signals.install_asyncio(asyncio.get_running_loop(), stop)
        print(f"ward screen on http://{cfg.listen}:{cfg.port}/", flush=True)
        await serve_ward(cfg, stop)

    asyncio.run(main())
    return _stopped(signals)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kmc", description="KMC Sense: objective Kangaroo Mother Care measurement."
    )
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser(
        "analyze", help="detect sessions, hours per day and alerts in a samples file"
    )
    a.add_argument("samples", help="samples file (.csv, .csv.gz or .parquet)")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--tz", default="UTC", help="facility time zone, IANA name (default UTC)")
    a.add_argument("--roster", help="roster CSV: device,infant_id,birth_time,birth_weight_g")
    a.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out invalid rows (counted and listed in the summary) instead of stopping",
    )
    a.add_argument(
        "--min-monitored-hours",
        type=float,
        default=20.0,
        help="hours of data a day needs to count in the coverage indicators (default 20)",
    )
    a.set_defaults(run=_analyze)

    w = sub.add_parser("ward", help="the ward screen for nurses (web page fed by MQTT)")
    w.add_argument("--config", required=True, help="ward TOML file (see kmc_host/ward/config.py)")
    w.add_argument("--check", action="store_true", help="validate the config and exit")
    w.set_defaults(run=_ward)

    x = sub.add_parser("export", help="DHIS2 dataValueSets or a FHIR R4 Bundle of temperatures")
    x.add_argument("format", choices=["dhis2", "fhir"])
    x.add_argument("samples", nargs="?", help="samples file (.csv, .csv.gz or .parquet)")
    x.add_argument("--influx", help="TOML file with an [influx] section (the sink's will do)")
    x.add_argument("--out", required=True, help="JSON file to write")
    x.add_argument("--mapping", help="dhis2: mapping TOML (deploy/dhis2-mapping.example.toml)")
    x.add_argument("--every-min", type=float, default=15.0, help="fhir: minutes per Observation")
    x.add_argument("--from", dest="date_from", help="first local date, YYYY-MM-DD")
    x.add_argument("--to", dest="date_to", help="last local date, YYYY-MM-DD (included)")
    x.add_argument("--site", default="", help="site (InfluxDB tag; picks the DHIS2 org unit)")
    x.add_argument("--ward", default="", help="ward (InfluxDB tag; picks the DHIS2 org unit)")
    x.add_argument("--tz", default="UTC", help="facility time zone (months and days are local)")
    x.add_argument("--roster", help="roster CSV (eligibility, infant pseudonyms)")
    x.add_argument("--skip-invalid", action="store_true")
    x.add_argument("--min-monitored-hours", type=float, default=20.0)
    x.set_defaults(run=_export)

    r = sub.add_parser(
        "report",
        help="per-infant and ward KMC report (CSV, Parquet, HTML) from a samples file or InfluxDB",
    )
    r.add_argument("samples", nargs="?", help="samples file (.csv, .csv.gz or .parquet)")
    r.add_argument("--influx", help="TOML file with an [influx] section (the sink's will do)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--from", dest="date_from", help="first local date, YYYY-MM-DD")
    r.add_argument("--to", dest="date_to", help="last local date, YYYY-MM-DD (included)")
    r.add_argument("--site", help="site (InfluxDB tag; a label for files)")
    r.add_argument("--ward", help="ward (InfluxDB tag; a label for files)")
    r.add_argument("--tz", default="UTC", help="facility time zone, IANA name (default UTC)")
    r.add_argument(
        "--roster", help="roster CSV: device,infant_id,birth_time,birth_weight_g[,admission_time]"
    )
    r.add_argument("--skip-invalid", action="store_true", help="files: leave out invalid rows")
    r.add_argument("--min-monitored-hours", type=float, default=20.0)
    r.set_defaults(run=_report)

    v = sub.add_parser(
        "validate", help="agreement of detected sessions with a time-stamped observer log"
    )
    v.add_argument("samples", help="samples file (.csv, .csv.gz or .parquet)")
    v.add_argument("observer_log", help="CSV: device (or infant_id with --roster),start,end")
    v.add_argument("--tz", default="UTC", help="facility time zone for the per-day hours")
    v.add_argument("--roster", help="roster CSV, to map an observer log's infant_id to straps")
    v.add_argument(
        "--out", help="folder for session_agreement.csv, daily_agreement.csv, agreement.csv"
    )
    v.add_argument("--skip-invalid", action="store_true", help="leave out invalid sample rows")
    v.set_defaults(run=_validate)

    s = sub.add_parser("simulate", help="write a simulated ward's samples and its ground truth")
    s.add_argument("--devices", type=int, default=10, help="number of straps")
    s.add_argument("--days", type=float, default=3.0, help="days to simulate")
    s.add_argument("--out", required=True, help="samples file to write (.csv or .parquet)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--tz", default="UTC", help="time zone whose midnight starts the simulation")
    s.add_argument("--start", default="2026-03-02", help="first local date (YYYY-MM-DD)")
    s.add_argument("--truth", help="truth folder (default: beside --out, named <stem>_truth)")
    s.add_argument(
        "--noise", type=float, default=0.02, help="infant sensor noise, SD in C (default 0.02)"
    )
    s.set_defaults(run=_simulate)

    g = sub.add_parser("gateway", help="run the ward gateway: straps over BLE -> detection -> MQTT")
    g.add_argument(
        "--config", required=True, help="gateway TOML file (see kmc_host/gateway/config.py)"
    )
    g.add_argument("--check", action="store_true", help="validate the config and exit")
    g.set_defaults(run=_gateway)

    k = sub.add_parser("sink", help="store the gateway's MQTT messages in InfluxDB")
    k.add_argument("--config", required=True, help="sink TOML file (see kmc_host/sink/config.py)")
    k.add_argument("--check", action="store_true", help="validate the config and exit")
    k.set_defaults(run=_sink)

    f = sub.add_parser(
        "firmware",
        help="write a strap's config, copy the firmware to a board, or forget its bond",
    )
    f.add_argument("action", choices=["config", "deploy", "forget-bonds"])
    f.add_argument("--strap-id", help="1-8 characters, advertised by the strap")
    f.add_argument(
        "--passkey",
        type=int,
        help="the label's 6-digit pairing passkey (default: a new random one)",
    )
    f.add_argument("--infant-offset", type=float, default=0.0, help="calibration offset, C")
    f.add_argument("--outer-offset", type=float, default=0.0, help="calibration offset, C")
    f.add_argument("--interval-ms", type=int, help="sampling interval (default on the strap: 1000)")
    f.add_argument("--out", help="config: write the JSON here instead of printing it")
    f.add_argument("--port", help="deploy: the board's serial port")
    f.add_argument("--source", help="deploy: firmware folder (default: this checkout's firmware/)")
    f.add_argument(
        "--dry-run", action="store_true", help="deploy, forget-bonds: print the commands only"
    )
    f.set_defaults(run=_firmware)

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
    return p


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def run_command(args: argparse.Namespace) -> int:
    """Run parsed arguments' command; its exceptions propagate (for callers such as the demo)."""
    return int(args.run(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its errors end in one line naming what failed (never an empty one)."""
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGINT and SIGTERM end any command through its `with`/`finally` blocks (exit 130 /
        # 143); the long-running services install their own handlers on top of this one
        StopSignals().install_raising()
    try:
        return run_command(args)
    except (BadInput, OSError) as exc:  # what the user gave: a file, an option, a config value
        print(f"kmc {args.command}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KmcError as exc:  # a step that failed for a reason outside the input
        print(f"kmc {args.command}: error: {describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Interrupted as exc:
        print(f"kmc {args.command}: {exc}", file=sys.stderr)
        return exit_status(exc.signum)
    except KeyboardInterrupt:  # SIGINT where no handler of ours was installed
        print(f"kmc {args.command}: stopped by SIGINT", file=sys.stderr)
        return exit_status(signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
