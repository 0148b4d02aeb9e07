# Configuration in flash: defaults when missing or corrupt, value-by-value validation.
import json
import os

import config
from mptest import run, tmpdir

LOGS = []


def log(text):
    LOGS.append(text)


def test_missing_file_gives_defaults():
    cfg = config.load(tmpdir("cfg1") + "/none.json", log)
    assert cfg == config.DEFAULTS and "missing" in LOGS[-1]


def test_corrupt_file_gives_defaults_and_is_kept():
    path = tmpdir("cfg2") + "/c.json"
    with open(path, "w") as f:
        f.write('{"strap_id": "KMC-1", "interval_ms": 10')  # power cut mid-write
    cfg = config.load(path, log)
    assert cfg == config.DEFAULTS and "corrupt" in LOGS[-1]
    with open(path + ".bad") as f:
        assert f.read().startswith('{"strap_id"')


def test_bad_values_fall_back_one_by_one():
    raw = {
        "strap_id": "KMC 1!",
        "interval_ms": 5,
        "alarm_below_c": 36.2,
        "pad_direction": True,
        "colour": "red",
    }
    cfg = config.clean(raw, log)
    assert cfg["strap_id"] == config.DEFAULTS["strap_id"]
    assert cfg["interval_ms"] == 1000 and cfg["alarm_below_c"] == 36.2
    assert cfg["pad_direction"] == -1
    assert any("colour" in line for line in LOGS)


def test_the_high_priority_threshold_is_never_above_the_alarms():
    """alarm_high_below_c (high priority) is the colder of the two: one above alarm_below_c
    would sound high before the alarm itself; it is lowered to it, and said."""
    cfg = config.clean({"alarm_high_below_c": 37.0}, log)
    assert cfg["alarm_high_below_c"] == 36.5 and "above alarm_below_c" in LOGS[-1]
    cfg = config.clean({"alarm_below_c": 35.5}, log)
    assert cfg["alarm_high_below_c"] == 35.5
    cfg = config.clean({"alarm_high_below_c": 35.0}, log)
    assert cfg["alarm_high_below_c"] == 35.0 and cfg["alarm_below_c"] == 36.5


def test_not_an_object():
    assert config.clean([1, 2], log) == config.DEFAULTS


def test_save_and_load_round_trip():
    path = tmpdir("cfg3") + "/c.json"
    cfg = dict(config.DEFAULTS)
    cfg["strap_id"] = "KMC-0042"
    cfg["interval_ms"] = 2000
    config.save(cfg, path)
    assert config.load(path, log) == cfg
    assert "c.json.tmp" not in os.listdir(tmpdir_path(path))
    with open(path) as f:
        assert json.loads(f.read())["strap_id"] == "KMC-0042"


def tmpdir_path(path):
    return path[: path.rfind("/")]


def test_strap_ids():
    assert config.valid_strap_id("KMC-0042") and config.valid_strap_id("b3_a")
    assert not config.valid_strap_id("") and not config.valid_strap_id("123456789")
    assert not config.valid_strap_id("a/b") and not config.valid_strap_id(42)


run(globals())
