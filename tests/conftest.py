"""Shared helpers: synthetic 1 Hz strap signals with known edges."""

from __future__ import annotations

import numpy as np
import pytest

from kmc_host.samples import Samples

T0 = 1_772_398_800.0  # 2026-03-01T21:00:00Z, midnight in Africa/Addis_Ababa


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


@pytest.fixture
def t0() -> float:
    return T0
