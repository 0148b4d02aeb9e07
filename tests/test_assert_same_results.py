"""conftest.assert_same_results, which the chunked-feeding tests (tests/detect/) rely on, tells
apart two detector results that differ in any one field: off time, alert times, sample count,
an episode kind, as well as sessions and episodes' edges."""

from dataclasses import replace

import numpy as np
import pytest

from conftest import assert_same_results, signal
from kmc_host.detect import detect
from kmc_host.detect.bands import Episodes


def a_result():
    """Ten minutes of KMC, the strap off for five, back on and cold for half an hour."""
    s = signal((600, 1, 1, 36.8), (300, 0, 0, 30.0), (2400, 0, 1, 35.5))
    r = detect("S1", s)
    assert r.off_start.size == 1 and len(r.episodes["cold_stress"]) == 1
    return r


def shifted(a: np.ndarray) -> np.ndarray:
    return a + 1.0


def with_episode_field(r, kind: str, name: str):
    e = r.episodes[kind]
    return replace(
        r, episodes={**r.episodes, kind: replace(e, **{name: shifted(getattr(e, name))})}
    )


def test_identical_results_pass():
    assert_same_results(a_result(), a_result())


@pytest.mark.parametrize(
    "change",
    [
        lambda r: replace(r, off_start=shifted(r.off_start)),
        lambda r: replace(r, off_end=shifted(r.off_end)),
        lambda r: replace(r, samples=r.samples - 1),
        lambda r: replace(r, device="S2"),
        lambda r: replace(r, effective_session_s=r.effective_session_s + 1),
        lambda r: with_episode_field(r, "cold_stress", "alert_time"),
        lambda r: with_episode_field(r, "cold_stress", "start"),
        lambda r: with_episode_field(r, "cold_stress", "extreme"),
        lambda r: replace(r, episodes={**r.episodes, "new_kind": Episodes.empty("new_kind")}),
        lambda r: replace(r, session_end=shifted(r.session_end)),
    ],
    ids=[
        "off_start",
        "off_end",
        "samples",
        "device",
        "effective_session_s",
        "alert_time",
        "episode_start",
        "extreme",
        "extra_kind",
        "session_end",
    ],
)
def test_a_difference_in_any_field_fails(change):
    a = a_result()
    with pytest.raises(AssertionError):
        assert_same_results(a, change(a))
    with pytest.raises(AssertionError):
        assert_same_results(change(a), a)
