"""Small per-strap state files of the gateway (cursors, pinned addresses, silences): one JSON
object each, read with errors that name the file, replaced atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BadInput


def read_map(path: Path, convert: Callable[[Any], Any], what: str, advice: str) -> dict[str, Any]:
    """A strap id -> value JSON file (empty when absent); a corrupt one is a ValueError that
    names the file and what to do."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {str(k): convert(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise BadInput(f"{path}: {what} file is corrupt ({exc}); {advice}") from None


def write_map(path: Path, mapping: dict[str, Any]) -> None:
    """Replace the file atomically and durably: a crash or a power cut leaves the old or the
    new one, never half, and never an empty file (which would stop the gateway at its next
    start: "corrupt"). The new text is fsync'd before the rename, the folder after it: without
    the first, a file system may commit the rename before the data (ext4 in some mounts, XFS)."""
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        fh.write(json.dumps(mapping, sort_keys=True, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
