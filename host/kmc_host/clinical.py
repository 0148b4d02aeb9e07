"""The clinical vocabulary: the alert kinds, the order they are shown in, and the WHO bands.

Every stage names an alert by one of these strings: the detector raises it, the gateway
publishes it (docs/mqtt.md), the sink stores it, the ward screen shows it, the report counts it.
They are defined here once; a module that needs one imports it instead of spelling it.

- Thermal kinds, on the infant's skin temperature (WHO, ../shared/DESIGN.md "Detection"):
  `COLD_STRESS`, `MODERATE_HYPOTHERMIA`, `SEVERE_HYPOTHERMIA`, `HYPERTHERMIA`, with their default
  thresholds in `WHO_BANDS` (the detector's `who_thermal_bands` builds its bands from them).
- Device kinds: `STRAP_OFF` (detector), `BATTERY_LOW` (detector), `SIGNAL_LOST` (gateway).
- `THERMAL` is the report's column order (mildest first); `COLD` its cold subset.
- `SEVERITY_ORDER` is the ward screen's: the most urgent first, thermal before device.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = [
    "ALERT_KINDS",
    "BATTERY_LOW",
    "COLD",
    "COLD_STRESS",
    "DEVICE",
    "HYPERTHERMIA",
    "MODERATE_HYPOTHERMIA",
    "SEVERE_HYPOTHERMIA",
    "SEVERITY_ORDER",
    "SIGNAL_LOST",
    "STRAP_OFF",
    "THERMAL",
    "WHO_BANDS",
    "WhoBand",
]

COLD_STRESS = "cold_stress"
MODERATE_HYPOTHERMIA = "moderate_hypothermia"
SEVERE_HYPOTHERMIA = "severe_hypothermia"
HYPERTHERMIA = "hyperthermia"
STRAP_OFF = "strap_off"
BATTERY_LOW = "battery_low"
SIGNAL_LOST = "signal_lost"

COLD = (COLD_STRESS, MODERATE_HYPOTHERMIA, SEVERE_HYPOTHERMIA)
THERMAL = (*COLD, HYPERTHERMIA)
DEVICE = (SIGNAL_LOST, STRAP_OFF, BATTERY_LOW)
ALERT_KINDS = (*THERMAL, *DEVICE)
SEVERITY_ORDER = (SEVERE_HYPOTHERMIA, MODERATE_HYPOTHERMIA, HYPERTHERMIA, COLD_STRESS, *DEVICE)


class WhoBand(NamedTuple):
    """A WHO temperature band: `kind` once the skin temperature is beyond `threshold_c`."""

    kind: str
    threshold_c: float
    direction: Literal["below", "above"]


WHO_BANDS = (
    WhoBand(COLD_STRESS, 36.5, "below"),
    WhoBand(MODERATE_HYPOTHERMIA, 36.0, "below"),
    WhoBand(SEVERE_HYPOTHERMIA, 32.0, "below"),
    WhoBand(HYPERTHERMIA, 37.5, "above"),
)
