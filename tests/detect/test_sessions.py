"""Sessions on synthetic signals with known edges (DESIGN.md defaults)."""

import numpy as np
import pytest

from conftest import T0, drop_rows, signal
from kmc_host.detect import STATE_KMC, STATE_OFF, STATE_WORN, DetectorConfig, detect, sample_states
from kmc_host.detect.sessions import sessions_from_contact

COT = (0, 1, 36.8)
KMC = (1, 1, 36.9)


def sessions(s, cfg=None):
    r = detect("S1", s, cfg)
    return list(zip((r.session_start - T0).tolist(), (r.session_end - T0).tolist(), strict=True)), r


def test_one_session_edges_exact():
    got, r = sessions(signal((600, *COT), (3600, *KMC), (600, *COT)))
    assert got == [(600.0, 4200.0)]
    assert r.session_effective.tolist() == [True]


def test_nappy_change_of_five_minutes_is_bridged_and_counted():
    got, _ = sessions(signal((600, *COT), (1800, *KMC), (300, *COT), (1800, *KMC), (600, *COT)))
    assert got == [(600.0, 4500.0)]


def test_interruption_longer_than_five_minutes_splits():
    got, _ = sessions(signal((600, *COT), (1800, *KMC), (301, *COT), (1800, *KMC), (600, *COT)))
    assert got == [(600.0, 2400.0), (2701.0, 4501.0)]


def test_short_contact_is_noise_and_not_bridged():
    # 29 s of contact 2 min after a session is a glitch: it must not stretch the session
    got, _ = sessions(signal((600, *COT), (1800, *KMC), (120, *COT), (29, *KMC), (600, *COT)))
    assert got == [(600.0, 2400.0)]
    got, _ = sessions(signal((600, *COT), (1800, *KMC), (120, *COT), (30, *KMC), (600, *COT)))
    assert got == [(600.0, 2550.0)]


def test_handling_shorter_than_ten_minutes_is_not_kmc():
    got, _ = sessions(signal((600, *COT), (599, *KMC), (600, *COT)))
    assert got == []
    got, r = sessions(signal((600, *COT), (600, *KMC), (600, *COT)))
    assert got == [(600.0, 1200.0)]
    assert r.session_effective.tolist() == [False]


def test_brief_dropouts_inside_contact_are_closed_before_debounce():
    # flaky pad: 20 s contact, 5 s lift-off, repeated for 15 min: one session
    segs = [(20, *KMC), (5, *COT)] * 36
    got, _ = sessions(signal((600, *COT), *segs, (600, *COT)))
    assert len(got) == 1 and got[0][0] == 600.0


def test_contact_without_worn_is_not_kmc():
    got, _ = sessions(signal((600, *COT), (1800, 1, 0, 30.0), (600, *COT)))
    assert got == []


def test_missing_data_inside_session_is_bridged_up_to_five_minutes():
    s = signal((600, *COT), (3600, *KMC), (600, *COT))
    got, r = sessions(drop_rows(s, 2000, 2240))  # 4 min gap inside
    assert got == [(600.0, 4200.0)]
    got, _ = sessions(drop_rows(s, 2000, 2400))  # 6 min 40 s gap: two sessions
    assert got == [(600.0, 2000.0), (2400.0, 4200.0)]


def test_thresholds_are_configuration():
    cfg = DetectorConfig(bridge_s=60.0, min_session_s=300.0)
    got, _ = sessions(signal((600, *COT), (400, *KMC), (120, *COT), (400, *KMC), (600, *COT)), cfg)
    assert got == [(600.0, 1000.0), (1120.0, 1520.0)]


def test_sample_states():
    s = signal((600, *COT), (1800, *KMC), (200, 0, 0, 30.0), (600, *COT))
    r = detect("S1", s)
    st = sample_states(s, r)
    assert st[0] == STATE_WORN and st[700] == STATE_KMC and st[2500] == STATE_OFF
    assert (st == STATE_KMC).sum() == 1800


def test_pipeline_function_on_runs():
    cfg = DetectorConfig()
    s, e = sessions_from_contact(np.array([0.0, 700, 706]), np.array([690.0, 703, 800]), cfg)
    assert s.tolist() == [0.0] and e.tolist() == [800.0]


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_inputs(n):
    s = signal((n, *KMC)) if n else signal((1, *KMC)).slice(0, 0)
    r = detect("S1", s)
    assert r.session_start.size == 0
