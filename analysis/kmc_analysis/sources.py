"""Where `kmc report` and `kmc validate` get samples: a samples file, or InfluxDB.

Both yield `(strap, Samples)` chunks in time order per strap, the shape the incremental detector
eats. From InfluxDB the `kmc_sample` measurement (docs/influxdb.md) is read back with InfluxQL,
one day of one ward at a time (memory stays at a day of samples), and the same detector runs on
it: the report of a stored week equals the report of the file the straps would have written.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from kmc_host.samples import Samples
from kmc_host.sink.influx import InfluxConfig, InfluxQL, quote_str

SAMPLE_FIELDS = ("infant_c", "outer_c", "contact", "worn", "battery_v")
CHUNK_S = 86400.0


class InfluxSource:
    """`kmc_sample` of one site/ward (either may be empty: all) over a period."""

    def __init__(self, cfg: InfluxConfig, site: str = "", ward: str = "") -> None:
        self.cfg = cfg
        self.query = InfluxQL(cfg)
        self.site = site
        self.ward = ward

    def _where(self) -> str:
        parts = []
        if self.site:
            parts.append(f"site = {quote_str(self.site)}")
        if self.ward:
            parts.append(f"ward = {quote_str(self.ward)}")
        return "".join(f" AND {p}" for p in parts)

    def extent(self) -> tuple[float, float] | None:
        """First and last sample time stored (Unix seconds), or None when there is none."""
        ends = []
        for fn in ("first", "last"):
            series = self.query.run(
                f"SELECT {fn}(seq) FROM kmc_sample WHERE time > 0{self._where()}"
            )
            if not series:
                return None
            ends.append(series[0]["values"][0][0] / 1000.0)
        return ends[0], ends[1]

    def infant_tags(self, start: float, end: float) -> dict[str, str]:
        """Strap -> the infant pseudonym it carried last in the period (the `infant` tag)."""
        q = (
            f"SELECT last(seq) FROM kmc_sample WHERE time >= {int(start * 1000)}ms"
            f" AND time < {math.ceil(end * 1000)}ms{self._where()} GROUP BY strap, infant"
        )
        latest: dict[str, tuple[float, str]] = {}
        for series in self.query.run(q):
            strap, infant = series["tags"].get("strap", ""), series["tags"].get("infant", "")
            at = series["values"][0][0]
            if infant and (strap not in latest or at > latest[strap][0]):
                latest[strap] = (at, infant)
        return {strap: infant for strap, (_, infant) in latest.items()}

    def chunks(self, start: float, end: float) -> Iterator[tuple[str, Samples]]:
        """Day by day over [start, end): each strap's samples of the day, in time order."""
        fields = ", ".join(SAMPLE_FIELDS)
        t = float(math.floor(start))
        while t < end:
            t1 = min(end, t + CHUNK_S)
            q = (
                f"SELECT {fields} FROM kmc_sample WHERE time >= {int(t * 1000)}ms"
                f" AND time < {math.ceil(t1 * 1000)}ms{self._where()} GROUP BY strap"
            )
            for series in sorted(self.query.run(q), key=lambda s: s["tags"].get("strap", "")):
                yield series["tags"].get("strap", ""), _samples(series)
            t = t1


def _samples(series: dict) -> Samples:
    cols = series["columns"]
    values = series["values"]
    arr = np.array(
        [[np.nan if v is None else v for v in row] for row in values], dtype=np.float64
    ).reshape(len(values), len(cols))
    col = {name: arr[:, k] for k, name in enumerate(cols)}
    flags = {
        name: np.nan_to_num(col[name], nan=0.0).astype(np.int8) for name in ("contact", "worn")
    }
    return Samples(
        col["time"] / 1000.0,
        col["infant_c"],
        col["outer_c"],
        flags["contact"],
        flags["worn"],
        col["battery_v"],
    )
