"""The roster: which infant wore which strap, birth time and birth weight.

`device,infant_id,birth_time,birth_weight_g[,admission_time,...]`; `admission_time` (optional)
gives `kmc report` the time from admission to first KMC; further columns (bed, ...) are ignored. Infant ids are pseudonyms: the roster is the only place they meet strap ids.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .samples_io import NOT_TEXT, SamplesFileError, parse_time_value

ROSTER_COLUMNS = ("device", "infant_id", "birth_time", "birth_weight_g")


@dataclass(frozen=True)
class Infant:
    device: str
    infant_id: str
    birth_time: float  # Unix seconds, UTC
    birth_weight_g: float
    admission_time: float | None = None  # Unix seconds, UTC; None when the roster has none


def load_roster(path: str | Path) -> dict[str, Infant]:
    """Roster rows by strap id; a bad row raises `SamplesFileError` naming its line."""
    path = Path(path)
    if not path.exists():
        raise SamplesFileError(path, None, "roster file not found")
    infants: dict[str, Infant] = {}
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            names = [n.strip() for n in (reader.fieldnames or [])]
            missing = [c for c in ROSTER_COLUMNS if c not in names]
            if missing:
                raise SamplesFileError(
                    path, 1, f"roster is missing column(s): {', '.join(missing)}"
                )
            reader.fieldnames = names
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise SamplesFileError(path, line, "more fields than the header has")
                device = (row["device"] or "").strip()
                infant_id = (row["infant_id"] or "").strip()
                if not device or not infant_id:
                    raise SamplesFileError(path, line, "device and infant_id must not be empty")
                if device in infants:
                    raise SamplesFileError(path, line, f"strap {device} is listed twice")
                try:
                    birth = parse_time_value((row["birth_time"] or "").strip())
                except ValueError:
                    raise SamplesFileError(
                        path,
                        line,
                        f"unparsable birth_time {row['birth_time']!r} (Unix seconds or ISO 8601 with offset)",
                    ) from None
                try:
                    weight = float(row["birth_weight_g"])
                except (TypeError, ValueError):
                    raise SamplesFileError(
                        path, line, f"unparsable birth_weight_g {row['birth_weight_g']!r}"
                    ) from None
                if not 300 <= weight <= 6000:
                    raise SamplesFileError(
                        path, line, f"birth_weight_g {weight:g} outside 300-6000 g"
                    )
                admitted = (row.get("admission_time") or "").strip()
                admission = None
                if admitted:
                    try:
                        admission = parse_time_value(admitted)
                    except ValueError:
                        raise SamplesFileError(
                            path, line, f"unparsable admission_time {admitted!r}"
                        ) from None
                    if admission < birth:
                        raise SamplesFileError(path, line, "admission_time is before birth_time")
                infants[device] = Infant(device, infant_id, birth, weight, admission)
    except UnicodeDecodeError:
        raise SamplesFileError(path, None, NOT_TEXT) from None
    return infants
