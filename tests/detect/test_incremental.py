"""The live gateway feeds chunks; the results must equal one pass over the whole recording."""

import numpy as np
import pytest

from conftest import T0, assert_same_results, detect_in_chunks, signal
from kmc_analysis.simulate import simulate_strap
from kmc_host.detect import (
    STATE_KMC,
    STATE_OFF,
    STATE_WORN,
    SampleOrderError,
    StrapDetector,
    detect,
)
from kmc_host.samples import Samples


def sim_samples(seed: int, days: float = 1.0) -> Samples:
    st = simulate_strap(np.random.default_rng(seed), seed, days, T0, 2)
    k = st.present
    return Samples.from_columns(
        st.time[k], st.infant_c[k], st.outer_c[k], st.contact[k], st.worn[k], st.battery_v[k]
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_chunks_equal_one_pass(seed):
    s = sim_samples(seed)
    whole = detect("S", s)
    assert sum(len(e) for e in whole.episodes.values()) + whole.session_start.size > 0
    rng = np.random.default_rng(100 + seed)
    # chunk sizes from single samples (live, one notification) to hours
    cuts = np.concatenate((rng.integers(1, len(s), 300), np.arange(5000, 5200)))
    assert_same_results(whole, detect_in_chunks(s, cuts))


def test_updates_report_each_final_result_once():
    s = sim_samples(7)
    whole = detect("S", s)
    det = StrapDetector("S")
    starts, kinds = [], []
    for a in range(0, len(s), 600):
        u = det.feed(s.slice(a, a + 600))
        starts += u.session_start.tolist()
        kinds += [e.kind for e in u.episodes for _ in range(len(e))]
    u = det.finish()
    starts += u.session_start.tolist()
    kinds += [e.kind for e in u.episodes for _ in range(len(e))]
    assert starts == whole.session_start.tolist()
    assert sorted(kinds) == sorted(k for k, e in whole.episodes.items() for _ in range(len(e)))


def test_live_view_state_open_session_and_active_alerts():
    s = signal(
        (600, 0, 1, 36.8),
        (1200, 1, 1, 36.9),
        (200, 0, 0, 30.0),
        (900, 0, 1, 36.8),
        (400, 0, 1, 35.9),
    )
    det = StrapDetector("S")
    det.feed(s.slice(0, 1500))
    assert det.state() == STATE_KMC
    assert det.open_session() == (T0 + 600, T0 + 1500)
    det.feed(s.slice(1500, 1900))
    assert det.state() == STATE_OFF
    assert det.active_alerts() == {}
    det.feed(s.slice(1900, 1960))
    assert "strap_off" in det.active_alerts()
    det.feed(s.slice(1960, 2900))
    assert det.state() == STATE_WORN and det.open_session() is None
    det.feed(s.slice(2900, 2959))
    assert "cold_stress" not in det.active_alerts()
    det.feed(s.slice(2959, 2961))
    active = det.active_alerts()
    assert set(active) == {"cold_stress", "moderate_hypothermia"}
    assert active["cold_stress"] == (T0 + 2900, 35.9)


def test_out_of_order_or_duplicate_samples_are_refused():
    s = signal((100, 0, 1, 36.8))
    det = StrapDetector("S")
    det.feed(s.slice(0, 50))
    with pytest.raises(SampleOrderError, match="strap S"):
        det.feed(s.slice(49, 60))


def test_samples_refuse_flags_other_than_0_1():
    with pytest.raises(ValueError, match="contact must hold 0/1"):
        Samples.from_columns([1.0, 2.0], [36.5, 36.5], [35.0, 35.0], [0, 2], [1, 1])


@pytest.mark.parametrize("chunk", [1, 7, 60, 10_000])
def test_an_episode_ends_live_when_the_rule_is_met_not_when_the_warm_run_closes(chunk):
    """Cold for 4 min, then warm for good: the end is final 60 s into the warm run, although
    that run never closes while the baby stays warm; the end is told once, finish() adds none."""
    s = signal((600, 0, 1, 36.8), (240, 0, 1, 35.6), (3000, 0, 1, 36.8))
    det = StrapDetector("S")
    told: list[tuple[str, float, float, float]] = []
    when: dict[str, int] = {}
    for a in range(0, len(s), chunk):
        u = det.feed(s.slice(a, a + chunk))
        for e in u.episodes:
            for k in range(len(e)):
                told.append((e.kind, float(e.start[k]), float(e.end[k]), float(e.extreme[k])))
                when.setdefault(e.kind, min(a + chunk, len(s)))
    assert [e for e in det.finish().episodes if len(e)] == []
    assert sorted(told) == [
        ("cold_stress", T0 + 600, T0 + 840, 35.6),
        ("moderate_hypothermia", T0 + 600, T0 + 840, 35.6),
    ]
    # known once 60 s of warm samples are in (within one chunk), not at the end of the recording
    assert all(900 <= n < 900 + chunk + 1 for n in when.values())
    whole = detect("S", s)
    cold = whole.episodes["cold_stress"]
    assert (cold.start.tolist(), cold.end.tolist()) == ([T0 + 600], [T0 + 840])
