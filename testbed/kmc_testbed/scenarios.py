"""What the demo's babies do: one scenario per strap, as a sensor feed for an emulated strap.

The first three are written for an hour of ward time (a baby in KMC with a nappy change, a baby
cooling in the cot, a strap taken off for a while); the others come from the ward simulator
(kmc_analysis.simulate).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from kmc_analysis.simulate import simulate_strap
from kmc_host import protocol as P

from .strap import SensorFeed

__all__ = ["T2000", "scenario"]

# the demo's first sample: 2026-03-02 06:00 UTC, in the strap's device time (s since 2000)
T2000 = int(dt.datetime(2026, 3, 2, 6, 0, tzinfo=dt.UTC).timestamp()) - P.EPOCH_2000_UNIX


def scenario(index: int, seconds: int, seed: int) -> tuple[str, SensorFeed]:
    """(description, sensor feed) for strap number `index` over a run of `seconds`.

    The first three are written for an hour of ward time; a shorter run plays them faster
    (every time point scaled by run / 1 h), so each still happens within the run."""
    m = 60 * min(1.0, seconds / 3600)  # a scenario minute, in seconds of this run
    i = np.arange(seconds + 1)
    if index == 0:
        contact = ((i >= 5 * m) & (i < seconds - 5 * m) & ~((i >= 25 * m) & (i < 27 * m))).astype(
            int
        )
        return "KMC with a nappy change", SensorFeed(
            contact=lambda k: int(contact[min(k, seconds)])
        )
    if index == 1:
        temp = np.interp(i, [0, 15 * m, 25 * m, max(seconds, 25 * m)], [36.8, 36.8, 35.6, 35.6])
        return "a baby cooling in the cot", SensorFeed(
            infant_c=lambda k: round(float(temp[min(k, seconds)]), 2)
        )
    if index == 2:
        worn = ((i >= 3) & ~((i >= 20 * m) & (i < 30 * m))).astype(int)
        temp = np.where(worn == 1, 36.8, 27.0)
        return f"a strap taken off for {_span(10 * m)}", SensorFeed(
            infant_c=lambda k: float(temp[min(k, seconds)]),
            worn=lambda k: int(worn[min(k, seconds)]),
        )
    st = simulate_strap(
        np.random.default_rng(seed + index), index, seconds / 86400 + 1 / 86400, 0.0, 2
    )
    return "from the ward simulator", SensorFeed(
        infant_c=lambda k: float(st.infant_c[min(k, seconds)]),
        outer_c=lambda k: float(st.outer_c[min(k, seconds)]),
        contact=lambda k: int(st.contact[min(k, seconds)]),
        worn=lambda k: int(st.worn[min(k, seconds)]) if k >= 3 else 0,
    )


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
