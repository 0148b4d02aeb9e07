"""Shared helpers: synthetic 1 Hz strap signals with known edges; the `kmc` command as a user
runs it, and its CSV outputs."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmc_host.samples import Samples

T0 = 1_772_398_800.0  # 2026-03-01T21:00:00Z, midnight in Africa/Addis_Ababa
KMC = [sys.executable, "-m", "kmc_host"]


def run_kmc(*args: str) -> subprocess.CompletedProcess[str]:
    """`kmc ARGS...` in a subprocess, as a user runs it (exit status, stdout, stderr)."""
    return subprocess.run([*KMC, *args], capture_output=True, text=True, timeout=300)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def signal(*segments: tuple[float, int, int, float], t0: float = T0) -> Samples:
    """1 Hz samples from (seconds, contact, worn, infant_c) segments, back to back."""
    contact, worn, temp = [], [], []
    for seconds, c, w, temp_c in segments:
        n = int(seconds)
        contact.append(np.full(n, c))
        worn.append(np.full(n, w))
        temp.append(np.full(n, temp_c, dtype=float))
    ct = np.concatenate(contact)
    time = t0 + np.arange(ct.size, dtype=float)
    infant = np.concatenate(temp)
    return Samples.from_columns(
        time, infant, np.where(ct == 1, 35.0, 30.0), ct, np.concatenate(worn)
    )


def drop_rows(s: Samples, start: int, stop: int) -> Samples:
    """The same samples with rows [start, stop) missing (a data gap)."""
    keep = np.ones(len(s), bool)
    keep[start:stop] = False
    return Samples(
        s.time[keep], s.infant_c[keep], s.outer_c[keep], s.contact[keep], s.worn[keep], None
    )


def detect_in_chunks(s: Samples, cuts, device: str = "S"):
    """The detector fed chunk by chunk, cut before each index in `cuts` (as live feeding does)."""
    from kmc_host.detect import StrapDetector

    det = StrapDetector(device)
    edges = np.unique(np.concatenate(([0], np.asarray(cuts, dtype=np.int64), [len(s)])))
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        det.feed(s.slice(int(a), int(b)))
    det.finish()
    return det.result()


def random_cuts(n: int, count: int, seed: int):
    return np.random.default_rng(seed).integers(1, n, count)


def assert_same_results(a, b) -> None:
    """Two detector results are identical: sessions, monitored time, every episode."""
    assert np.array_equal(a.session_start, b.session_start)
    assert np.array_equal(a.session_end, b.session_end)
    assert np.array_equal(a.monitored_start, b.monitored_start)
    assert np.array_equal(a.monitored_end, b.monitored_end)
    for kind in a.episodes:
        ea, eb = a.episodes[kind], b.episodes[kind]
        assert np.array_equal(ea.start, eb.start), kind
        assert np.array_equal(ea.end, eb.end), kind
        assert np.array_equal(ea.extreme, eb.extreme, equal_nan=True), kind


@pytest.fixture
def t0() -> float:
    return T0


def checkout_copy(dest: Path) -> Path:
    """The checkout's files as git knows them (tracked and new, not ignored): a fresh clone
    of what is being tested, without this checkout's .venv, caches or test artifacts."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = Path(__file__).resolve().parents[1] / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest
