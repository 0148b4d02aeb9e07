"""Reading samples files (CSV, CSV.gz, Parquet) into per-strap `Samples`, strictly.

Files of a ward-week reach tens of millions of rows, so the reader streams: it converts the file
batch by batch (pyarrow, vectorised), checks every value, and spills each strap's rows to its own
file in a temporary folder. Each strap is then sorted and checked for duplicates on its own. Peak
memory is a batch plus one strap, whatever the file size and row order.

Strict by default: the first bad value stops the load with `SamplesFileError`, naming the file,
the line and the problem. With `skip_invalid=True` bad rows are left out and counted by kind, with
their line numbers, in the `LoadReport`; nothing is ever dropped without being reported. Sorting
rows into time order is a harmless repair and is stated in the report.
"""

from __future__ import annotations

import csv
import gzip
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from kmc_host.samples import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TEMPERATURE_RANGE_C,
    Samples,
)

EARLIEST_TIME = 1420070400.0  # 2015-01-01T00:00:00Z: earlier means a strap clock never set
BATCH_ROWS = 1 << 16
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


class SamplesFileError(Exception):
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

    def note_skipped(self, kind: str, lines: NDArray[np.int64]) -> None:
        self.skipped[kind] += int(lines.size)
        listed = self.skipped_lines.setdefault(kind, [])
        listed.extend(int(x) for x in lines[: max(0, MAX_LINES_LISTED - len(listed))])

    def lines(self) -> list[str]:
        """Human summary of the load."""
        out = [f"{self.path}: {self.rows} rows, {self.kept} samples kept, {len(self.straps)} straps"]
        for kind, n in sorted(self.skipped.items()):
            shown = ", ".join(str(x) for x in self.skipped_lines.get(kind, []))
            more = " ..." if n > MAX_LINES_LISTED else ""
            out.append(f"  skipped {n} rows: {kind} (lines {shown}{more})")
        out += [f"  repaired: {r}" for r in self.repairs]
        if self.missing_infant_c:
            out.append(f"  {self.missing_infant_c} samples without infant_c (sensor invalid)")
        return out


# ---- value conversion, one batch at a time -------------------------------------------------


def _slow_parse(strings: pa.Array, parse: Callable[[str], float]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per-value parse to locate the bad ones; used only when a batch fails the fast path."""
    values = np.full(len(strings), np.nan)
    bad = np.zeros(len(strings), bool)
    for i, s in enumerate(strings.to_pylist()):
        if s is None:
            continue
        try:
            values[i] = parse(s)
        except (ValueError, OverflowError):
            bad[i] = True
    return values, bad


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


def _to_seconds(col: pa.Array) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Unix seconds from numbers, timestamps or strings; (values, unparsable mask)."""
    if pa.types.is_timestamp(col.type):
        if col.type.tz is None:
            raise ValueError("time column holds timestamps without a UTC offset")
        us = pc.cast(col, pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return us.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6, np.zeros(len(col), bool)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return _numeric(col), np.zeros(len(col), bool)
    try:
        return _numeric(pc.cast(col, pa.float64())), np.zeros(len(col), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        us = pc.cast(pc.utf8_trim_whitespace(col), pa.timestamp("us", tz="UTC")).cast(pa.int64())
        return us.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6, np.zeros(len(col), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _slow_parse(col, parse_time_value)


def _numeric(col: pa.Array) -> NDArray[np.float64]:
    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _to_float(col: pa.Array) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Floats (nulls as NaN) and a mask of unparsable values."""
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    try:
        return _numeric(col), np.zeros(len(col), bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _slow_parse(col, float)


@dataclass
class _Batch:
    """One converted batch: numpy columns plus a problem kind per bad row."""

    device: NDArray[np.int32]
    rows: NDArray[Any]
    problems: list[tuple[str, NDArray[np.bool_], Callable[[int], str]]]


# ---- the loader --------------------------------------------------------------------------


class SamplesFile:
    """A samples file loaded into per-strap spill files; use as a context manager.

    with SamplesFile(path) as f:
        print("\\n".join(f.report.lines()))
        for device, samples in f.straps():
            ...
    """

    def __init__(self, path: str | os.PathLike[str], *, skip_invalid: bool = False) -> None:
        self.path = Path(path)
        self.skip_invalid = skip_invalid
        self.report = LoadReport(str(path))
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._devices: dict[str, int] = {}
        self._spills: list[IO[bytes]] = []
        self.has_battery = False

    def __enter__(self) -> SamplesFile:
        self._tmp = tempfile.TemporaryDirectory(prefix="kmc-samples-")
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for f in self._spills:
            f.close()
        self._spills = []
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def straps(self) -> Iterator[tuple[str, Samples]]:
        """Each strap's samples in time order, one strap in memory at a time."""
        for device, code in self._devices.items():
            rows = np.fromfile(self._spill_path(code), dtype=SPILL_DTYPE)
            yield device, Samples(
                rows["time"],
                rows["infant_c"],
                rows["outer_c"],
                rows["contact"],
                rows["worn"],
                rows["battery_v"] if self.has_battery else None,
            )

    # -- reading

    def _load(self) -> None:
        if not self.path.exists():
            raise SamplesFileError(self.path, None, "file not found")
        name = self.path.name.lower()
        if name.endswith(".parquet") or name.endswith(".pq"):
            batches, line_of = self._parquet_batches()
        elif name.endswith(".csv") or name.endswith(".csv.gz"):
            batches, line_of = self._csv_batches()
        else:
            raise SamplesFileError(self.path, None, "unknown file type (expected .csv, .csv.gz or .parquet)")
        first_row = 0
        for batch in batches:
            self._take_batch(batch, first_row, line_of)
            first_row += batch.num_rows
        self.report.rows = first_row
        for f in self._spills:
            f.close()
        self._spills = []
        if not self._devices:
            raise SamplesFileError(self.path, None, "no samples in file")
        for device, code in list(self._devices.items()):
            if not self._finish_strap(device, code):
                del self._devices[device]  # every row of this strap was skipped (and reported)
        if not self._devices:
            raise SamplesFileError(self.path, None, "no valid samples in file")
        self.report.straps = list(self._devices)

    def _check_columns(self, names: list[str], line: int | None) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise SamplesFileError(self.path, line, f"missing column(s): {', '.join(missing)}")
        allowed = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
        unknown = [c for c in names if c not in allowed]
        if unknown:
            raise SamplesFileError(
                self.path,
                line,
                f"unknown column(s): {', '.join(unknown)} "
                f"(allowed: {', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)})",
            )
        dup = [c for c, n in Counter(names).items() if n > 1]
        if dup:
            raise SamplesFileError(self.path, line, f"repeated column(s): {', '.join(dup)}")
        self.has_battery = "battery_v" in names

    def _csv_batches(self) -> tuple[Iterator[pa.RecordBatch], Callable[[int], int]]:
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        with opener(self.path, "rt", newline="") as fh:  # type: ignore[operator]
            header = next(csv.reader(fh), None)
        if not header:
            raise SamplesFileError(self.path, 1, "empty file: expected a header line")
        names = [h.strip() for h in header]
        self._check_columns(names, 1)
        reader = pacsv.open_csv(
            self.path,
            read_options=pacsv.ReadOptions(block_size=4 << 20, column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

        def batches() -> Iterator[pa.RecordBatch]:
            while True:
                try:
                    yield reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as exc:
                    line = self._find_bad_csv_line(len(names))
                    raise SamplesFileError(self.path, line, f"malformed CSV: {exc}") from None

        return batches(), lambda row: row + 2  # header is line 1

    def _find_bad_csv_line(self, width: int) -> int | None:
        """Error path only: the first line whose field count differs from the header's."""
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        with opener(self.path, "rt", newline="") as fh:  # type: ignore[operator]
            reader = csv.reader(fh)
            for row in reader:
                if len(row) != width:
                    return reader.line_num
        return None

    def _parquet_batches(self) -> tuple[Iterator[pa.RecordBatch], Callable[[int], int]]:
        try:
            pf = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SamplesFileError(self.path, None, f"not a readable Parquet file: {exc}") from None
        self._check_columns(list(pf.schema_arrow.names), None)
        return pf.iter_batches(batch_size=BATCH_ROWS), lambda row: row + 1  # row numbers

    def _convert(self, b: pa.RecordBatch, first_row: int, line_of: Callable[[int], int]) -> _Batch:
        n = b.num_rows
        cols = {name: b.column(name) for name in b.schema.names}
        problems: list[tuple[str, NDArray[np.bool_], Callable[[int], str]]] = []

        def text(name: str) -> Callable[[int], str]:
            return lambda i: f"{name} {cols[name][i].as_py()!r}"

        # device
        dev = cols["device"]
        if not pa.types.is_string(dev.type) and not pa.types.is_large_string(dev.type):
            dev = pc.cast(dev, pa.string())
        dev_null = dev.is_null().to_numpy(zero_copy_only=False)
        enc = pc.dictionary_encode(pc.utf8_trim_whitespace(dev.fill_null("")))
        codes = np.empty(len(enc.dictionary), np.int32)
        for k, name in enumerate(enc.dictionary.to_pylist()):
            codes[k] = self._devices.setdefault(name, len(self._devices)) if name else -1
        device = codes[enc.indices.to_numpy(zero_copy_only=False)]
        problems.append((MISSING, dev_null | (device < 0), lambda i: "device is empty"))

        try:
            t, bad_t = _to_seconds(cols["time"])
        except ValueError as exc:
            raise SamplesFileError(self.path, line_of(first_row), str(exc)) from None
        t_null = cols["time"].is_null().to_numpy(zero_copy_only=False)
        problems.append((MISSING, t_null, lambda i: "time is empty"))
        problems.append((BAD_TIME, bad_t, text("time")))
        with np.errstate(invalid="ignore"):
            problems.append((EARLY_TIME, ~bad_t & ~t_null & (t < EARLIEST_TIME), text("time")))

        rows = np.zeros(n, SPILL_DTYPE)
        rows["time"] = t
        rows["line"] = line_of(first_row) + np.arange(n)
        lo, hi = TEMPERATURE_RANGE_C
        for name in ("infant_c", "outer_c"):
            v, bad = _to_float(cols[name])
            problems.append((BAD_NUMBER, bad, text(name)))
            with np.errstate(invalid="ignore"):
                problems.append((OUT_OF_RANGE, (v < lo) | (v > hi), text(name)))
            rows[name] = v
        for name in ("contact", "worn"):
            v, bad = _to_float(cols[name])
            null = cols[name].is_null().to_numpy(zero_copy_only=False)
            problems.append((MISSING, null, lambda i, name=name: f"{name} is empty"))
            problems.append((BAD_FLAG, ~null & ~bad & (v != 0) & (v != 1), text(name)))
            problems.append((BAD_FLAG, bad, text(name)))
            rows[name] = np.where((v == 1), 1, 0)
        if self.has_battery:
            v, bad = _to_float(cols["battery_v"])
            problems.append((BAD_NUMBER, bad, text("battery_v")))
            rows["battery_v"] = v
        else:
            rows["battery_v"] = np.nan
        return _Batch(device, rows, problems)

    def _take_batch(self, b: pa.RecordBatch, first_row: int, line_of: Callable[[int], int]) -> None:
        batch = self._convert(b, first_row, line_of)
        bad_any = np.zeros(b.num_rows, bool)
        for _, mask, _ in batch.problems:
            bad_any |= mask
        if bad_any.any():
            if not self.skip_invalid:
                i = int(np.flatnonzero(bad_any)[0])
                kind, _, describe = next(p for p in batch.problems if p[1][i])
                raise SamplesFileError(self.path, line_of(first_row + i), f"{kind}: {describe(i)}")
            seen = np.zeros(b.num_rows, bool)
            for kind, mask, _ in batch.problems:  # each bad row counted once, under its first kind
                mine = mask & ~seen
                if mine.any():
                    self.report.note_skipped(kind, batch.rows["line"][mine])
                seen |= mask
            keep = ~bad_any
            batch.rows, batch.device = batch.rows[keep], batch.device[keep]
        self.report.missing_infant_c += int(np.isnan(batch.rows["infant_c"]).sum())
        self._spill(batch.device, batch.rows)

    def _spill_path(self, code: int) -> str:
        assert self._tmp is not None
        return os.path.join(self._tmp.name, f"{code}.bin")

    def _spill(self, device: NDArray[np.int32], rows: NDArray[Any]) -> None:
        if rows.size == 0:
            return
        while len(self._spills) < len(self._devices):
            self._spills.append(open(self._spill_path(len(self._spills)), "ab"))  # noqa: SIM115
        order = np.argsort(device, kind="stable")
        dev_sorted = device[order]
        cuts = np.flatnonzero(np.diff(dev_sorted)) + 1
        for part in np.split(order, cuts):
            self._spills[int(device[part[0]])].write(rows[part].tobytes())

    def _finish_strap(self, device: str, code: int) -> int:
        """Sort one strap's rows into time order and settle duplicates; return rows kept."""
        path = self._spill_path(code)
        rows = np.fromfile(path, dtype=SPILL_DTYPE) if os.path.exists(path) else np.zeros(0, SPILL_DTYPE)
        changed = False
        back = np.diff(rows["time"]) < 0
        if back.any():
            rows = rows[np.lexsort((rows["line"], rows["time"]))]
            self.report.repairs.append(
                f"strap {device}: {int(back.sum())} rows out of time order, sorted by time"
            )
            changed = True
        dup = np.flatnonzero(np.diff(rows["time"]) == 0) + 1
        if dup.size:
            if not self.skip_invalid:
                first = int(dup[0])
                raise SamplesFileError(
                    self.path,
                    int(rows["line"][first]),
                    f"{DUPLICATE}: strap {device} at time {rows['time'][first]!r} "
                    f"is already on line {int(rows['line'][first - 1])}",
                )
            self.report.note_skipped(DUPLICATE, np.sort(rows["line"][dup]))
            rows = np.delete(rows, dup)
            changed = True
        if changed:
            rows.tofile(path)
        self.report.kept += int(rows.size)
        return int(rows.size)
