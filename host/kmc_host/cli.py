"""The `kmc` command line, one layer at a time: this package's commands, then the layers'.

The host package defines the ward's services and the strap's tools, so a gateway machine runs
`kmc gateway` (or `python -m kmc_host gateway`) with nothing else installed:

- `kmc gateway --config FILE`: straps over BLE -> detection -> MQTT
- `kmc sink --config FILE`: MQTT -> InfluxDB
- `kmc ward --config FILE`: the ward screen
- `kmc firmware config|deploy|forget-bonds`: a strap's configuration and firmware over USB

Other packages add their commands through the entry-point group `kmc_sense.commands`
(pyproject.toml): each entry is a function `add_commands(subparsers)`. The researchers' tools
(`kmc_analysis.cli`) add analyze, report, export, validate and simulate; the testbed
(`kmc_testbed.cli`) adds demo. The host never imports them by name: a layer that is not
installed (or fails to import, which is said on stderr) leaves the others working.

Bad input ends with a one-line message naming what was wrong and where, and exit status 2; a
step that fails for another reason with exit status 1; a stop signal with 130 / 143. Never a
traceback for an error of ours (`kmc_host.errors.KmcError`), nor an empty message.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import BadInput, KmcError, describe
from .shutdown import Interrupted, StopSignals, exit_status

__all__ = ["COMMANDS_GROUP", "add_commands", "build_parser", "installed_layers", "main"]

COMMANDS_GROUP = "kmc_sense.commands"
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
SINK_DRAIN_S = 3.0  # a stopping sink's last push to InfluxDB: stop within 5 s, spool kept

AddCommands = Callable[[Any], None]  # add_commands(the parser's subparsers)


def _firmware(args: argparse.Namespace) -> int:
    import json

    from .deploy import deploy, forget_bonds, strap_config

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

    from .gateway.config import check_pairing, load_config
    from .gateway.service import Gateway

    cfg = load_config(args.config)
    check_pairing(cfg, args.config)  # no option that silently does nothing
    if args.check:
        print(
            f"{args.config}: ok: {len(cfg.straps)} straps, broker {cfg.broker.host}:{cfg.broker.port}"
        )
        return 0
    _service_logging()
    signals = StopSignals()

    async def main(stop: asyncio.Event) -> None:
        radios = cfg.radios()
        if not any(r.hci for r in radios):
            await Gateway(cfg).run(stop)  # bleak on the platform's stack (BlueZ)
            return
        import functools

        from .ble.bumble_backend import open_hci_central
        from .gateway.link import BleAccess, OpenRadio

        access: dict[str, BleAccess | OpenRadio] = {}
        for radio in radios:
            if radio.hci is None:  # a BlueZ adapter beside bumble ones
                access[radio.label] = BleAccess.bluez(radio.name)
                continue
            # an adapter's identity (bonds, address) follows its transport, not its place in
            # the list: the straps bonded through it stay pinned to it by that name. Opened by
            # its adapter, and opened again if lost (unplugged) or missing at start.
            single = not cfg.adapters
            bonds = "ble_bonds.json" if single else f"ble_bonds-{_file_part(radio.label)}.json"
            access[radio.label] = functools.partial(
                open_hci_central,
                radio.hci,
                str(cfg.data_dir / bonds),
                None if single else radio.label,
            )
        await Gateway(cfg, access).run(stop)

    signals.run_asyncio(main)
    return _stopped(signals)


def _file_part(label: str) -> str:
    """An adapter's label (usb:0, tcp-client:127.0.0.1:9000) as part of a file name."""
    return "".join(c if c.isalnum() else "_" for c in label)


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

    from .sink.config import load_sink_config
    from .sink.service import Sink

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
    logging.getLogger("kmc.sink").info("stopped: %s", sink.stats)  # the spool is closed
    return _stopped(signals)


def _ward(args: argparse.Namespace) -> int:
    """The ward screen: a web page for nurses, fed by the gateway's MQTT topics."""
    import logging

    from .ward.config import load_ward_config

    cfg = load_ward_config(args.config)
    if args.check:
        print(f"{args.config}: ok: {cfg.site}/{cfg.ward} on http://{cfg.listen}:{cfg.port}/")
        return 0
    import asyncio

    from .ward.server import serve_ward

    _service_logging()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    signals = StopSignals()

    async def main(stop: asyncio.Event) -> None:
        print(f"ward screen on http://{cfg.listen}:{cfg.port}/", flush=True)
        await serve_ward(cfg, stop)

    signals.run_asyncio(main)
    return _stopped(signals)


def add_commands(sub: Any) -> None:
    """The host's commands: the ward's services (gateway, sink, ward) and the strap's tools."""
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

    w = sub.add_parser("ward", help="the ward screen for nurses (web page fed by MQTT)")
    w.add_argument("--config", required=True, help="ward TOML file (see kmc_host/ward/config.py)")
    w.add_argument("--check", action="store_true", help="validate the config and exit")
    w.set_defaults(run=_ward)


def installed_layers() -> list[AddCommands]:
    """The other packages' `add_commands`, from the entry points installed (by name)."""
    layers = []
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            layers.append(entry.load())
        except Exception as exc:  # a broken layer must not take the gateway down with it
            _unavailable(entry.value, exc)
    return layers


def _unavailable(layer: str, exc: BaseException) -> None:
    print(f"kmc: the commands of {layer} are not available: {describe(exc)}", file=sys.stderr)


def build_parser(layers: Sequence[AddCommands] | None = None) -> argparse.ArgumentParser:
    """`kmc` with the host's commands and each layer's (default: the installed layers).

    A layer that fails to add its commands, or names one that another already has, is left
    out with a line on stderr saying why; the host's commands always stay."""
    layers = installed_layers() if layers is None else layers
    p = argparse.ArgumentParser(
        prog="kmc",
        description="KMC Sense: objective Kangaroo Mother Care measurement.",
        epilog=None
        if layers
        else "Only the host's commands are installed here: `pip install -e .` in a checkout "
        "adds the researchers' tools and the demo.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    add_commands(sub)
    for add in layers:
        trial = argparse.ArgumentParser(prog="kmc").add_subparsers()
        try:
            add(trial)  # first on its own: a layer that fails leaves nothing half added
            if taken := sorted(set(trial.choices) & set(sub.choices)):
                raise BadInput(f"it names commands that are taken: {', '.join(taken)}")
            add(sub)
        except Exception as exc:
            _unavailable(f"{add.__module__}:{add.__qualname__}", exc)
    return p


def main(argv: Sequence[str] | None = None, layers: Sequence[AddCommands] | None = None) -> int:
    """Run one command; its errors end in one line naming what failed (never an empty one)."""
    args = build_parser(layers).parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGINT and SIGTERM end any command through its `with`/`finally` blocks (exit 130 /
        # 143); the long-running services install their own handlers on top of this one
        StopSignals().install_raising()
    try:
        return int(args.run(args))
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
