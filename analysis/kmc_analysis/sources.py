"""Where `kmc report` and `kmc export` get samples: a `SampleSource`, a file or InfluxDB.

A source hands its `(strap, Samples)` chunks, in time order per strap and within the period
asked for, to a function (`consume(use)`), the shape the incremental detector eats:

- `FileSource`: a samples file (CSV, gzip CSV or Parquet) through `SampleReader`; its load
  report (rows read, rows left out) is in `notes()` once read.
- `InfluxSource`: the `kmc_sample` measurement (docs/influxdb.md) of one site/ward, read back
  with InfluxQL a strap-day at a time, several queries at once, as CSV (memory stays at a few
  days of samples), so the same detector runs on it: the report of a stored week equals the
  report of the file the straps would have written. It also knows the infant pseudonyms the straps carried (`infants`).

`open_source` picks one from the command line's choice (a file, or an `[influx]` TOML file).
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from kmc_host.errors import BadInput
from kmc_host.samples import Samples
from kmc_host.sink.influx import InfluxConfig, InfluxQL, quote_str

from .detection import within
from .samples_io import SampleReader, floats

__all__ = ["FileSource", "InfluxSource", "SampleSource", "open_source"]

T = TypeVar("T")
Chunks = Iterator[tuple[str, Samples]]
Period = tuple[float, float] | None

# The fields asked of InfluxDB: what the commands that read a source use (the detector's
# infant_c, contact, worn and battery_v; FHIR's readings are infant_c). outer_c, the strap's
# outer sensor, no command reads, so it is not asked for and comes back NaN: InfluxDB's answer
# costs a row plus a field apiece, and leaving outer_c out took about a seventh off its CPU
# seconds for a stored week (benchmarks/README.md, bench_report.py's queries alone).
SAMPLE_FIELDS = ("infant_c", "contact", "worn", "battery_v")
CHUNK_S = 86400.0
READERS = 4  # InfluxDB queries in flight at once


class SampleSource(Protocol):
    """Samples for a report or an export, whichever store they come from."""

    label: str  # where they come from, in words ("samples file x.csv")
    period: Period  # [start, end) in Unix seconds, or None: all there is
    infants: dict[str, str]  # strap -> infant pseudonym, as the source knows them

    def consume(self, use: Callable[[Chunks], T]) -> T:
        """`use(chunks)`: the per-strap chunks within the period, each strap in time order."""
        ...

    def notes(self) -> list[str]:
        """What reading the source found worth saying (rows left out, a re-sort), once read."""
        ...


class FileSource:
    """A samples file (CSV, gzip CSV or Parquet), read through `SampleReader`."""

    def __init__(self, path: str | Path, period: Period = None, skip_invalid: bool = False) -> None:
        self.reader = SampleReader(path, skip_invalid=skip_invalid)
        self.period = period
        self.label = f"samples file {path}"
        self.infants: dict[str, str] = {}

    def consume(self, use: Callable[[Chunks], T]) -> T:
        return self.reader.consume(lambda chunks: use(within(chunks, self.period)))

    def notes(self) -> list[str]:
        return self.reader.report.lines()


class InfluxSource:
    """`kmc_sample` of one site/ward (either may be empty: all) over a period (None: all that
    is stored); BadInput when nothing is stored there."""

    def __init__(
        self, cfg: InfluxConfig, site: str = "", ward: str = "", period: Period = None
    ) -> None:
        self.cfg = cfg
        self.query = InfluxQL(cfg)
        self.site = site
        self.ward = ward
        self.label = f"InfluxDB {cfg.url} database {cfg.database}"
        extent = self.extent()
        if extent is None:
            raise BadInput(f"no samples in InfluxDB at {cfg.url} for this site/ward")
        p = period or (extent[0], extent[1] + 1)
        self.span = (max(extent[0], p[0]), min(extent[1] + 1, p[1]))
        self.period = period
        self.infants = self.infant_tags(*self.span)

    def consume(self, use: Callable[[Chunks], T]) -> T:
        return use(self.chunks(*self.span))

    def notes(self) -> list[str]:
        return []

    def _where(self) -> str:
        parts = []
        if self.site:
            parts.append(f"site = {quote_str(self.site)}")
        if self.ward:
            parts.append(f"ward = {quote_str(self.ward)}")
        return "".join(f" AND {p}" for p in parts)

    def _span(self, start: float, end: float) -> str:
        """The WHERE clause of [start, end) on this source's site/ward (ms, end rounded up)."""
        return f"time >= {int(start * 1000)}ms AND time < {math.ceil(end * 1000)}ms{self._where()}"

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
        q = f"SELECT last(seq) FROM kmc_sample WHERE {self._span(start, end)} GROUP BY strap, infant"
        latest: dict[str, tuple[float, str]] = {}
        for series in self.query.run(q):
            strap, infant = series["tags"].get("strap", ""), series["tags"].get("infant", "")
            at = series["values"][0][0]
            if infant and (strap not in latest or at > latest[strap][0]):
                latest[strap] = (at, infant)
        return {strap: infant for strap, (_, infant) in latest.items()}

    def straps(self, start: float, end: float) -> list[str]:
        """The straps with samples stored in [start, end), sorted."""
        q = f"SELECT last(seq) FROM kmc_sample WHERE {self._span(start, end)} GROUP BY strap"
        return sorted({s["tags"].get("strap", "") for s in self.query.run(q)})

    def chunks(self, start: float, end: float) -> Iterator[tuple[str, Samples]]:
        """Strap by strap, a day at a time over [start, end): each strap's samples in time
        order. READERS queries (a strap's day each) are in flight at once, answered as CSV
        and parsed by arrow, so InfluxDB's cores and ours work together; at most
        2 x READERS days of samples are held. (KMC_INFLUX_READ=json: the previous way, a
        day of every strap at a time as JSON, for the benchmark.)"""
        days = []
        t = float(math.floor(start))
        while t < end:
            days.append((t, min(end, t + CHUNK_S)))
            t = days[-1][1]
        if influx_read() == "json":
            yield from self._chunks_json(days)
            return
        pool = ThreadPoolExecutor(READERS, thread_name_prefix="kmc-influx-read")
        pending: deque[tuple[str, Future[Samples | None]]] = deque()
        try:
            for strap in self.straps(start, end):
                for a, b in days:
                    pending.append((strap, pool.submit(self._day, strap, a, b)))
                    if len(pending) >= 2 * READERS:
                        yield from _ready(pending.popleft())
            while pending:
                yield from _ready(pending.popleft())
        except BaseException:  # Ctrl-C, an error, a reader that stops early: leave at once
            pool.shutdown(wait=False, cancel_futures=True)  # (queries end by their timeout)
            raise
        pool.shutdown()

    def _day(self, strap: str, start: float, end: float) -> Samples | None:
        """One strap's samples in [start, end), or None when it has none there."""
        q = (
            f"SELECT {', '.join(SAMPLE_FIELDS)} FROM kmc_sample"
            f" WHERE strap = {quote_str(strap)} AND {self._span(start, end)}"
        )
        body = self.query.csv(q)
        if not body.strip():
            return None
        table = pacsv.read_csv(
            pa.BufferReader(body),
            convert_options=pacsv.ConvertOptions(
                column_types={"time": pa.int64(), **{f: pa.float64() for f in SAMPLE_FIELDS}},
                include_columns=["time", *SAMPLE_FIELDS],
            ),
        ).combine_chunks()
        if table.num_rows == 0:
            return None
        col = {name: floats(table.column(name).chunk(0)) for name in table.column_names}
        return _as_samples(col)

    def _chunks_json(self, days: list[tuple[float, float]]) -> Iterator[tuple[str, Samples]]:
        """The previous way: a day of every strap at a time, as JSON (the benchmark's
        reference)."""
        fields = ", ".join(SAMPLE_FIELDS)
        for t, t1 in days:
            q = f"SELECT {fields} FROM kmc_sample WHERE {self._span(t, t1)} GROUP BY strap"
            for series in sorted(self.query.run(q), key=lambda s: s["tags"].get("strap", "")):
                yield series["tags"].get("strap", ""), _samples(series)


def influx_read() -> str:
    """KMC_INFLUX_READ: `csv` (the default) or `json` (the previous way)."""
    how = os.environ.get("KMC_INFLUX_READ", "csv")
    if how not in ("csv", "json"):
        raise BadInput(f"KMC_INFLUX_READ={how!r}: expected 'csv' or 'json'")
    return how


def _ready(job: tuple[str, Future[Samples | None]]) -> Iterator[tuple[str, Samples]]:
    strap, done = job
    samples = done.result()
    if samples is not None:
        yield strap, samples


def _samples(series: dict) -> Samples:
    cols = series["columns"]
    values = series["values"]
    arr = np.array(
        [[np.nan if v is None else v for v in row] for row in values], dtype=np.float64
    ).reshape(len(values), len(cols))
    return _as_samples({name: arr[:, k] for k, name in enumerate(cols)})


def _as_samples(col: dict[str, NDArray[np.float64]]) -> Samples:
    """Samples from the stored columns (time in ms; a flag not stored counts as 0; outer_c,
    not read, NaN)."""
    flags = {
        name: np.nan_to_num(col[name], nan=0.0).astype(np.int8) for name in ("contact", "worn")
    }
    return Samples(
        col["time"] / 1000.0,
        col["infant_c"],
        np.full(col["time"].size, np.nan),
        flags["contact"],
        flags["worn"],
        col["battery_v"],
    )


def open_source(
    samples: str | None,
    influx_toml: str | None,
    period: Period = None,
    *,
    site: str = "",
    ward: str = "",
    skip_invalid: bool = False,
) -> SampleSource:
    """A samples file, or InfluxDB as the `[influx]` section of a TOML file says: one of two."""
    if (samples is None) == (influx_toml is None):
        raise BadInput("give either a samples file or --influx CONFIG (one of the two)")
    if influx_toml is not None:
        from kmc_host.sink.config import load_influx_config

        return InfluxSource(load_influx_config(influx_toml), site, ward, period)
    assert samples is not None
    return FileSource(samples, period, skip_invalid)
