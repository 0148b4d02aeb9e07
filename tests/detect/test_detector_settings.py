"""DetectorConfig's settings as a ward writes them (`[detector]`, `[detector.thresholds_c]`) and as
an output names them (`describe`, `digest`)."""

from __future__ import annotations

import pytest

from kmc_host.clinical import COLD_STRESS, HYPERTHERMIA, MODERATE_HYPOTHERMIA, WHO_BANDS
from kmc_host.detect import ConfigError, DetectorConfig


def test_thresholds_move_by_kind_and_the_rest_keep_the_who_values():
    cfg = DetectorConfig.from_mapping({"thresholds_c": {COLD_STRESS: 36.4, HYPERTHERMIA: 37.8}})
    got = {b.kind: b.threshold for b in cfg.thermal_bands}
    want = {b.kind: b.threshold_c for b in WHO_BANDS} | {COLD_STRESS: 36.4, HYPERTHERMIA: 37.8}
    assert got == want
    assert cfg.threshold_c(COLD_STRESS) == 36.4 and cfg.threshold_c("strap_off") is None
    # persistence and hysteresis are the defaults' still
    assert [(b.persist_s, b.hysteresis) for b in cfg.thermal_bands] == [
        (b.persist_s, b.hysteresis) for b in DetectorConfig().thermal_bands
    ]


@pytest.mark.parametrize(
    ("thresholds", "said"),
    [
        ({COLD_STRESS: 35.5}, "must rise from severe hypothermia to hyperthermia"),
        ({MODERATE_HYPOTHERMIA: 36.5}, "must rise"),  # equal to cold stress
        ({COLD_STRESS: 29.0}, "thresholds_c.cold_stress must be within 30.0-40.0 C, got 29.0"),
        ({COLD_STRESS: True}, "thresholds_c.cold_stress must be a number"),
        ({"cold": 36.0}, "unknown kind(s) cold (known: cold_stress"),
        ([36.0], "must be a table of kind = degrees C"),
    ],
)
def test_bad_thresholds_are_refused_by_name(thresholds, said):
    with pytest.raises(ConfigError) as err:
        DetectorConfig.from_mapping({"thresholds_c": thresholds})
    assert said in str(err.value)


def test_the_digest_names_the_settings():
    default = DetectorConfig()
    assert default.digest() == DetectorConfig.from_mapping({}).digest()
    assert len(default.digest()) == 12 and int(default.digest(), 16) >= 0
    moved = {
        DetectorConfig.from_mapping({"bridge_s": 120}).digest(),
        DetectorConfig.from_mapping({"axillary_offset_c": 0.3}).digest(),
        DetectorConfig.from_mapping({"thresholds_c": {COLD_STRESS: 36.4}}).digest(),
        default.digest(),
    }
    assert len(moved) == 4  # every change shows
    described = DetectorConfig.from_mapping({"thresholds_c": {COLD_STRESS: 36.4}}).describe()
    assert described["thermal_bands"][COLD_STRESS]["threshold"] == 36.4
    assert described["battery_band"]["threshold"] == 3.5
    assert described["bridge_s"] == 300.0
