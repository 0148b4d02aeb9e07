"""docs/alarms.md is the one table of alarm priorities: its rows are clinical.ALARMS and
clinical.SIGNALS, value for value, and the thresholds it names are the detector's defaults."""

from __future__ import annotations

import re
from pathlib import Path

from kmc_host.clinical import ALARMS, ALERT_KINDS, CHAIN, PRIORITIES, SIGNALS, WHO_BANDS
from kmc_host.detect import DetectorConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "alarms.md"


def rows(heading: str) -> list[list[str]]:
    """The body rows of the first table under `## heading`, cells stripped."""
    text = DOC.read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def test_the_documented_priorities_are_the_codes():
    table = rows("Priority of each alert kind")
    documented = [(k.strip("`"), p, t == "yes") for k, p, t, _ in table]
    assert documented == [(a.kind, a.priority, a.technical) for a in ALARMS]
    assert {a.kind for a in ALARMS} == {*ALERT_KINDS, *CHAIN}  # every kind has its priority


def test_the_documented_thresholds_are_the_detectors_defaults():
    said = {k.strip("`"): when for k, _, _, when in rows("Priority of each alert kind")}
    for band in WHO_BANDS:
        assert f"{band.direction} {band.threshold_c:.1f} C" in said[band.kind], band
    cfg = DetectorConfig()
    for band in cfg.thermal_bands:
        assert f"{band.persist_s:.0f} s" in said[band.kind], band
    assert f"{cfg.strap_off_s:.0f} s" in said["strap_off"]
    assert (
        f"{cfg.battery_band.threshold:.1f} V for {cfg.battery_band.persist_s:.0f} s"
        in said["battery_low"]
    )


def test_the_documented_signals_are_the_codes():
    table = rows("How each priority looks and sounds")
    assert [r[0] for r in table] == list(PRIORITIES) == [s.priority for s in SIGNALS]
    for (_, colour, flashing, on, burst, repeated), sig in zip(table, SIGNALS, strict=True):
        assert re.search(r"`(#[0-9a-f]{6})`", colour).group(1) == sig.colour
        if sig.flash_hz:
            assert flashing == f"{sig.flash_hz:.1f} Hz" and on == f"{sig.duty * 100:.0f} %"
        else:
            assert flashing == "steady" and on == ""
        assert burst.split("`")[1] == sig.pattern
        pulses = len(re.findall("x+", sig.pattern))
        assert f"({pulses} pulse" in burst
        assert repeated == (f"every {sig.repeat_s:.0f} s" if sig.repeat_s else "once")


def test_the_signals_keep_to_iec_60601_1_8():
    """High 1.4-2.8 Hz, medium 0.4-0.8 Hz, 20-60 % on, low steady; 10, 3, 1-2 pulses."""
    sig = {s.priority: s for s in SIGNALS}
    assert 1.4 <= sig["high"].flash_hz <= 2.8 and 0.4 <= sig["medium"].flash_hz <= 0.8
    assert all(0.2 <= sig[p].duty <= 0.6 for p in ("high", "medium"))
    assert sig["low"].flash_hz == 0
    counts = {p: len(re.findall("x+", s.pattern)) for p, s in sig.items()}
    assert counts["high"] == 10 and counts["medium"] == 3 and counts["low"] in (1, 2)
    assert 2.5 <= sig["high"].repeat_s <= 15 and 2.5 <= sig["medium"].repeat_s <= 30


def test_the_documented_chain_timings_are_the_codes():
    """The technical alarms of the chain fire after the times the page says."""
    from kmc_host.gateway.service import ADAPTER_DOWN_AFTER_S
    from kmc_host.ward.config import WardConfig
    from kmc_host.ward.model import BROKER_GRACE_S
    from kmc_host.ward.server import SERVICE_LOST_AFTER_S, STREAM_EVERY_S

    said = {k.strip("`"): when for k, _, _, when in rows("Priority of each alert kind")}
    assert (
        f"no snapshot from the ward service for {SERVICE_LOST_AFTER_S:.0f} s"
        in said["service_lost"]
    )
    assert f"the broker for {BROKER_GRACE_S:.0f} s" in said["broker_unreachable"]
    assert f"not scanned for {ADAPTER_DOWN_AFTER_S:.0f} s" in said["adapter_down"]
    silent = WardConfig.__dataclass_fields__["gateway_silent_after_s"].default
    assert f"`gateway_silent_after_min`, {silent / 60:.0f} min" in said["gateway_silent"]
    text = DOC.read_text()
    assert f"sends one at least every {STREAM_EVERY_S:.0f} s" in text
    pause = WardConfig.__dataclass_fields__["audio_pause_s"].default
    assert f"`audio_pause_min` (ward.toml, 0.5-5 min, {pause / 60:.0f} by default)" in text
