"""The samples table (DESIGN.md): the one shape every stage hands to the next.

One `Samples` object holds one strap's samples in time order as numpy columns. Missing readings
are NaN (a sensor that failed marks its field invalid; the row is kept). Flags are 0/1 int8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

REQUIRED_COLUMNS = ("time", "device", "infant_c", "outer_c", "contact", "worn")
OPTIONAL_COLUMNS = ("tilt_deg", "battery_v", "contact_raw", "worn_raw", "seq")
RAW_PAD_SUFFIX = "_raw"  # raw pad readings: any name ending so (e.g. contact_raw, worn_raw)
TEMPERATURE_RANGE_C = (10.0, 45.0)


@dataclass(frozen=True)
class Samples:
    """One strap's samples, sorted by time (Unix seconds, UTC)."""

    time: NDArray[np.float64]
    infant_c: NDArray[np.float64]
    outer_c: NDArray[np.float64]
    contact: NDArray[np.int8]
    worn: NDArray[np.int8]
    battery_v: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = self.time.size
        for name in ("infant_c", "outer_c", "contact", "worn", "battery_v"):
            col = getattr(self, name)
            if col is not None and col.shape != (n,):
                raise ValueError(f"samples column {name} has shape {col.shape}, expected ({n},)")
        for name in ("contact", "worn"):  # the detector relies on 0/1 int8 flags
            col = getattr(self, name)
            if col.dtype != np.int8 or (n and (col.view(np.uint8) > 1).any()):
                raise ValueError(f"samples column {name} must hold 0/1 as int8")

    def __len__(self) -> int:
        return int(self.time.size)

    def slice(self, start: int, stop: int) -> Samples:
        """Rows [start, stop): a chunk as the live gateway would receive it."""
        bat = None if self.battery_v is None else self.battery_v[start:stop]
        return Samples(
            self.time[start:stop],
            self.infant_c[start:stop],
            self.outer_c[start:stop],
            self.contact[start:stop],
            self.worn[start:stop],
            bat,
        )

    @staticmethod
    def concat(parts: list[Samples]) -> Samples:
        """Chunks of one strap, in order, as one."""
        bat = (
            None
            if parts[0].battery_v is None
            else np.concatenate([p.battery_v for p in parts if p.battery_v is not None])
        )
        return Samples(
            np.concatenate([p.time for p in parts]),
            np.concatenate([p.infant_c for p in parts]),
            np.concatenate([p.outer_c for p in parts]),
            np.concatenate([p.contact for p in parts]),
            np.concatenate([p.worn for p in parts]),
            bat,
        )

    @staticmethod
    def from_columns(
        time: object,
        infant_c: object,
        outer_c: object,
        contact: object,
        worn: object,
        battery_v: object | None = None,
    ) -> Samples:
        """Build from any array-likes, converting to the canonical dtypes."""
        return Samples(
            np.asarray(time, dtype=np.float64),
            np.asarray(infant_c, dtype=np.float64),
            np.asarray(outer_c, dtype=np.float64),
            np.asarray(contact, dtype=np.int8),
            np.asarray(worn, dtype=np.int8),
            None if battery_v is None else np.asarray(battery_v, dtype=np.float64),
        )
