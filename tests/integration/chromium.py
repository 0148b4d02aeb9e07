"""What the ward screen's browser tests share: Debian's Chromium driven by Playwright, where the
screenshots go, the ward PIN the tests configure. Imported by test_ward_browser.py,
test_ward_chain.py and test_ward_pause.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("KMC_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ward"
CHROMIUM = "/usr/bin/chromium"
PIN = "4321"


def need_chromium() -> None:
    """Fail (not skip: CI installs it) without Chromium; make the screenshots' folder."""
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def launch(pw: Any) -> Any:
    """Chromium for a ward screen: no sandbox (root in CI), no GPU, sound without a gesture."""
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )
