"""Times as we write them for people and other systems: ISO 8601 UTC, `YYYY-MM-DDTHH:MM:SSZ`.

One format everywhere (the gateway's MQTT messages, `kmc analyze` and `kmc report` tables, the
simulator's truth files, `kmc validate`, FHIR periods), so files and messages from different
parts of the system compare and join as text. It lives here, in the host package, because the
gateway writes it too and the analysis package already depends on this one.

- `iso_utc(t)`: one Unix time, rounded to the nearest whole second (halves to even, as Python's
  `round`); `truncate=True` drops the fraction instead (a `datetime`'s `strftime`, as the FHIR
  export has always written its periods).
- `iso_utc_array(t)`: the same rounding over a numpy array, vectorised; NaN (no time) gives an
  empty string, as a CSV cell wants.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ISO_UTC", "iso_utc", "iso_utc_array"]

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"  # strftime format: whole seconds, UTC said as "Z"


def iso_utc(t: float, *, truncate: bool = False) -> str:
    """Unix seconds as ISO 8601 UTC to the second: rounded (halves to even) or, with
    `truncate`, with the fraction of a second dropped."""
    return dt.datetime.fromtimestamp(t if truncate else round(t), dt.UTC).strftime(ISO_UTC)


def iso_utc_array(t: ArrayLike) -> NDArray[np.str_]:
    """`iso_utc` of every element (rounded), vectorised; NaN gives ""."""
    t = np.asarray(t, dtype=np.float64)
    missing = np.isnan(t)
    secs = np.round(np.where(missing, 0.0, t)).astype("datetime64[s]")
    text = np.char.add(np.datetime_as_string(secs, unit="s"), "Z")
    return np.where(missing, "", text)
