"""The clinical vocabulary: the alert kinds, the order they are shown in, and the WHO bands.

Every stage names an alert by one of these strings: the detector raises it, the gateway
publishes it (docs/mqtt.md), the sink stores it, the ward screen shows it, the report counts it.
They are defined here once; a module that needs one imports it instead of spelling it.

- Thermal kinds, on the infant's skin temperature (WHO, ../shared/DESIGN.md "Detection"):
  `COLD_STRESS`, `MODERATE_HYPOTHERMIA`, `SEVERE_HYPOTHERMIA`, `HYPERTHERMIA`, with their default
  thresholds in `WHO_BANDS` (the detector's `who_thermal_bands` builds its bands from them).
- Device kinds: `STRAP_OFF` (detector), `BATTERY_LOW` (detector), `SIGNAL_LOST` (gateway).
  `ALERT_KINDS`, thermal and device, are the kinds of the gateway's MQTT `alert` messages.
- Chain kinds (`CHAIN`): the monitoring chain itself failing, raised by the ward screen, not
  sent over MQTT: `GATEWAY_OFFLINE` (its retained status says offline: a clean stop or its last
  will), `GATEWAY_SILENT` (nothing from it for `gateway_silent_after_min`), `ADAPTER_DOWN` (its
  status says a radio has not scanned for a while), `BROKER_UNREACHABLE` (the ward service
  cannot reach the broker) and `SERVICE_LOST` (raised by the page itself: no snapshot from the
  ward service for a few seconds).
- `THERMAL` is the report's column order (mildest first); `COLD` its cold subset.
- `SEVERITY_ORDER` is the ward screen's: the most urgent first, thermal before device.
- `ALARMS`: each kind's alarm priority after IEC 60601-1-8 (high, medium, low; physiological or
  technical), and `SIGNALS`: how each priority looks and sounds, on the ward screen and on the
  strap. docs/alarms.md is the table a ward reads; tests hold it, the page, the MQTT alert's
  `priority` and the firmware's buzzer patterns (firmware/alarm.py) to these.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

__all__ = [
    "ALARMS",
    "ALERT_KINDS",
    "ADAPTER_DOWN",
    "BROKER_UNREACHABLE",
    "CHAIN",
    "GATEWAY_OFFLINE",
    "GATEWAY_SILENT",
    "SERVICE_LOST",
    "HIGH",
    "LOW",
    "MEDIUM",
    "PRIORITIES",
    "SIGNALS",
    "Alarm",
    "Signal",
    "alarm_of",
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
GATEWAY_OFFLINE = "gateway_offline"
GATEWAY_SILENT = "gateway_silent"
ADAPTER_DOWN = "adapter_down"
BROKER_UNREACHABLE = "broker_unreachable"
SERVICE_LOST = "service_lost"

COLD = (COLD_STRESS, MODERATE_HYPOTHERMIA, SEVERE_HYPOTHERMIA)
THERMAL = (*COLD, HYPERTHERMIA)
DEVICE = (SIGNAL_LOST, STRAP_OFF, BATTERY_LOW)
ALERT_KINDS = (*THERMAL, *DEVICE)
CHAIN = (SERVICE_LOST, BROKER_UNREACHABLE, GATEWAY_OFFLINE, GATEWAY_SILENT, ADAPTER_DOWN)
SEVERITY_ORDER = (
    *CHAIN,  # the whole ward unwatched comes before any one baby
    SEVERE_HYPOTHERMIA,
    MODERATE_HYPOTHERMIA,
    HYPERTHERMIA,
    COLD_STRESS,
    *DEVICE,
)

HIGH = "high"
MEDIUM = "medium"
LOW = "low"
PRIORITIES = (HIGH, MEDIUM, LOW)  # the most urgent first


class Alarm(NamedTuple):
    """An alert kind as an alarm: its priority, and whether it is technical (the chain or the
    device failing, not the baby)."""

    kind: str
    priority: str
    technical: bool


ALARMS = (
    # a baby whose temperature has fallen this far needs a nurse now: immediate response
    Alarm(SEVERE_HYPOTHERMIA, HIGH, False),
    Alarm(MODERATE_HYPOTHERMIA, HIGH, False),
    # prompt response: warm the baby (skin-to-skin, a hat), check again
    Alarm(COLD_STRESS, MEDIUM, False),
    Alarm(HYPERTHERMIA, MEDIUM, False),
    # the bed is unwatched until someone looks: as urgent as cold stress
    Alarm(SIGNAL_LOST, MEDIUM, True),
    # awareness: the strap needs a hand, the baby is not known to be in danger
    Alarm(STRAP_OFF, LOW, True),
    Alarm(BATTERY_LOW, LOW, True),
    # the chain is broken: every bed (or every bed of a radio) is unwatched and the screen
    # cannot say so per bed; a nurse checks the babies by hand until it is mended (high)
    Alarm(SERVICE_LOST, HIGH, True),
    Alarm(BROKER_UNREACHABLE, HIGH, True),
    Alarm(GATEWAY_OFFLINE, HIGH, True),
    Alarm(GATEWAY_SILENT, HIGH, True),
    Alarm(ADAPTER_DOWN, HIGH, True),
)
_ALARM = {a.kind: a for a in ALARMS}


def alarm_of(kind: str) -> Alarm:
    """The alarm of an alert kind; a kind this version does not know (a newer gateway's) is
    treated as medium, technical: shown and sounded, never dropped."""
    return _ALARM.get(kind) or Alarm(kind, MEDIUM, True)


class Signal(NamedTuple):
    """How an alarm of one priority is shown and sounded (IEC 60601-1-8, 6.3.2 and 6.3.3):
    - `colour` of its indicator, `flash_hz` and `duty` (0: steady);
    - `pattern`: its auditory burst in 100 ms steps, `x` sound and `.` silence (the strap's
      alarm task and the page's Web Audio both play it), repeated every `repeat_s` (0: once).
    The standard's pulse counts (10, 3, 1 or 2), flash rates and duty cycles are kept; the
    pulse and burst timings are chosen inside its ranges, not certified."""

    priority: str
    colour: str
    flash_hz: float
    duty: float
    pattern: str
    repeat_s: float


SIGNALS = (
    # red, 2 Hz (1.4-2.8), 50 % on (20-60 %); 10 pulses: 3 + 2, twice, every 8 s (2.5-15 s)
    Signal(HIGH, "#c8102e", 2.0, 0.5, "x.x.x...x.x.....x.x.x...x.x", 8.0),
    # yellow, 0.6 Hz (0.4-0.8), 50 % on (20-60 %); 3 pulses of 200 ms every 15 s (2.5-30 s)
    Signal(MEDIUM, "#ffc20e", 0.6, 0.5, "xx.xx.xx", 15.0),
    # cyan, steady; 1 pulse, once (a low alarm may sound once or not at all)
    Signal(LOW, "#00a3ad", 0.0, 0.0, "xx", 0.0),
)


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
