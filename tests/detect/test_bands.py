"""Thermal and device alert episodes: persistence, hysteresis, nesting, settling."""

import numpy as np

from conftest import T0, assert_same_results, detect_in_chunks, random_cuts, signal
from kmc_host.detect import DetectorConfig, detect

OK = 36.8


def episodes(s, kind, cfg=None):
    r = detect("S1", s, cfg)
    e = r.episodes[kind]
    return list(
        zip(
            (e.start - T0).tolist(), (e.end - T0).tolist(), e.extreme.round(2).tolist(), strict=True
        )
    )


def cot(seconds, temp):
    return (seconds, 0, 1, temp)


def test_cold_stress_needs_sixty_seconds():
    assert episodes(signal(cot(900, OK), cot(59, 36.4), cot(600, OK)), "cold_stress") == []
    assert episodes(signal(cot(900, OK), cot(60, 36.4), cot(600, OK)), "cold_stress") == [
        (900.0, 960.0, 36.4)
    ]


def test_hysteresis_needs_point_one_above_threshold_to_leave():
    # 36.55 for 5 min does not end the episode: only >= 36.6 for 60 s does
    s = signal(
        cot(900, OK),
        cot(300, 36.3),
        cot(300, 36.55),
        cot(120, 36.2),
        cot(59, 36.6),
        cot(60, 36.45),
        cot(600, OK),
    )
    assert episodes(s, "cold_stress") == [(900.0, 900 + 300 + 300 + 120 + 59 + 60.0, 36.2)]


def test_nested_bands_each_get_their_own_row():
    s = signal(cot(900, OK), cot(300, 36.3), cot(600, 35.5), cot(300, 36.3), cot(600, OK))
    assert episodes(s, "cold_stress") == [(900.0, 2100.0, 35.5)]
    assert episodes(s, "moderate_hypothermia") == [(1200.0, 1800.0, 35.5)]
    assert episodes(s, "severe_hypothermia") == []


def test_severe_hypothermia_and_hyperthermia():
    s = signal(cot(900, OK), cot(120, 31.5), cot(900, OK), cot(120, 37.9), cot(600, OK))
    assert episodes(s, "severe_hypothermia") == [(900.0, 1020.0, 31.5)]
    assert episodes(s, "hyperthermia") == [(1920.0, 2040.0, 37.9)]


def test_no_thermal_alert_while_off_or_settling():
    # strap off (inner sensor in room air), back on and settling for 4 min below 36.5
    s = signal(cot(900, OK), (600, 0, 0, 28.0), cot(240, 35.9), cot(900, OK))
    assert episodes(s, "cold_stress") == []
    assert [(a, b) for a, b, _ in episodes(s, "strap_off")] == [(900.0, 1500.0)]
    # still cold after the 5 min settling: alert from the end of settling
    s = signal(cot(900, OK), (600, 0, 0, 28.0), cot(480, 35.9), cot(900, OK))
    assert episodes(s, "cold_stress") == [(1800.0, 1980.0, 35.9)]


def test_cold_from_the_first_sample_waits_for_settling():
    s = signal(cot(600, 36.0), cot(600, OK))
    assert episodes(s, "cold_stress") == [(300.0, 600.0, 36.0)]


def test_strap_removal_ends_an_episode():
    s = signal(cot(900, OK), cot(300, 36.0), (300, 0, 0, 30.0), cot(900, OK))
    assert episodes(s, "cold_stress") == [(900.0, 1200.0, 36.0)]


def test_strap_off_needs_two_minutes():
    s = signal(cot(900, OK), (119, 0, 0, 33.0), cot(900, OK))
    assert episodes(s, "strap_off") == []
    s = signal(cot(900, OK), (120, 0, 0, 33.0), cot(900, OK))
    got = episodes(s, "strap_off")
    assert [(a, b) for a, b, _ in got] == [(900.0, 1020.0)]


def test_axillary_offset_shifts_the_reading():
    s = signal(cot(900, OK), cot(300, 36.45), cot(600, OK))
    assert len(episodes(s, "cold_stress")) == 1
    assert episodes(s, "cold_stress", DetectorConfig(axillary_offset_c=0.1)) == []


def test_episode_open_at_end_of_recording_is_closed_at_last_sample():
    s = signal(cot(900, OK), cot(300, 36.1))
    assert episodes(s, "cold_stress") == [(900.0, 1200.0, 36.1)]


def test_battery_low_from_battery_column():
    s = signal(cot(900, OK), cot(900, OK))
    bat = np.where(np.arange(len(s)) < 1000, 3.9, 3.4)
    s2 = type(s)(s.time, s.infant_c, s.outer_c, s.contact, s.worn, bat)
    assert episodes(s2, "battery_low") == [(1000.0, 1800.0, 3.4)]


def test_brief_noise_back_over_the_threshold_does_not_restart_persistence():
    # 36.3 with a 3 s excursion to 36.55 every 20 s: still 60 s beyond -> one episode
    noisy = [cot(17, 36.3), cot(3, 36.55)] * 6
    s = signal(cot(900, OK), *noisy, cot(600, OK))
    assert episodes(s, "cold_stress") == [(900.0, 900.0 + 120, 36.3)]


def test_excursion_of_glitch_length_restarts_persistence():
    s = signal(cot(900, OK), cot(40, 36.3), cot(10, 36.55), cot(40, 36.3), cot(600, OK))
    assert episodes(s, "cold_stress") == []
    s = signal(cot(900, OK), cot(40, 36.3), cot(9, 36.55), cot(40, 36.3), cot(600, OK))
    assert episodes(s, "cold_stress") == [(900.0, 989.0, 36.3)]


def test_brief_dips_do_not_hold_an_episode_open():
    # warm again at 36.7 with a 2 s dip to 36.55 every 15 s: leaves at the start of the warm stretch
    back = [cot(13, 36.7), cot(2, 36.55)] * 8
    s = signal(cot(900, OK), cot(300, 36.2), *back, cot(600, OK))
    assert episodes(s, "cold_stress") == [(900.0, 1200.0, 36.2)]


def test_noise_never_changes_with_chunking():
    rng = np.random.default_rng(5)
    base = signal(cot(3 * 3600, OK))
    temp = 36.45 + 0.35 * np.sin(np.arange(len(base)) / 300) + rng.normal(0, 0.08, len(base))
    s = type(base)(base.time, np.round(temp, 2), base.outer_c, base.contact, base.worn, None)
    whole = detect("S1", s)
    assert len(whole.episodes["cold_stress"]) > 3
    for seed in range(5):
        assert_same_results(whole, detect_in_chunks(s, random_cuts(len(s), 400, seed), "S1"))


def reattached(tau_s, level_c, minutes=30, room_c=26.0):
    """15 min worn at 36.8, 10 min off in room air, then back on: a first-order sensor."""
    base = signal(cot(900, OK), (600, 0, 0, room_c), cot(minutes * 60, level_c))
    temp = base.infant_c.copy()
    k = np.arange(minutes * 60)
    temp[1500:] = level_c + (room_c - level_c) * np.exp(-k / tau_s)
    return type(base)(base.time, np.round(temp, 2), base.outer_c, base.contact, base.worn, None)


def test_a_slow_sensor_still_climbing_after_five_minutes_is_not_a_cold_baby():
    s = reattached(tau_s=150, level_c=36.8)  # at 5 min the reading is 36.0 and climbing
    assert s.infant_c[1500 + 300] < 36.5 and s.infant_c[1500 + 420] < 36.5
    assert episodes(s, "cold_stress") == [] and episodes(s, "moderate_hypothermia") == []


def test_a_cold_baby_is_alerted_once_the_reading_levels_off():
    s = reattached(tau_s=60, level_c=35.6)
    got = episodes(s, "cold_stress")
    assert len(got) == 1
    start = got[0][0] - 1500
    assert 300 <= start <= 420  # 5 min settling, then the plateau is reached


def test_settling_never_lasts_beyond_settle_max():
    s = reattached(tau_s=1500, level_c=36.8)  # climbs for half an hour
    got = episodes(s, "cold_stress")
    assert len(got) == 1 and got[0][0] - 1500 == 900  # judged from settle_max_s on


def test_settling_is_the_same_in_any_chunks():
    for tau, level in ((150, 36.8), (60, 35.6), (1500, 36.8)):
        s = reattached(tau, level)
        whole = detect("S1", s)
        for seed in range(4):
            assert_same_results(whole, detect_in_chunks(s, random_cuts(len(s), 120, seed), "S1"))


def test_a_data_gap_inside_a_cold_episode_keeps_it_one_episode():
    """docs/detector.md: a gap of at most bridge_s (300 s) with readings beyond the threshold
    on both sides does not end the episode (no second raise, one row); a longer gap, or one
    with the reading back in the margin after it, does. Live (in chunks) as offline."""
    from conftest import drop_rows

    whole = signal(cot(900, OK), cot(1200, 35.8), cot(900, OK))
    gapped = drop_rows(whole, 1400, 1580)  # 3 min missing, 35.8 C before and after
    assert episodes(gapped, "cold_stress") == [(900.0, 2100.0, 35.8)]
    assert episodes(gapped, "moderate_hypothermia") == [(900.0, 2100.0, 35.8)]
    assert episodes(drop_rows(whole, 1400, 1650), "cold_stress") == [(900.0, 2100.0, 35.8)]
    # 300 s missing: the strap may have been off (assume_removed_after_gap_s), it settles again
    assert len(episodes(drop_rows(whole, 1400, 1700), "cold_stress")) == 2
    for cuts in ([1399, 1580], [1580], [1200, 1581, 1590], random_cuts(len(gapped), 7, seed=3)):
        assert_same_results(detect("S1", gapped), detect_in_chunks(gapped, cuts, "S1"))
    # longer than bridge_s: two episodes (the second after the sensor settles again)
    long_gap = drop_rows(signal(cot(900, OK), cot(2400, 35.8), cot(900, OK)), 1400, 1710)
    assert [e[:2] for e in episodes(long_gap, "cold_stress")] == [(900.0, 1400.0), (2010.0, 3300.0)]
    # back in the hysteresis margin after the gap: the episode ended at the gap
    margin = signal(cot(900, OK), cot(500, 35.8), cot(180, 36.0), cot(100, 36.55), cot(600, 35.8))
    margin = drop_rows(margin, 1400, 1580)  # the gap swallows the 36.0 C, 36.55 C follows it
    assert [e[:2] for e in episodes(margin, "cold_stress")] == [(900.0, 1400.0), (1680.0, 2280.0)]


def test_gaps_placed_inside_the_simulators_cold_episodes_raise_nothing_twice():
    """The ward simulator's babies (kmc_analysis.simulate), with 2 minutes of data taken out
    of the middle of every cold episode where the readings on both sides are well below
    36.5 C: every episode is still one, with the same start, live and offline. Without the
    bridge each gap would split its episode in two (a second raise, a second alerts.csv row)."""
    from kmc_analysis.simulate import simulate_strap
    from kmc_host.samples import Samples

    gaps = 0
    for index in range(12):
        st = simulate_strap(np.random.default_rng(100 + index), index, 2.0, T0, 2)
        keep = st.present
        s = Samples.from_columns(
            (st.t0 + st.time[keep]).astype(float),
            st.infant_c[keep],
            st.outer_c[keep],
            st.contact[keep],
            st.worn[keep],
        )
        before = detect("S1", s).episodes["cold_stress"]
        drop = np.zeros(len(s), bool)
        for a, b in zip(before.start, before.end, strict=True):
            if b - a < 600:
                continue
            mid = int(np.searchsorted(s.time, (a + b) / 2))
            lo, hi = mid - 60, mid + 60
            contiguous = s.time[hi] - s.time[lo] == hi - lo
            if contiguous and s.infant_c[lo - 1] < 36.3 and s.infant_c[hi] < 36.3:
                drop[lo:hi] = True
                gaps += 1
        keep = ~drop
        gapped = Samples(
            s.time[keep], s.infant_c[keep], s.outer_c[keep], s.contact[keep], s.worn[keep], None
        )
        after = detect("S1", gapped)
        assert np.array_equal(after.episodes["cold_stress"].start, before.start), index
        assert len(after.episodes["cold_stress"]) == len(before)
        assert_same_results(
            after, detect_in_chunks(gapped, random_cuts(len(gapped), 9, index), "S1")
        )
    assert gaps >= 5  # the simulator's ward has cold spells to cut into
