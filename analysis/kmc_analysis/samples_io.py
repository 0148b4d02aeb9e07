"""Reading samples files (CSV, CSV.gz, Parquet) into per-strap `Samples`, strictly.

Files of a ward-week reach tens of millions of rows, so the reader streams: it converts the file
batch by batch (pyarrow, vectorised; the next batch is read in one background thread while
another checks this one and the caller works on the one before), checks every value, and hands
out per-strap chunks in file order. A CSV file is parsed straight into typed columns first, on
every core; whatever that parse cannot take as it is goes through the checking parse, every
column as text (see `_csv_typed_pieces`), so that both give the same samples, report and errors.
The detector is incremental, so that is all `kmc analyze` needs when each strap's rows are in
time order, however the straps are interleaved. When a strap's time goes backwards the reader
says so (`RowsOutOfOrder`) and `SampleReader.consume()` starts again with `sorted_straps()`,
which spills each strap's rows to a temporary file, sorts it and settles duplicates. Peak memory
is a few batches (plus one strap on the sorting path), whatever the file size.

Strict by default: the first bad value stops the load with `SamplesFileError`, naming the file,
the line and the problem. With `skip_invalid=True` bad rows are left out and counted by kind, with
their line numbers, in the `LoadReport`; nothing is ever dropped without being reported. Sorting
rows into time order is a harmless repair and is stated in the report.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import os
import queue
import tempfile
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from kmc_host.errors import BadInput, KmcError
from kmc_host.samples import (
    OPTIONAL_COLUMNS,
    RAW_PAD_SUFFIX,
    REQUIRED_COLUMNS,
    TEMPERATURE_RANGE_C,
    Samples,
)

T = TypeVar("T")
EARLIEST_TIME = 1420070400.0  # 2015-01-01T00:00:00Z: earlier means a strap clock never set
BATCH_ROWS = 1 << 20  # Parquet rows checked and handed out at once (at most)
CSV_BATCH_ROWS = 1 << 18  # CSV rows likewise: CSV text is held as strings, so fewer
CSV_BLOCK_BYTES = 1 << 20  # arrow's CSV reader reads many blocks ahead: keep them small
CSV_TYPED_PIECE_BYTES = 1 << 24  # the typed parse's pieces of text, each parsed on every core
CSV_TYPED_BLOCK_BYTES = 1 << 22  # and the blocks arrow parses a piece in, one a thread at once
CSV_TYPED_MAX_LINE_BYTES = 1 << 20  # longer is no samples line: the checking parse reads it
MAX_LINES_LISTED = 10

SPILL_DTYPE = np.dtype(
    [
        ("time", "f8"),
        ("infant_c", "f8"),
        ("outer_c", "f8"),
        ("battery_v", "f8"),
        ("line", "i8"),
        ("contact", "i1"),
        ("worn", "i1"),
    ]
)

# Kinds of bad rows, as the report and the error messages name them.
MISSING = "missing value"
BAD_TIME = "unparsable time"
EARLY_TIME = "time before 2015 (strap clock not set?)"
BAD_NUMBER = "unparsable number"
OUT_OF_RANGE = "temperature outside 10-45 C"
BAD_FLAG = "flag not 0/1"
DUPLICATE = "duplicate (device, time)"
NOT_TEXT = "not UTF-8 text: a CSV file saved as UTF-8 is expected"


class RowsOutOfOrder(KmcError):
    """A strap's rows are not in time order: read again with `SampleReader.sorted_straps()`."""


class NotTyped(KmcError):
    """The typed CSV parse met something it does not take as it is (a value to convert some other
    way, a bad value, a malformed line): read again with the checking parse, `typed=False`,
    which converts each value as the strict rules say and names the line of what is wrong."""


class _Unclean(Exception):
    """A batch of the typed CSV parse holds something the checking parse must look at."""


# every CSV read: an empty line is a malformed row (one field), not skipped, so rows stay lines
CSV_PARSE = pacsv.ParseOptions(ignore_empty_lines=False)


def _csv_line(row: int) -> int:
    """The file line of a CSV row (from 0): the header is line 1."""
    return row + 2


def _text_columns(names: list[str]) -> pacsv.ConvertOptions:
    """How the checking parse converts a CSV file: every column as text, empty as missing."""
    return pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


class SamplesFileError(BadInput):
    """A samples file cannot be used as it is; the message names file, line and problem."""

    def __init__(self, path: str | Path, line: int | None, problem: str) -> None:
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{path}: line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


@dataclass
class LoadReport:
    """What the loader read, skipped and repaired (printed in every summary)."""

    path: str
    rows: int = 0
    kept: int = 0
    straps: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)
    missing_infant_c: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def note_skipped(self, kind: str, lines: NDArray[np.int64]) -> None:
        """Count skipped rows (called from the reader thread and the caller's); the first
        MAX_LINES_LISTED lines of each kind are listed, in order, however the rows came."""
        with self._lock:
            self.skipped[kind] += int(lines.size)
            listed = self.skipped_lines.setdefault(kind, [])
            first = np.sort(lines)[:MAX_LINES_LISTED].tolist()
            listed[:] = sorted(set(listed) | set(first))[:MAX_LINES_LISTED]

    def lines(self) -> list[str]:
        """Human summary of the load."""
        out = [
            f"{self.path}: {self.rows} rows, {self.kept} samples kept, {len(self.straps)} straps"
        ]
        for kind, n in sorted(self.skipped.items()):
            shown = ", ".join(str(x) for x in self.skipped_lines.get(kind, []))
            more = " ..." if n > MAX_LINES_LISTED else ""
            out.append(f"  skipped {n} rows: {kind} (lines {shown}{more})")
        out += [f"  repaired: {r}" for r in self.repairs]
        if self.missing_infant_c:
            out.append(f"  {self.missing_infant_c} samples without infant_c (sensor invalid)")
        return out


# ---- value conversion, one batch at a time -------------------------------------------------


def _slow_parse(
    strings: pa.Array, parse: Callable[[str], float]
) -> tuple[NDArray[np.float64], NDArray[np.bool_] | None]:
    """Per-value parse to locate the bad ones; used only when a batch fails the fast path."""
    values = np.full(len(strings), np.nan)
    bad = np.zeros(len(strings), bool)
    strings = strings.cast(pa.string())
    for i, s in enumerate(strings.to_pylist()):
        if s is None:
            continue
        try:
            values[i] = parse(s)
        except (ValueError, OverflowError):
            bad[i] = True
    return values, bad if bad.any() else None


def _parse_iso(s: str) -> float:
    arr = pc.cast(pa.array([s]), pa.timestamp("us", tz="UTC"))
    return float(arr.cast(pa.int64())[0].as_py()) / 1e6


def parse_time_value(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        try:
            return _parse_iso(s.strip())
        except pa.ArrowInvalid as exc:
            raise ValueError(s) from exc


Mask = NDArray[np.bool_] | None  # None: no row has this problem (the common case, kept cheap)


def _values(col: pa.Array) -> NDArray[Any]:
    """The values of a fixed-width array without nulls: a numpy view of its buffer (booleans
    as one byte each). pyarrow's own to_numpy imports pandas where pandas is installed, even to
    copy nothing: a quarter of a second, a fifth of a ward-week's `kmc analyze` on Parquet."""
    if col.null_count:
        raise ValueError("_values: fill the nulls first")
    t = col.type
    if pa.types.is_boolean(t):
        return _values(pc.cast(col, pa.uint8())).view(np.bool_)
    if pa.types.is_timestamp(t):
        col, t = col.cast(pa.int64()), pa.int64()
    if pa.types.is_floating(t):
        kind = "f"
    elif pa.types.is_signed_integer(t):
        kind = "i"
    elif pa.types.is_unsigned_integer(t):
        kind = "u"
    else:
        raise TypeError(f"_values: no numpy view of {t}")
    width = t.bit_width // 8
    return np.frombuffer(
        col.buffers()[1], np.dtype(f"<{kind}{width}"), count=len(col), offset=col.offset * width
    )


def _nulls(col: pa.Array) -> Mask:
    """Where `col` is null (None: nowhere)."""
    return _values(col.is_null()) if col.null_count else None


def _seconds(us: pa.Array) -> NDArray[np.float64]:
    """Unix seconds (NaN where null) of UTC timestamps in microseconds."""
    i = us.cast(pa.int64())
    v = _values(i.fill_null(0) if i.null_count else i).astype(np.float64) / 1e6
    if i.null_count:
        v[_values(i.is_null())] = np.nan
    return v


def _to_seconds(col: pa.Array) -> tuple[NDArray[np.float64], Mask]:
    """Unix seconds from numbers, timestamps or strings; (values, unparsable mask)."""
    if pa.types.is_timestamp(col.type):
        if col.type.tz is None:
            raise BadInput("time column holds timestamps without a UTC offset")
        return _seconds(pc.cast(col, pa.timestamp("us", tz="UTC"))), None
    if pa.types.is_integer(col.type):
        return floats(col), None
    if not pa.types.is_floating(col.type):
        try:
            col = pc.cast(col, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            try:
                return _seconds(
                    pc.cast(pc.utf8_trim_whitespace(col), pa.timestamp("us", tz="UTC"))
                ), None
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                v, bad = _slow_parse(col, parse_time_value)
                with np.errstate(invalid="ignore"):
                    odd = ~np.isfinite(v) & ~_values(col.is_null())  # 'nan', 'inf' beside times
                if odd.any():
                    bad = odd if bad is None else bad | odd
                return v, bad
    v = floats(col)
    bad = ~np.isfinite(v)  # nan, inf; nulls are reported as missing instead
    null = _nulls(col)
    if null is not None:
        bad &= ~null
    return v, bad if bad.any() else None


def floats(col: pa.Array) -> NDArray[np.float64]:
    """A column as floats, NaN where null (without pyarrow's to_numpy: see `_values`)."""
    if not pa.types.is_float64(col.type):
        col = pc.cast(col, pa.float64())
    return _values(col.fill_null(np.nan) if col.null_count else col)


def _to_float(col: pa.Array) -> tuple[NDArray[np.float64], Mask]:
    """Floats (nulls as NaN) and a mask of unparsable values."""
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    try:
        return floats(col), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _slow_parse(col, float)


def _to_flag(col: pa.Array) -> tuple[NDArray[np.int8], Mask, Mask]:
    """A 0/1 flag column: (values, not-0/1 mask, empty mask)."""
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    null = _nulls(col)
    if pa.types.is_integer(col.type) and null is None:
        v = _values(col)
        bad = (v != 0) & (v != 1)
        return v.astype(np.int8, copy=False), bad if bad.any() else None, None
    f, unparsable = _to_float(col)
    bad = (f != 0) & (f != 1)
    if null is not None:
        bad &= ~null
    if unparsable is not None:
        bad |= unparsable
    return (f == 1).astype(np.int8), bad if bad.any() else None, null


@dataclass
class _Batch:
    """One validated batch: numpy columns and the strap code of every row.

    File lines are kept as the first line plus row offsets (None: rows 0..n-1 in order), as
    they are needed only to name a bad row.
    """

    device: NDArray[np.int32]
    first_line: int
    offsets: NDArray[np.int64] | None
    time: NDArray[np.float64]
    infant_c: NDArray[np.float64]
    outer_c: NDArray[np.float64]
    contact: NDArray[np.int8]
    worn: NDArray[np.int8]
    battery_v: NDArray[np.float64] | None

    @property
    def line(self) -> NDArray[np.int64]:
        offsets = np.arange(self.time.size) if self.offsets is None else self.offsets
        return self.first_line + offsets

    def last_line(self) -> int:
        last = self.time.size - 1 if self.offsets is None else int(self.offsets[-1])
        return self.first_line + last

    def slice(self, a: int, b: int) -> _Batch:
        """Rows a to b-1, as views."""
        bat = None if self.battery_v is None else self.battery_v[a:b]
        return _Batch(
            self.device[a:b],
            self.first_line + a if self.offsets is None else self.first_line,
            None if self.offsets is None else self.offsets[a:b],
            self.time[a:b],
            self.infant_c[a:b],
            self.outer_c[a:b],
            self.contact[a:b],
            self.worn[a:b],
            bat,
        )

    def take(self, idx: NDArray[Any]) -> _Batch:
        """The rows at `idx` (indices or a boolean mask), in that order."""
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        bat = None if self.battery_v is None else self.battery_v[idx]
        return _Batch(
            self.device[idx],
            self.first_line,
            idx if self.offsets is None else self.offsets[idx],
            self.time[idx],
            self.infant_c[idx],
            self.outer_c[idx],
            self.contact[idx],
            self.worn[idx],
            bat,
        )

    def samples(self) -> Samples:
        return Samples(
            self.time, self.infant_c, self.outer_c, self.contact, self.worn, self.battery_v
        )


def _prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run `items` in a background thread, `depth` ahead; its exceptions reach the caller."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(("error", exc))

    worker = threading.Thread(target=produce, name="kmc-samples-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def csv_parse_typed() -> bool:
    """KMC_CSV_PARSE=checking reads every CSV file the checking way only, as before the typed
    parse (benchmarks/bench_analyze.py measures the two side by side); unset or `typed`: typed
    first."""
    how = os.environ.get("KMC_CSV_PARSE", "typed")
    if how not in ("typed", "checking"):
        raise BadInput(f"KMC_CSV_PARSE={how!r}: expected 'typed' or 'checking'")
    return how == "typed"


# ---- the reader --------------------------------------------------------------------------


class SampleReader:
    """A samples file, read as validated per-strap chunks (see the module docstring).

    reader = SampleReader(path)
    result = reader.consume(lambda chunks: ...)  # (device, Samples) in file order, sorted if need be
    print("\n".join(reader.report.lines()))
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        skip_invalid: bool = False,
        typed: bool | None = None,
    ) -> None:
        self.path = Path(path)
        self.skip_invalid = skip_invalid
        # CSV: parse into typed columns first (see _csv_typed_pieces); None: as KMC_CSV_PARSE
        self.typed = csv_parse_typed() if typed is None else typed
        self.report = LoadReport(str(path))
        self.devices: list[str] = []  # strap ids by code, in order of first appearance
        self._codes: dict[str, int] = {}
        self.has_battery = False

    def consume(self, use: Callable[[Iterator[tuple[str, Samples]]], T]) -> T:
        """`use(chunks)` on the streamed file; if a strap's rows go back in time, start again
        with `use(sorted_straps)` (the sort is stated in the report), and if the typed CSV
        parse stops at something, start again with the checking parse."""
        order = self.chunks
        while True:
            try:
                return use(order())
            except RowsOutOfOrder:
                order = self.sorted_straps
            except NotTyped:
                self.typed = False
            except SamplesFileError:
                if not (self.typed and self._is_csv()):
                    raise
                self.typed = False  # which error comes first is the checking parse's to say

    def _is_csv(self) -> bool:
        return self.path.name.lower().endswith((".csv", ".csv.gz"))

    # -- the two ways through the file

    def chunks(self) -> Iterator[tuple[str, Samples]]:
        """Per-strap chunks in file order; raises RowsOutOfOrder if a strap's time goes back,
        and NotTyped (CSV, `typed`) where the checking parse must read the file instead."""
        self._restart()
        last_t: dict[int, float] = {}
        last_line: dict[int, int] = {}
        for batch in _prefetch(self._batches()):
            for code, part in self._by_strap(batch):
                t = part.time
                prev = last_t.get(code, -np.inf)
                if not (t[0] > prev and (t[1:] > t[:-1]).all()):  # else: strictly increasing
                    step = np.diff(t, prepend=prev)
                    if (step < 0).any():
                        raise RowsOutOfOrder(self.devices[code])
                    dup = np.flatnonzero(step == 0)  # not increasing, not backwards: duplicates
                    if not self.skip_invalid:
                        k = int(dup[0])
                        before = last_line[code] if k == 0 else int(part.line[k - 1])
                        raise self._duplicate(code, float(t[k]), int(part.line[k]), before)
                    self.report.note_skipped(DUPLICATE, part.line[dup])
                    part = part.take(np.setdiff1d(np.arange(t.size), dup))
                    if part.time.size == 0:
                        continue
                last_t[code] = float(part.time[-1])
                last_line[code] = part.last_line()
                self.report.kept += int(part.time.size)
                yield self.devices[code], part.samples()
        self._finish_report(sorted(last_t))

    def sorted_straps(self) -> Iterator[tuple[str, Samples]]:
        """Every strap whole and sorted, whatever the row order (spills to a temporary folder)."""
        self._restart()
        with tempfile.TemporaryDirectory(prefix="kmc-samples-") as tmp:
            files: dict[int, Any] = {}
            try:
                for batch in _prefetch(self._batches()):
                    for code, part in self._by_strap(batch):
                        if code not in files:
                            files[code] = open(os.path.join(tmp, f"{code}.bin"), "ab")  # noqa: SIM115
                        files[code].write(_to_rows(part).tobytes())
            finally:
                for fh in files.values():
                    fh.close()
            straps = [(c, os.path.join(tmp, f"{c}.bin")) for c in sorted(files)]
            settled = [(c, self._settle(c, np.fromfile(p, dtype=SPILL_DTYPE))) for c, p in straps]
            self._finish_report([c for c, rows in settled if rows is not None and rows.size])
            for code, rows in settled:
                if rows is None or rows.size == 0:
                    continue
                yield (
                    self.devices[code],
                    Samples(
                        rows["time"],
                        rows["infant_c"],
                        rows["outer_c"],
                        rows["contact"],
                        rows["worn"],
                        rows["battery_v"] if self.has_battery else None,
                    ),
                )

    # -- shared steps

    def _restart(self) -> None:
        self.report = LoadReport(str(self.path))

    def _finish_report(self, codes: list[int]) -> None:
        if not codes:
            raise SamplesFileError(self.path, None, "no valid samples in file")
        self.report.straps = [self.devices[c] for c in codes]

    def _duplicate(self, code: int, t: float, line: int, before: int) -> SamplesFileError:
        return SamplesFileError(
            self.path,
            line,
            f"{DUPLICATE}: strap {self.devices[code]} at time {t!r} is already on line {before}",
        )

    def _settle(self, code: int, rows: NDArray[Any]) -> NDArray[Any] | None:
        """Sort one strap's rows into time order (stated in the report) and settle duplicates."""
        back = np.diff(rows["time"]) < 0
        if back.any():
            rows = rows[np.lexsort((rows["line"], rows["time"]))]
            self.report.repairs.append(
                f"strap {self.devices[code]}: {int(back.sum())} rows out of time order, sorted by time"
            )
        dup = np.flatnonzero(np.diff(rows["time"]) == 0) + 1
        if dup.size:
            if not self.skip_invalid:
                k = int(dup[0])
                raise self._duplicate(
                    code, float(rows["time"][k]), int(rows["line"][k]), int(rows["line"][k - 1])
                )
            self.report.note_skipped(DUPLICATE, np.sort(rows["line"][dup]))
            rows = np.delete(rows, dup)
        self.report.kept += int(rows.size)
        return rows

    @staticmethod
    def _by_strap(batch: _Batch) -> Iterator[tuple[int, _Batch]]:
        """Split a batch by strap, keeping each strap's rows in file order: slices where each
        strap's rows come in one run (files written strap by strap), else gathered copies."""
        d = batch.device
        if d.size == 0:
            return
        starts = np.flatnonzero(d[1:] != d[:-1]) + 1
        if starts.size == 0:
            yield int(d[0]), batch
            return
        first = np.concatenate(([0], starts))
        if np.unique(d[first]).size == first.size:
            ends = np.concatenate((starts, [d.size]))
            for a, b in zip(first.tolist(), ends.tolist(), strict=True):
                yield int(d[a]), batch.slice(a, b)
            return
        order = np.argsort(d, kind="stable")
        cuts = np.flatnonzero(np.diff(d[order])) + 1
        for idx in np.split(order, cuts):
            yield int(d[idx[0]]), batch.take(idx)

    # -- reading and checking

    def _batches(self) -> Iterator[_Batch]:
        """Validated batches of the whole file (runs in the prefetch thread)."""
        if not self.path.exists():
            raise SamplesFileError(self.path, None, "file not found")
        name = self.path.name.lower()
        if name.endswith((".parquet", ".pq")):
            raw, line_of = self._parquet_batches()
        elif name.endswith((".csv", ".csv.gz")) and self.typed:
            yield from self._typed_csv_checked()
            return
        elif name.endswith((".csv", ".csv.gz")):
            raw, line_of = self._csv_batches()
        else:
            raise SamplesFileError(
                self.path, None, "unknown file type (expected .csv, .csv.gz or .parquet)"
            )
        first_row = 0
        for b in _prefetch(raw):  # the next batch is read while this one is checked
            yield self._kept(self._checked(b, first_row, line_of))
            first_row += b.num_rows
        self.report.rows = first_row

    def _typed_csv_checked(self) -> Iterator[_Batch]:
        """The typed CSV parse's batches, checked piece by piece. A piece with anything wrong
        (a value its conversion refused, a bad value the checks found) is parsed again the
        checking way, from its own text, when bad rows are skipped: the same rows, counts and
        line numbers as the checking parse gives, without reading the file twice. When they
        are not skipped, NotTyped: the checking parse reads the file and names the first."""
        names, pieces = self._csv_typed_pieces()
        first_row = 0
        for typed, text in _prefetch(pieces):  # the next piece is parsed while this is checked
            checked: list[_Batch] | None = None
            if typed is not None:
                try:
                    checked = []
                    row = first_row
                    for b in typed:
                        checked.append(self._checked(b, row, _csv_line, typed=True))
                        row += b.num_rows
                except _Unclean:
                    checked = None
            if checked is None:
                if not self.skip_invalid:
                    raise NotTyped(f"{self.path}: the checking parse names what is wrong")
                checked = []
                row = first_row
                for b in self._csv_piece_as_text(names, text):
                    checked.append(self._checked(b, row, _csv_line))
                    row += b.num_rows
            for b in checked:
                yield self._kept(b)
            first_row = row
        self.report.rows = first_row

    def _check_columns(self, names: list[str], line: int | None) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise SamplesFileError(self.path, line, f"missing column(s): {', '.join(missing)}")
        allowed = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
        unknown = [c for c in names if c not in allowed and not c.endswith(RAW_PAD_SUFFIX)]
        if unknown:
            raise SamplesFileError(
                self.path,
                line,
                f"unknown column(s): {', '.join(unknown)} "
                f"(allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}, *{RAW_PAD_SUFFIX})",
            )
        dup = [c for c, n in Counter(names).items() if n > 1]
        if dup:
            raise SamplesFileError(self.path, line, f"repeated column(s): {', '.join(dup)}")
        self.has_battery = "battery_v" in names

    def _open(self, mode: str) -> Any:
        """The file, gunzipped if it is a .gz one ("rt": as text, newlines left to csv)."""
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        return opener(self.path, mode, newline="") if "t" in mode else opener(self.path, mode)

    def _open_text(self) -> Any:
        return self._open("rt")

    def _not_utf8(self) -> SamplesFileError:
        """Error path only: the first line that is not UTF-8 text."""
        try:
            with self._open("rb") as fh:
                for k, raw in enumerate(fh, start=1):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        return SamplesFileError(
                            self.path, k, f"not UTF-8 text (byte {raw[exc.start]:#04x})"
                        )
        except (EOFError, OSError) as exc:  # a damaged gzip file
            return SamplesFileError(self.path, None, f"cannot be read: {exc}")
        return SamplesFileError(self.path, None, "not UTF-8 text")

    def _header(self) -> tuple[list[str], list[str] | None]:
        """The checked column names, and the first row of values (None: no rows)."""
        header: list[str] | None = None
        first: list[str] | None = None
        try:
            with self._open_text() as fh:
                rows = csv.reader(fh)
                header = next(rows, None)
                first = next(rows, None)
        except UnicodeDecodeError:
            raise self._not_utf8() from None
        except (EOFError, OSError) as exc:  # a damaged gzip file
            raise SamplesFileError(self.path, None, f"cannot be read: {exc}") from None
        except csv.Error as exc:
            if header is None:
                raise SamplesFileError(self.path, 1, f"malformed CSV header: {exc}") from None
            first = None  # the parse that checks names the line
        if not header:
            raise SamplesFileError(self.path, 1, "empty file: expected a header line")
        names = [h.strip() for h in header]
        self._check_columns(names, 1)
        return names, first

    def _csv_typed_pieces(
        self,
    ) -> tuple[list[str], Iterator[tuple[list[pa.RecordBatch] | None, memoryview]]]:
        """The fast way through a CSV file: arrow parses it straight into the types the checks
        work on (times as UTC timestamps, or numbers if the first row's is one; strap ids as
        a dictionary; the rest as floats; the columns no check reads are left unconverted).

        The file is cut after a line end every CSV_TYPED_PIECE_BYTES, and each piece is parsed
        by arrow's multithreaded reader in CSV_TYPED_BLOCK_BYTES blocks, so the parse runs on
        every core (arrow's streaming reader parses on one). Yields each piece's batches (None
        where arrow's conversion refused a value) and its text. Arrow's conversions take what
        the checking parse takes, to the same values. NotTyped for what only the checking parse
        reads as it should: a cut inside a quoted field (an odd number of quotes in a piece),
        text that is not UTF-8 (in any column, read or not), line ends other than LF or CRLF
        before the first LF, a line longer than CSV_TYPED_MAX_LINE_BYTES, a damaged gzip file,
        a malformed line (then the checking parse names it)."""
        names, first = self._header()
        time_type: pa.DataType = pa.timestamp("us", tz="UTC")
        if first is not None and len(first) == len(names):
            try:
                float(first[names.index("time")])
                time_type = pa.float64()
            except ValueError:
                pass
        used = [n for n in names if n in REQUIRED_COLUMNS or n == "battery_v"]
        types = {n: pa.float64() for n in used}
        types["device"] = pa.dictionary(pa.int32(), pa.string())
        types["time"] = time_type
        read = pacsv.ReadOptions(
            column_names=names, use_threads=True, block_size=CSV_TYPED_BLOCK_BYTES
        )
        convert = pacsv.ConvertOptions(
            column_types=types,
            include_columns=used,  # the others are not converted (their UTF-8 is checked)
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )

        def pieces() -> Iterator[memoryview]:
            """The text after the header, cut after a line end every CSV_TYPED_PIECE_BYTES
            (read into the piece's own buffer: no copy of the text but the last line's)."""
            with self._open("rb") as fh:
                header = fh.readline(CSV_TYPED_MAX_LINE_BYTES)
                if not header.endswith(b"\n") or b"\r" in header[:-2]:
                    raise NotTyped(f"{self.path}: line ends other than LF or CRLF")
                rest = b""
                while True:
                    buf = bytearray(len(rest) + CSV_TYPED_PIECE_BYTES)
                    buf[: len(rest)] = rest
                    end = len(rest) + fh.readinto(memoryview(buf)[len(rest) :])
                    if end == len(rest):  # the end of the file
                        if rest:
                            yield memoryview(buf)[:end]
                        return
                    cut = buf.rfind(b"\n", 0, end) + 1
                    if cut == 0:  # no line end yet: a line longer than a piece
                        if end > CSV_TYPED_MAX_LINE_BYTES:
                            raise NotTyped(f"{self.path}: a line longer than a samples line")
                        rest = bytes(buf[:end])
                        continue
                    rest = bytes(buf[cut:end])
                    yield memoryview(buf)[:cut]

        def parsed() -> Iterator[tuple[list[pa.RecordBatch] | None, memoryview]]:
            try:
                for text in pieces():
                    raw = np.frombuffer(text, np.uint8)
                    if np.count_nonzero(raw == ord('"')) % 2:
                        raise NotTyped(f"{self.path}: a quoted field holds a line break")
                    if (raw >= 0x80).any():  # not all ASCII: all UTF-8, unread columns too?
                        try:
                            codecs.decode(text, "utf-8")
                        except UnicodeDecodeError:
                            raise NotTyped(f"{self.path}: not UTF-8 text") from None
                    try:
                        table = pacsv.read_csv(
                            pa.BufferReader(pa.py_buffer(text)),
                            read_options=read,
                            parse_options=CSV_PARSE,
                            convert_options=convert,
                        )
                    except pa.ArrowInvalid:  # a value to convert the checking way, or worse
                        yield None, text
                        continue
                    yield table.to_batches(), text  # a batch a block, each parsed on a core
            except (OSError, EOFError, zlib.error):  # a damaged gzip file: the checking
                raise NotTyped(str(self.path)) from None  # parse says so in its words

        return names, parsed()

    def _csv_piece_as_text(self, names: list[str], text: memoryview) -> list[pa.RecordBatch]:
        """A piece of the typed parse, parsed again as the checking parse parses the whole file:
        every column as text (NotTyped if it is malformed: the checking parse names the line)."""
        try:
            table = pacsv.read_csv(
                pa.BufferReader(pa.py_buffer(text)),
                read_options=pacsv.ReadOptions(column_names=names),
                parse_options=CSV_PARSE,
                convert_options=_text_columns(names),
            )
        except pa.ArrowInvalid:
            raise NotTyped(str(self.path)) from None
        return table.combine_chunks().to_batches()

    def _csv_batches(self) -> tuple[Iterator[pa.RecordBatch], Callable[[int], int]]:
        """The checking way through a CSV file: every column as text, converted as the strict
        rules say, value by value where arrow's conversion refuses a batch."""
        names, _ = self._header()
        try:
            reader = pacsv.open_csv(
                self.path,
                read_options=pacsv.ReadOptions(
                    block_size=CSV_BLOCK_BYTES, column_names=names, skip_rows=1
                ),
                parse_options=CSV_PARSE,
                convert_options=_text_columns(names),
            )
        except pa.ArrowInvalid as exc:
            raise self._malformed(exc, len(names)) from None
        except OSError as exc:  # a damaged gzip file, a disk that fails
            raise SamplesFileError(self.path, None, f"cannot be read: {exc}") from None

        def blocks() -> Iterator[pa.RecordBatch]:
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as exc:
                    raise self._malformed(exc, len(names)) from None
                except OSError as exc:
                    raise SamplesFileError(self.path, None, f"cannot be read: {exc}") from None

        def batches() -> Iterator[pa.RecordBatch]:  # small blocks (arrow reads ahead), big batches
            pending: list[pa.RecordBatch] = []
            rows = 0
            for block in blocks():
                pending.append(block)
                rows += block.num_rows
                if rows >= CSV_BATCH_ROWS:
                    yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
                    pending, rows = [], 0
            if rows:
                yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]

        return batches(), _csv_line

    def _malformed(self, exc: Exception, width: int) -> SamplesFileError:
        """Error path only: name the first line whose field count differs from the header's."""
        try:
            with self._open_text() as fh:
                reader = csv.reader(fh)
                for row in reader:
                    if len(row) != width:
                        return SamplesFileError(
                            self.path,
                            reader.line_num,
                            f"malformed CSV: {len(row)} fields, header has {width}",
                        )
        except UnicodeDecodeError:
            return self._not_utf8()
        except csv.Error as err:
            return SamplesFileError(self.path, None, f"malformed CSV: {err}")
        except (EOFError, OSError) as err:  # a damaged gzip file
            return SamplesFileError(self.path, None, f"cannot be read: {err}")
        return SamplesFileError(self.path, None, f"malformed CSV: {exc}")

    def _parquet_batches(self) -> tuple[Iterator[pa.RecordBatch], Callable[[int], int]]:
        try:
            pf = pq.ParquetFile(self.path, read_dictionary=["device"])
        except (pa.ArrowInvalid, OSError) as exc:
            raise SamplesFileError(self.path, None, f"not a readable Parquet file: {exc}") from None
        self._check_columns(list(pf.schema_arrow.names), None)

        def batches() -> Iterator[pa.RecordBatch]:  # whole row groups: the fastest way through
            for i in range(pf.num_row_groups):
                yield from pf.read_row_group(i).to_batches(max_chunksize=BATCH_ROWS)

        return batches(), lambda row: row + 1  # row numbers, from 1

    def _device_codes(self, col: pa.Array) -> NDArray[np.int32]:
        """Strap codes for a device column; -1 where empty or missing."""
        if not pa.types.is_dictionary(col.type):
            if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
                col = pc.cast(col, pa.string())
            col = pc.dictionary_encode(col)
        names = pc.utf8_trim_whitespace(col.dictionary.cast(pa.string())).to_pylist()
        codes = np.empty(len(names) + 1, np.int32)
        for k, name in enumerate(names):
            if name:
                codes[k] = self._codes.setdefault(name, len(self._codes))
                if codes[k] == len(self.devices):
                    self.devices.append(name)
            else:
                codes[k] = -1
        codes[-1] = -1  # nulls
        if len(names) == 1 and not col.null_count:  # one strap in the batch: no gather
            return np.full(len(col), codes[0], np.int32)
        indices = col.indices.fill_null(len(names)) if col.null_count else col.indices
        return codes[_values(indices)]

    def _checked(
        self,
        b: pa.RecordBatch,
        first_row: int,
        line_of: Callable[[int], int],
        typed: bool = False,
    ) -> _Batch:
        """Convert a batch and check every value; strict: raise on the first bad row. A batch
        of the typed CSV parse with anything wrong raises _Unclean instead (see
        `_typed_csv_checked`)."""
        n = b.num_rows
        cols = {name: b.column(name) for name in b.schema.names}
        problems: list[tuple[str, Mask, Callable[[int], str]]] = []

        def text(name: str) -> Callable[[int], str]:
            return lambda i: f"{name} {cols[name][i].as_py()!r}"

        def empty(name: str) -> Callable[[int], str]:
            return lambda i: f"{name} is empty"

        def nulls(name: str) -> Mask:
            return _nulls(cols[name])

        device = self._device_codes(cols["device"])
        no_device = device < 0
        problems.append(
            (MISSING, no_device if no_device.any() else None, lambda i: "device is empty")
        )

        try:
            t, bad_t = _to_seconds(cols["time"])
        except ValueError as exc:
            raise SamplesFileError(self.path, line_of(first_row), str(exc)) from None
        problems.append((MISSING, nulls("time"), empty("time")))
        problems.append((BAD_TIME, bad_t, text("time")))
        with np.errstate(invalid="ignore"):
            early = t < EARLIEST_TIME  # NaN (empty, unparsable) compares False
        problems.append((EARLY_TIME, early if early.any() else None, text("time")))

        lo, hi = TEMPERATURE_RANGE_C
        temps = {}
        for name in ("infant_c", "outer_c"):
            v, bad = _to_float(cols[name])
            problems.append((BAD_NUMBER, bad, text(name)))
            with np.errstate(invalid="ignore"):
                outside = (v < lo) | (v > hi)
            problems.append((OUT_OF_RANGE, outside if outside.any() else None, text(name)))
            temps[name] = v
        flags = {}
        for name in ("contact", "worn"):
            flags[name], bad, null = _to_flag(cols[name])
            problems.append((MISSING, null, empty(name)))
            problems.append((BAD_FLAG, bad, text(name)))
        battery = None
        if self.has_battery:
            battery, bad = _to_float(cols["battery_v"])
            problems.append((BAD_NUMBER, bad, text("battery_v")))

        batch = _Batch(
            device,
            line_of(first_row),
            None,
            t,
            temps["infant_c"],
            temps["outer_c"],
            flags["contact"],
            flags["worn"],
            battery,
        )
        found = [
            (kind, mask, describe)
            for kind, mask, describe in problems
            if mask is not None and mask.any()
        ]
        if found and typed:
            raise _Unclean
        if found:
            bad_any = np.logical_or.reduce([mask for _, mask, _ in found])
            if not self.skip_invalid:
                i = int(np.flatnonzero(bad_any)[0])
                kind, _, describe = next(p for p in found if p[1][i])
                raise SamplesFileError(self.path, line_of(first_row + i), f"{kind}: {describe(i)}")
            line = batch.line
            seen = np.zeros(n, bool)
            for kind, mask, _ in found:  # each bad row counted once, under its first kind
                mine = mask & ~seen
                if mine.any():
                    self.report.note_skipped(kind, line[mine])
                seen |= mask
            batch = batch.take(~bad_any)
        return batch

    def _kept(self, batch: _Batch) -> _Batch:
        """A checked batch on its way out: its missing readings counted (once: a piece of the
        typed parse may be checked twice)."""
        self.report.missing_infant_c += int(np.isnan(batch.infant_c).sum())
        return batch


def _to_rows(b: _Batch) -> NDArray[Any]:
    rows = np.empty(b.time.size, SPILL_DTYPE)
    rows["time"], rows["infant_c"], rows["outer_c"] = b.time, b.infant_c, b.outer_c
    rows["battery_v"] = np.nan if b.battery_v is None else b.battery_v
    rows["line"], rows["contact"], rows["worn"] = b.line, b.contact, b.worn
    return rows


def load_straps(
    path: str | os.PathLike[str], *, skip_invalid: bool = False
) -> tuple[LoadReport, dict[str, Samples]]:
    """Every strap whole and in time order, whatever the row order (small files, notebooks)."""
    reader = SampleReader(path, skip_invalid=skip_invalid)
    straps = reader.consume(_gather)
    return reader.report, straps


def _gather(chunks: Iterator[tuple[str, Samples]]) -> dict[str, Samples]:
    parts: dict[str, list[Samples]] = {}
    for device, chunk in chunks:
        parts.setdefault(device, []).append(chunk)
    return {device: Samples.concat(ps) for device, ps in parts.items()}
