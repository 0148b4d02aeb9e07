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
    """Replace the file atomically: a crash leaves the old or the new one, never half."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(mapping, sort_keys=True, indent=1))
    os.replace(tmp, path)
