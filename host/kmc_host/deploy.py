"""`kmc firmware`: write a strap's configuration and copy the firmware to a board (mpremote).

The strap reads `/kmc_config.json` at boot and fills in defaults for anything missing
(firmware/config.py), so only what differs per strap is written here: its id, the
temperature offsets found by calibration (hardware/README.md) and its pairing passkey, a random
6-digit number printed on the strap's label and written into the gateway's `[[straps]]` entry
(docs/protocol.md, Security). `forget-bonds` removes the strap's bond over USB, so that it can
be commissioned to another gateway.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
from pathlib import Path

from .errors import BadInput


def _firmware_dir() -> Path:
    """The strap firmware: installed with the package (`kmc_firmware`), or this checkout's."""
    try:
        import kmc_firmware  # the firmware/ folder, shipped as package data

        return Path(next(iter(kmc_firmware.__path__)))
    except (ImportError, StopIteration):
        return Path(__file__).resolve().parents[2] / "firmware"


FIRMWARE_DIR = _firmware_dir()
STRAP_ID = re.compile(r"[A-Za-z0-9_-]{1,8}")  # docs/protocol.md: advertised as the short name
CONFIG_NAME = "kmc_config.json"
BONDS_FILE = "kmc_data/bonds.json"  # the firmware's bond store on the board (firmware/bonds.py)


class DeployError(BadInput):
    """A deployment request that cannot be carried out; the message says why."""


def strap_config(
    strap_id: str,
    infant_offset_c: float = 0.0,
    outer_offset_c: float = 0.0,
    interval_ms: int | None = None,
    passkey: int | None = None,
) -> dict[str, object]:
    """The strap's config; a random passkey unless one is given (a label being reprinted)."""
    if not STRAP_ID.fullmatch(strap_id):
        raise DeployError(
            f"strap id {strap_id!r} must be 1-8 characters of A-Z, a-z, 0-9, '-', '_'"
        )
    for name, value in (("infant offset", infant_offset_c), ("outer offset", outer_offset_c)):
        if not -1.0 <= value <= 1.0:
            raise DeployError(f"{name} {value} C is outside -1.0..1.0 C: recalibrate the sensor")
    if passkey is None:
        passkey = secrets.randbelow(1_000_000)
    if not 0 <= passkey <= 999_999:
        raise DeployError(f"passkey {passkey} must be 6 digits (0..999999)")
    cfg: dict[str, object] = {
        "strap_id": strap_id,
        "infant_offset_c": infant_offset_c,
        "outer_offset_c": outer_offset_c,
        "passkey": passkey,
    }
    if interval_ms is not None:
        if not 250 <= interval_ms <= 60000:
            raise DeployError(f"interval {interval_ms} ms is outside 250..60000 ms")
        cfg["interval_ms"] = interval_ms
    return cfg


def firmware_files(source: Path = FIRMWARE_DIR) -> list[Path]:
    files = sorted(source.glob("*.py"))
    if not any(f.name == "main.py" for f in files):
        raise DeployError(f"{source} holds no firmware (main.py missing): pass --source")
    return files


def deploy_commands(port: str, config_file: Path, source: Path = FIRMWARE_DIR) -> list[list[str]]:
    """The mpremote invocations that install the firmware and the config, then reset."""
    files = [str(f) for f in firmware_files(source)]
    connect = ["mpremote", "connect", port]
    return [
        [*connect, "fs", "cp", *files, ":"],
        [*connect, "fs", "cp", str(config_file), f":{CONFIG_NAME}"],
        [*connect, "reset"],
    ]


def forget_bonds(port: str, dry_run: bool = False) -> list[list[str]]:
    """Remove the strap's bond and reset it: it accepts one new pairing (commissioning)."""
    connect = ["mpremote", "connect", port]
    commands = [[*connect, "fs", "rm", f":{BONDS_FILE}"], [*connect, "reset"]]
    if not dry_run:
        run_commands(commands)
    return commands


def run_commands(commands: list[list[str]]) -> None:
    if shutil.which("mpremote") is None:
        raise DeployError("mpremote is not installed: pip install 'kmc-sense[firmware]'")
    for cmd in commands:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise DeployError(
                f"{' '.join(cmd[:5])} failed: {done.stderr.strip() or done.stdout.strip()}"
            )


def deploy(
    port: str,
    config: dict[str, object],
    workdir: Path,
    source: Path = FIRMWARE_DIR,
    dry_run: bool = False,
) -> list[list[str]]:
    config_file = workdir / CONFIG_NAME
    config_file.write_text(json.dumps(config))
    commands = deploy_commands(port, config_file, source)
    if not dry_run:
        run_commands(commands)
    return commands
