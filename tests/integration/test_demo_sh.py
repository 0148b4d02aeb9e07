"""`bash demo.sh`, the README's main command, as a new user runs it on a stock Debian/Ubuntu.

The distribution's Python (/usr/bin/python3, first on PATH) is "externally managed" (PEP 668):
`pip install` outside a virtual environment is refused. demo.sh must make its own virtual
environment in the checkout, install there (never into the system's Python), run the demo,
say how to run it again, and reuse that environment on the next run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from conftest import checkout_copy

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")


def system_env() -> dict[str, str]:
    """A new user's shell: the distribution's Python first on PATH, no virtual environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"
    return env


def python_says(python: Path, code: str) -> str:
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_demo_sh_on_the_distributions_python(tmp_path):
    assert SYSTEM_PYTHON.exists(), "this test needs the distribution's /usr/bin/python3"
    stdlib = python_says(SYSTEM_PYTHON, "import sysconfig; print(sysconfig.get_path('stdlib'))")
    # the premise: this Python refuses a plain pip install (as Debian 12/13 and Ubuntu 24.04 do)
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").exists(), stdlib
    env = system_env()
    assert shutil.which("python3", path=env["PATH"]) == str(SYSTEM_PYTHON)
    refused = subprocess.run(
        [str(SYSTEM_PYTHON), "-m", "pip", "install", "--dry-run", "."],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "externally-managed-environment" in (
        refused.stdout + refused.stderr
    )

    repo = checkout_copy(tmp_path / "kmc-sense")
    args = ["bash", "demo.sh", "--straps", "2", "--minutes", "5", "--speed", "300"]
    args += ["--ward-port", "0"]
    first = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-4000:]
    assert "making a virtual environment in .venv" in first.stderr
    assert "samples lost: 0" in first.stdout
    assert f"to run the demo again: {repo}/.venv/bin/kmc demo" in first.stderr
    venv_python = repo / ".venv" / "bin" / "python"
    base = python_says(venv_python, "import sys; print(sys.base_prefix, sys.prefix)").split()
    assert base[0] == "/usr" and base[1] == str(repo / ".venv")  # made from the system Python
    # nothing went into the system's Python
    leaked = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import kmc_analysis"], env=env, capture_output=True
    )
    assert leaked.returncode != 0

    # the second run reuses the environment (no new one, no reinstall) and runs again
    second = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert "using KMC Sense in .venv" in second.stderr
    assert "making a virtual environment" not in second.stderr
    assert "samples lost: 0" in second.stdout
