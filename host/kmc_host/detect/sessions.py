"""KMC sessions from contact runs: debounce -> bridge -> minimum length.

Input: the runs where skin-to-skin evidence holds (contact == 1 and worn == 1).
1. close dropouts: lift-offs shorter than `dropout_s` inside contact are closed;
2. debounce: contact runs shorter than `min_contact_s` are noise and dropped;
3. bridge: interruptions (no contact, or missing data) up to `bridge_s` are counted in the session;
4. minimum length: sessions shorter than `min_session_s` are handling, not KMC.

`SessionTracker` runs the same steps incrementally. It keeps the contact runs since the last
interruption longer than `bridge_s`; no step merges across such an interruption, so everything
before it is final and the result equals one pass over the whole recording.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .config import DetectorConfig
from .intervals import drop_short, merge_close

F64 = NDArray[np.float64]


def sessions_from_contact(start: F64, end: F64, cfg: DetectorConfig) -> tuple[F64, F64]:
    """The four steps above, on sorted disjoint contact runs."""
    s, e = merge_close(start, end, cfg.dropout_s, inclusive=False)
    s, e = drop_short(s, e, cfg.min_contact_s)
    s, e = merge_close(s, e, cfg.bridge_s, inclusive=True)
    return drop_short(s, e, cfg.min_session_s)


class SessionTracker:
    """Incremental sessions: final ones are released once no later data can change them."""

    def __init__(self, cfg: DetectorConfig) -> None:
        self.cfg = cfg
        self._start: F64 = np.empty(0)
        self._end: F64 = np.empty(0)

    def push(self, start: F64, end: F64, next_possible_start: float) -> tuple[F64, F64]:
        """Add closed contact runs; return the sessions that became final.

        next_possible_start: the earliest time a later contact run could start (the start of
        the open contact run, or the end of the data seen so far).
        """
        s = np.concatenate((self._start, start))
        e = np.concatenate((self._end, end))
        if s.size == 0:
            return s, e
        nxt = np.concatenate((s[1:], [next_possible_start]))
        cut = np.flatnonzero(nxt - e > self.cfg.bridge_s)
        if cut.size == 0:
            self._start, self._end = s, e
            return np.empty(0), np.empty(0)
        k = int(cut[-1]) + 1
        self._start, self._end = s[k:], e[k:]
        return sessions_from_contact(s[:k], e[:k], self.cfg)

    def pending(
        self, open_start: float | None = None, open_end: float | None = None
    ) -> tuple[F64, F64]:
        """Provisional sessions from the runs not yet final (plus an open contact run if given)."""
        s, e = self._start, self._end
        if open_start is not None and open_end is not None:
            s = np.concatenate((s, [open_start]))
            e = np.concatenate((e, [open_end]))
        return sessions_from_contact(s, e, self.cfg)

    def finish(self) -> tuple[F64, F64]:
        """End of the recording: whatever is pending is final."""
        out = sessions_from_contact(self._start, self._end, self.cfg)
        self._start, self._end = np.empty(0), np.empty(0)
        return out
