"""One strap's detector: samples in (any chunking), sessions and alert episodes out.

The live gateway feeds each notification batch as it arrives; `kmc analyze` feeds a whole
recording in one call. Both go through `StrapDetector.feed`, and the trackers it drives carry
their state between chunks, so the results are identical however the recording is cut.

Per chunk the work is a fixed number of numpy passes over the samples: the time line (coverage of
each sample, data gaps), sensor settling after the strap is put on, then one run pass per signal
(skin-to-skin evidence, worn, monitored time, each band). Rules then act on the short run lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ..clinical import STRAP_OFF
from ..errors import BadInput
from ..samples import Samples
from .bands import BandTracker, Episodes
from .config import DetectorConfig
from .intervals import contains, seconds_in_bins
from .runs import Runs, RunTracker
from .sessions import SessionTracker
from .settle import SettleTracker

F64 = NDArray[np.float64]

# Per-sample states (DESIGN.md: kmc / worn / off; gap is time with no sample at all).
STATE_GAP, STATE_OFF, STATE_WORN, STATE_KMC = 0, 1, 2, 3
STATE_NAMES = {STATE_GAP: "gap", STATE_OFF: "off", STATE_WORN: "worn", STATE_KMC: "kmc"}


class SampleOrderError(BadInput):
    """Samples reached the detector out of time order or duplicated."""


@dataclass
class Update:
    """What one `feed` made final: sessions and alert episodes that can no longer change."""

    session_start: F64 = field(default_factory=lambda: np.empty(0))
    session_end: F64 = field(default_factory=lambda: np.empty(0))
    episodes: list[Episodes] = field(default_factory=list)


@dataclass
class StrapResult:
    """Everything detected for one strap over a whole recording."""

    device: str
    session_start: F64
    session_end: F64
    episodes: dict[str, Episodes]
    monitored_start: F64
    monitored_end: F64
    off_start: F64
    off_end: F64
    samples: int
    effective_session_s: float

    @property
    def session_effective(self) -> NDArray[np.bool_]:
        return (self.session_end - self.session_start) >= self.effective_session_s


class StrapDetector:
    """Incremental detector for one strap (see module docstring)."""

    def __init__(self, device: str, cfg: DetectorConfig | None = None) -> None:
        self.device = device
        self.cfg = cfg = cfg or DetectorConfig()
        self._prev_t = np.nan
        self._prev_worn = False
        self._settle = SettleTracker(cfg)
        self._n = 0
        period = cfg.sample_period_s
        self._contact = RunTracker(period)
        self._sessions = SessionTracker(cfg)
        self._worn = RunTracker(period)
        self._monitored = RunTracker(period)
        # a thermal episode survives a data gap up to bridge_s with readings beyond on both sides
        self._bands = [BandTracker(b, period, cfg.bridge_s) for b in cfg.thermal_bands]
        self._battery = BandTracker(cfg.battery_band, period)
        self._kinds = [b.kind for b in cfg.thermal_bands] + [STRAP_OFF, cfg.battery_band.kind]
        # Final results, accumulated as lists of arrays.
        self._sess: list[tuple[F64, F64]] = []
        self._eps: dict[str, list[Episodes]] = {k: [] for k in self._kinds}
        self._mon: list[Runs] = []
        self._off: list[Runs] = []

    # ---- feeding -------------------------------------------------------------------------

    def feed(self, s: Samples) -> Update:
        """Add the next chunk of this strap's samples (strictly later than any before)."""
        if len(s) == 0:
            return Update()
        cfg = self.cfg
        t = s.time
        dt = np.empty_like(t)
        dt[0] = t[0] - self._prev_t
        np.subtract(t[1:], t[:-1], out=dt[1:])
        bad = np.flatnonzero(dt <= 0)
        if bad.size:
            i = int(bad[0])
            prev = self._prev_t if i == 0 else t[i - 1]
            raise SampleOrderError(
                f"strap {self.device}: sample time {t[i]!r} does not follow {prev!r} "
                "(duplicate or out of order)"
            )
        brk = ~(dt <= cfg.gap_s)  # NaN (first sample ever) is a break too
        worn = s.worn == 1

        update = Update()
        evidence = s.contact & s.worn  # 0/1 flags: skin-to-skin evidence
        runs = self._contact.push(t, brk, evidence)
        self._take_sessions(runs, self._next_contact_start(float(t[-1])), update)
        self._take_off(self._worn.push(t, brk, s.worn), update)
        self._keep(self._mon, self._monitored.push(t, brk, np.zeros(t.size, np.int8)))
        infant = s.infant_c + cfg.axillary_offset_c if cfg.axillary_offset_c else s.infant_c
        judge = worn & ~self._settle.push(t, dt, worn, infant) & np.isfinite(infant)
        for tracker in self._bands:
            self._take(tracker.push(t, brk, infant, judge), update)
        if s.battery_v is not None:
            self._take(self._battery.push(t, brk, s.battery_v, np.isfinite(s.battery_v)), update)
        else:
            self._take(self._battery.push_invalid(t, brk), update)

        self._prev_t = float(t[-1])
        self._prev_worn = bool(s.worn[-1] == 1)
        self._n += len(s)
        return update

    def finish(self) -> Update:
        """End of the recording: close every open run and episode."""
        update = Update()
        self._take_sessions(self._contact.close(), np.inf, update)
        self._take_off(self._worn.close(), update)
        self._keep(self._mon, self._monitored.close())
        for tracker in [*self._bands, self._battery]:
            self._take(tracker.finish(), update)
        return update

    def result(self) -> StrapResult:
        """All final results so far (call after `finish` for a complete recording)."""
        sess_s = np.concatenate([s for s, _ in self._sess]) if self._sess else np.empty(0)
        sess_e = np.concatenate([e for _, e in self._sess]) if self._sess else np.empty(0)
        mon = Runs.concat(self._mon)
        off = Runs.concat(self._off)
        return StrapResult(
            self.device,
            sess_s,
            sess_e,
            {k: Episodes.concat(k, v) for k, v in self._eps.items()},
            mon.start,
            mon.end,
            off.start,
            off.end,
            self._n,
            self.cfg.effective_session_s,
        )

    # ---- live view -----------------------------------------------------------------------

    @property
    def last_time(self) -> float:
        """Time of the latest sample fed (NaN before the first): the next must be later."""
        return self._prev_t

    def open_session(self) -> tuple[float, float] | None:
        """The session in progress (start, latest time), provisional until it ends."""
        run = self._contact.open
        if run is not None and run.cls == 1:
            s, e = self._sessions.pending(run.start, run.end)
        else:
            s, e = self._sessions.pending()
        if s.size and self._prev_t - e[-1] <= self.cfg.bridge_s:
            return float(s[-1]), float(e[-1])
        return None

    def hours_between(self, t0: float, t1: float) -> tuple[float, float]:
        """(KMC hours, monitored hours) in [t0, t1), counting the session and run in progress."""
        res = self.result()
        ks, ke = res.session_start, res.session_end
        session = self.open_session()
        if session is not None:
            ks, ke = np.append(ks, session[0]), np.append(ke, session[1])
        ms, me = res.monitored_start, res.monitored_end
        run = self._monitored.open
        if run is not None:
            ms, me = np.append(ms, run.start), np.append(me, run.end)
        edges = np.array([t0, t1])
        return float(seconds_in_bins(ks, ke, edges)[0]) / 3600, float(
            seconds_in_bins(ms, me, edges)[0]
        ) / 3600

    def state(self) -> int:
        """The strap's state at its latest sample (STATE_*).

        A strap that is off the baby is `off` even inside a bridged interruption; a worn strap
        inside a session that may still go on (a nappy change) is `kmc`.
        """
        if self._n == 0:
            return STATE_GAP
        if not self._prev_worn:
            return STATE_OFF
        return STATE_KMC if self.open_session() is not None else STATE_WORN

    def active_alerts(self) -> dict[str, tuple[float, float]]:
        """Alerts in progress: kind -> (start, extreme so far; NaN where not a temperature)."""
        out: dict[str, tuple[float, float]] = {}
        for tracker in [*self._bands, self._battery]:
            a = tracker.active()
            if a is not None:
                out[tracker.band.kind] = a
        run = self._worn.open
        if run is not None and run.cls == 0 and run.duration >= self.cfg.strap_off_s:
            out[STRAP_OFF] = (run.start, np.nan)
        return out

    # ---- helpers -------------------------------------------------------------------------

    def _next_contact_start(self, last_t: float) -> float:
        run = self._contact.open
        return run.start if run is not None and run.cls == 1 else last_t

    def _take_sessions(self, runs: Runs, next_start: float, update: Update) -> None:
        on = runs.cls == 1
        s, e = self._sessions.push(runs.start[on], runs.end[on], next_start)
        if s.size:
            self._sess.append((s, e))
            update.session_start, update.session_end = s, e

    def _take_off(self, runs: Runs, update: Update) -> None:
        off = runs.cls == 0
        start, end = runs.start[off], runs.end[off]
        self._keep(self._off, Runs(runs.cls[off], start, end, runs.extreme[off]))
        long = (end - start) >= self.cfg.strap_off_s
        if long.any():
            ep = Episodes(
                STRAP_OFF,
                start[long],
                end[long],
                np.full(int(long.sum()), np.nan),
                start[long] + self.cfg.strap_off_s,
            )
            self._take(ep, update)

    @staticmethod
    def _keep(history: list[Runs], runs: Runs, compact_at: int = 64) -> None:
        """History for result() and the live hours: only runs that closed, compacted now and
        then, so a gateway running for weeks holds a few arrays, not one object per batch."""
        if len(runs) == 0:
            return
        history.append(runs)
        if len(history) >= compact_at:
            history[:] = [Runs.concat(history)]

    def _take(self, ep: Episodes, update: Update) -> None:
        if len(ep):
            kept = self._eps[ep.kind]
            kept.append(ep)
            if len(kept) >= 64:
                kept[:] = [Episodes.concat(ep.kind, kept)]
            update.episodes.append(ep)


def detect(device: str, samples: Samples, cfg: DetectorConfig | None = None) -> StrapResult:
    """The whole recording of one strap in one pass (what `kmc analyze` does per strap)."""
    det = StrapDetector(device, cfg)
    det.feed(samples)
    det.finish()
    return det.result()


def sample_states(samples: Samples, result: StrapResult) -> NDArray[np.int8]:
    """Per-sample state: kmc inside a session, else worn or off by the worn flag."""
    in_session = contains(result.session_start, result.session_end, samples.time)
    states = np.where(samples.worn == 1, STATE_WORN, STATE_OFF).astype(np.int8)
    states[in_session] = STATE_KMC
    return states
