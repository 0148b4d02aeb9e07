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
    assert lines[0] == (
        "would run: mpremote connect /dev/ttyUSB0 exec import sys; print(sys.implementation._mpy)"
    )
    compiling = [line for line in lines if "mpy-cross -march=xtensawin -o " in line]
    modules = sorted(p.stem for p in FIRMWARE.glob("*.py") if p.name != "main.py")
    assert [line.rsplit("/", 1)[1] for line in compiling] == [m + ".py" for m in modules]
    assert lines[len(compiling) + 1].startswith("would run: mpremote connect /dev/ttyUSB0 exec ")
    copy = lines[len(compiling) + 2]
    assert copy.startswith("would run: mpremote connect /dev/ttyUSB0 fs cp ") and copy.endswith(
        " :"
    )
    assert copy.count(".mpy") == len(modules) and "/main.py" in copy and "app.py" not in copy
    assert "kmc_config.json :kmc_config.json" in lines[-2]
    assert lines[-1] == "would run: mpremote connect /dev/ttyUSB0 reset"
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


def deploy_to_standin(board: Path) -> subprocess.CompletedProcess[str]:
    """`kmc firmware deploy` against tests/firmware/board/mpremote: the board is a folder, its
    MicroPython the unix port (so the board asks for -march=x64 .mpy files)."""
    env = dict(
        os.environ,
        KMC_FAKE_BOARD=str(board),
        PATH=os.pathsep.join([str(ROOT / "tests" / "firmware" / "board"), os.environ["PATH"]]),
    )
    return subprocess.run(
        ["kmc", "firmware", "deploy", "--strap-id", "KMC-7", "--port", "fake", "--passkey", "1"],
        capture_output=True,
        text=True,
        env=env,
    )


def test_deploy_copies_mpy_files_for_the_boards_version_and_removes_stale_py(tmp_path):
    tool("micropython")
    tool("mpy-cross")
    board = tmp_path / "board"
    board.mkdir()
    (board / "app.py").write_text("raise RuntimeError('the old app.py was imported')\n")
    (board / "notes.txt").write_text("not the firmware's: left alone\n")
    r = deploy_to_standin(board)
    assert r.returncode == 0, r.stderr
    modules = sorted(p.stem for p in FIRMWARE.glob("*.py") if p.name != "main.py")
    on_board = sorted(p.name for p in board.iterdir() if not p.name.startswith("."))
    assert on_board == sorted(
        [m + ".mpy" for m in modules] + ["main.py", "kmc_config.json", "notes.txt"]
    )
    assert "-march=x64" in r.stdout  # what the stand-in board (unix port, x86-64) said it runs
    assert (board / "app.mpy").read_bytes()[:2] == b"M\x06"  # .mpy version 6
    # the board imports the compiled modules (no .py left to shadow them) and loads its config
    r = subprocess.run(
        [
            "micropython",
            "-c",
            "import sys; sys.path.insert(0, '.'); import app, config; "
            "print(app.__file__, config.load('kmc_config.json')['strap_id'])",
        ],
        cwd=board,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["./app.mpy", "KMC-7"]


def test_deploy_refuses_a_board_whose_mpy_version_differs(tmp_path):
    board = tmp_path / "board"
    board.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a board with MicroPython 1.22 (.mpy v6.2, xtensawin): 6 | 2 << 8 | 10 << 10
    fake = bin_dir / "mpremote"
    fake.write_text(f"#!/bin/sh\necho {6 | 2 << 8 | 10 << 10}\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=os.pathsep.join([str(bin_dir), os.environ["PATH"]]))
    r = subprocess.run(
        ["kmc", "firmware", "deploy", "--strap-id", "KMC-7", "--port", "x", "--passkey", "1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode != 0 and "the board loads .mpy v6.2, mpy-cross emits v6.3" in r.stderr


def test_the_memory_budget_holds_for_the_deployed_mpy_files(tmp_path):
    """test_memory.py under the ESP32's heap stand-in, importing the .mpy files a deploy put on
    the board (as the strap does) instead of compiling firmware/*.py at import."""
    board = tmp_path / "board"
    board.mkdir()
    assert deploy_to_standin(board).returncode == 0
    env = dict(os.environ, KMC_FW_TMP=str(tmp_path), KMC_FW_DIR=str(board))
    r = subprocess.run(
        ["sh", str(MP_TESTS / "run.sh"), "test_memory.py"],
        cwd=MP_TESTS,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "1 passed, 0 failed"
    print(r.stdout)
