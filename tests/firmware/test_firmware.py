"""The strap firmware under the real MicroPython interpreter (unix port), and mpy-cross.

Each tests/firmware/micropython/test_*.py runs in `micropython` with the stand-in `machine` and
`bluetooth` modules of tests/firmware/micropython/stubs; its closing line says how many passed.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kmc_host import protocol as P

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
MP_TESTS = ROOT / "tests" / "firmware" / "micropython"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: pip install -e '.[test]' installs it")
    return path


def run_micropython(script: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    tool("micropython")
    env = dict(os.environ, KMC_FW_TMP=str(tmp))
    return subprocess.run(
        ["sh", str(MP_TESTS / "run.sh"), script],
        cwd=MP_TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("script", sorted(p.name for p in MP_TESTS.glob("test_*.py")))
def test_firmware_under_micropython(script, tmp_path):
    r = run_micropython(script, tmp_path)
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.fullmatch(r"(\d+) passed, 0 failed", summary)
    assert m and int(m.group(1)) > 0, summary


@pytest.mark.parametrize("source", sorted(p.name for p in FIRMWARE.glob("*.py")))
def test_firmware_compiles_with_mpy_cross(source, tmp_path):
    r = subprocess.run(
        [tool("mpy-cross"), "-o", str(tmp_path / "out.mpy"), source],
        cwd=FIRMWARE,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0


def test_notifications_from_the_strap_decode_on_the_host(tmp_path):
    """What the firmware sent through a disconnect decodes with numpy: every seq once."""
    r = run_micropython("test_ble.py", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (tmp_path / "ble" / "notifications.hex").read_text().split()
    batches = [P.decode_measurement(bytes.fromhex(line)) for line in lines]
    seq = [int(s) for b in batches for s in b.seq]
    assert seq == list(range(len(seq))) and len(seq) > 7000
    times = [float(t) for b in batches for t in b.time]
    assert times[0] == 837000000 + P.EPOCH_2000_UNIX and all(
        b - a == 1 for a, b in zip(times, times[1:], strict=False)
    )
    assert all(abs(float(t) - 36.8) < 0.01 for b in batches for t in b.infant_c)


def test_kmc_firmware_config_is_what_the_strap_loads(tmp_path):
    """`kmc firmware config` writes JSON the firmware's own loader accepts, value by value."""
    out = tmp_path / "kmc_config.json"
    r = subprocess.run(
        [
            "kmc",
            "firmware",
            "config",
            "--strap-id",
            "KMC-0042",
            "--infant-offset",
            "0.04",
            "--passkey",
            "4096",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "label passkey 004096" in r.stderr  # for the label and the gateway's config
    script = tmp_path / "load_config.py"
    script.write_text(
        "import config\n"
        f"cfg = config.load({str(out)!r}, log=lambda s: print('LOG', s))\n"
        "print(cfg['strap_id'], cfg['infant_offset_c'], cfg['outer_offset_c'],"
        " cfg['interval_ms'], cfg['passkey'])\n"
    )
    r = run_micropython(str(script), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "KMC-0042 0.04 0.0 1000 4096"
    assert "LOG" not in r.stdout


def test_kmc_firmware_deploy_dry_run_and_bad_id():
    r = subprocess.run(
        ["kmc", "firmware", "deploy", "--strap-id", "KMC-7", "--port", "/dev/ttyUSB0", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("would run: mpremote connect /dev/ttyUSB0 fs cp ") and lines[
        0
    ].endswith(" :")
    assert "main.py" in lines[0] and "kmc_config.json :kmc_config.json" in lines[1]
    assert lines[2] == "would run: mpremote connect /dev/ttyUSB0 reset"
    assert "label passkey" in r.stderr
    r = subprocess.run(
        ["kmc", "firmware", "forget-bonds", "--port", "/dev/ttyUSB0", "--dry-run"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.splitlines() == [
        "would run: mpremote connect /dev/ttyUSB0 fs rm :kmc_data/bonds.json",
        "would run: mpremote connect /dev/ttyUSB0 reset",
    ]
    r = subprocess.run(
        ["kmc", "firmware", "config", "--strap-id", "much-too-long"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "must be 1-8 characters" in r.stderr
