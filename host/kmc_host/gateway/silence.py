"""When each strap was last heard from, and its open `signal_lost` episode, kept on disk.

A gateway restarted while a strap is away (flat, out of range, not trusted any more) must still
raise `signal_lost` for it, and one that restarts during an open episode must keep it, not raise
a second one, and end it with the same start when the strap is back. Silences themselves are
timed on a monotonic clock by the gateway, from the later of its start and the last arrival.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jsonfile import read_map, write_map


def _entry(value: Any) -> tuple[float | None, float | None]:
    last, lost = value["last"], value["lost"]
    return (
        None if last is None else float(last),
        None if lost is None else float(lost),
    )


class SilenceBook:
    """strap id -> (last arrival, start of the open signal_lost episode or None); wall clock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, tuple[float | None, float | None]] = read_map(
            path, _entry, "strap silence", "move it away (silences are then timed from now)"
        )

    def get(self, strap: str) -> tuple[float | None, float | None]:
        return self._entries.get(strap, (None, None))

    def save(self, entries: dict[str, tuple[float | None, float | None]]) -> None:
        self._entries.update(entries)
        write_map(
            self.path,
            {k: {"last": last, "lost": lost} for k, (last, lost) in self._entries.items()},
        )
