"""Configuration validation and the coverage indicators."""

import numpy as np
import pytest

from kmc_analysis.coverage import cohort_coverage, coverage_rows, infant_coverage
from kmc_host.detect import ConfigError, DetectorConfig


def test_defaults_are_those_of_the_design():
    cfg = DetectorConfig()
    assert (cfg.min_contact_s, cfg.bridge_s, cfg.min_session_s, cfg.effective_session_s) == (
        30,
        300,
        600,
        3600,
    )
    assert [(b.kind, b.threshold) for b in cfg.thermal_bands] == [
        ("cold_stress", 36.5),
        ("moderate_hypothermia", 36.0),
        ("severe_hypothermia", 32.0),
        ("hyperthermia", 37.5),
    ]
    assert cfg.settle_s == 300 and cfg.strap_off_s == 120 and cfg.axillary_offset_c == 0.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bridge_s": -1}, "bridge_s must be >= 0"),
        ({"min_session_s": 0}, "min_session_s must be > 0"),
        ({"dropout_s": 400}, "dropout_s must be <= bridge_s"),
        ({"axillary_offset_c": 3}, "axillary_offset_c"),
        ({"bridge": 300}, "unknown detector setting"),
        ({"bridge_s": "5 min"}, "must be a number"),
    ],
)
def test_bad_settings_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        DetectorConfig.from_mapping(values)


def test_from_mapping_applies_values():
    assert DetectorConfig.from_mapping({"bridge_s": 120}).bridge_s == 120.0


def test_infant_and_cohort_indicators():
    # days with less than 20 h of data do not count
    a = infant_coverage("I1", "S1", 1500, np.array([19.0, 21.0, 5.0]), np.array([24.0, 24.0, 6.0]))
    assert a.observed_days == 2 and a.mean_kmc_hours == 20.0
    assert a.days_meeting == {8.0: 2, 18.0: 2, 20.0: 1}
    assert a.reaches(18.0) and a.reaches(20.0)
    b = infant_coverage("I2", "S2", 1800, np.array([9.0, 7.0]), np.array([23.0, 22.0]))
    heavy = infant_coverage("I3", "S3", 2400, np.array([24.0]), np.array([24.0]))
    assert not heavy.eligible
    c = cohort_coverage([a, b, heavy])
    assert c.eligible_infants == 2 and c.infant_days == 4
    assert c.share_infants_reaching == {8.0: 1.0, 18.0: 0.5, 20.0: 0.5}
    assert c.share_days_meeting == {8.0: 0.75, 18.0: 0.5, 20.0: 0.25}
    header, rows = coverage_rows([a, b, heavy])
    assert rows[-1][0] == "cohort" and len(rows) == 4 and len(header) == len(rows[0])


def test_the_cohort_mean_is_over_the_infants_unrounded_means():
    # 1.000278, 1.000556, 1.000556 h: mean 1.000463 -> 1.000 (the mean of the rounded means,
    # 1.000, 1.001, 1.001, would be 1.001: what kmc report's cohort gave before it used this)
    day = np.array([24.0])
    infants = [
        infant_coverage(f"I{k}", f"S{k}", 1500, np.array([s / 3600]), day)
        for k, s in enumerate((3601, 3602, 3602))
    ]
    c = cohort_coverage(infants)
    assert c.mean_kmc_hours == pytest.approx(3601.6667 / 3600, abs=1e-7)
    assert (c.infants_reaching, c.days_meeting) == ({8.0: 0, 18.0: 0, 20.0: 0},) * 2
    header, rows = coverage_rows(infants)
    assert rows[-1][header.index("mean_kmc_hours")] == "1.000"
