# Strap configuration, persisted in flash as JSON. Missing or corrupt -> defaults (the corrupt
# file is kept as .bad for diagnosis); unknown keys are ignored; bad values fall back one by one.
import json

PATH = "/kmc_config.json"

DEFAULTS = {
    "strap_id": "KMC-0000",
    "interval_ms": 1000,
    "alarm_below_c": 36.5,  # WHO cold stress: the alarm, at medium priority
    "alarm_high_below_c": 36.0,  # WHO moderate hypothermia: the alarm at high priority
    "alarm_hysteresis_c": 0.1,
    "alarm_after_s": 60,
    "settle_s": 300,
    "pad_on_ratio": 0.10,  # touched when the reading moves 10 % from the baseline
    "pad_off_ratio": 0.05,  # released when back within 5 %
    "pad_direction": -1,  # ESP32: touch lowers the reading (S2/S3: +1)
    "infant_offset_c": 0.0,  # TMP117 corrections from calibration against a reference
    "outer_offset_c": 0.0,
    "contact_baseline": 0,  # 0: calibrate at boot
    "worn_baseline": 0,
    "flush_every": 60,  # samples between flash writes (at most this many lost on a power cut)
    "max_segments": 36,  # flash segments of 3600 samples: 36 h at 1 Hz, 1.6 MB of littlefs
    "segment_samples": 3600,
    "watchdog_ms": 8000,
    "passkey": -1,  # 6 digits on the strap's label, for commissioning; -1: not set, no pairing
}

LIMITS = {
    "interval_ms": (250, 60000),
    "alarm_below_c": (30.0, 37.5),
    "alarm_high_below_c": (30.0, 37.5),
    "alarm_hysteresis_c": (0.0, 1.0),
    "alarm_after_s": (5, 600),
    "settle_s": (0, 1800),
    "pad_on_ratio": (0.01, 0.9),
    "pad_off_ratio": (0.0, 0.9),
    "pad_direction": (-1, 1),
    "infant_offset_c": (-1.0, 1.0),
    "outer_offset_c": (-1.0, 1.0),
    "contact_baseline": (0, 1000000),
    "worn_baseline": (0, 1000000),
    "flush_every": (1, 3600),
    "max_segments": (2, 1000),
    "segment_samples": (60, 86400),
    "watchdog_ms": (2000, 60000),
    "passkey": (0, 999999),
}


def valid_strap_id(value):
    """1-8 characters of A-Z, a-z, 0-9, '-' and '_' (fits the advertising name)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 8:
        return False
    for ch in value:
        if not (ch.isalpha() or ch.isdigit() or ch in "-_"):
            return False
    return True


def clean(raw, log=print):
    """Defaults overlaid with every valid value of `raw`; each rejected value is logged."""
    cfg = dict(DEFAULTS)
    if not isinstance(raw, dict):
        log("config: not a JSON object, using defaults")
        return cfg
    for key, value in raw.items():
        if key not in DEFAULTS:
            log("config: ignoring unknown key %s" % key)
            continue
        if key == "strap_id":
            if valid_strap_id(value):
                cfg[key] = value
            else:
                log("config: bad strap_id %r, using %s" % (value, DEFAULTS[key]))
            continue
        lo, hi = LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            log("config: bad %s %r, using %r" % (key, value, DEFAULTS[key]))
            continue
        cfg[key] = float(value) if isinstance(DEFAULTS[key], float) else int(value)
    # high priority is the colder one (both numbers by now: DEFAULTS types them for mypy as object)
    if cfg["alarm_high_below_c"] > cfg["alarm_below_c"]:  # type: ignore[operator]
        log(
            "config: alarm_high_below_c %r is above alarm_below_c %r, using %r"
            % (cfg["alarm_high_below_c"], cfg["alarm_below_c"], cfg["alarm_below_c"])
        )
        cfg["alarm_high_below_c"] = cfg["alarm_below_c"]
    return cfg


def load(path=PATH, log=print):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        log("config: %s missing, using defaults" % path)
        return dict(DEFAULTS)
    try:
        raw = json.loads(text)
    except ValueError:
        log("config: %s is corrupt, kept as %s.bad, using defaults" % (path, path))
        keep_bad(path, text)
        return dict(DEFAULTS)
    return clean(raw, log)


def keep_bad(path, text):
    """Keep a corrupt file's text as <path>.bad for diagnosis (best effort: flash may be full)."""
    try:
        with open(path + ".bad", "w") as f:
            f.write(text)
    except OSError:
        pass


def save(cfg, path=PATH):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(cfg))
    import os

    os.rename(tmp, path)  # atomic on littlefs: never a half-written config
