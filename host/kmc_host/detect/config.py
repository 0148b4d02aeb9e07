"""Detector configuration: every clinical and signal threshold in one validated place.

The defaults are those of ../shared/DESIGN.md (WHO temperature bands, published KMC session rules).
A ward changes them through its configuration file; the detector never hard-codes a number.
Validation happens here, at the edge, so the pipeline below can trust its inputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal, TypedDict

from ..clinical import (
    BATTERY_LOW,
    COLD_STRESS,
    HYPERTHERMIA,
    MODERATE_HYPOTHERMIA,
    SEVERE_HYPOTHERMIA,
    STRAP_OFF,
    WHO_BANDS,
)
from ..errors import ConfigError

Direction = Literal["below", "above"]


@dataclass(frozen=True)
class Band:
    """A threshold band with persistence and hysteresis (a WHO temperature band, low battery).

    The band is *entered* once the value has stayed beyond `threshold` for `persist_s`, and *left*
    once it has stayed back past `threshold` by `hysteresis` for `persist_s`. Excursions shorter
    than `glitch_s` inside such a stretch are sensor noise and do not restart the count. Nested
    bands (cold stress contains moderate hypothermia) are separate Band objects, each with its
    own episodes.
    """

    kind: str
    threshold: float
    direction: Direction
    hysteresis: float = 0.1
    persist_s: float = 60.0
    glitch_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.kind or not self.kind.replace("_", "").isalnum():
            raise ConfigError(f"band kind {self.kind!r} must be a non-empty identifier")
        if self.direction not in ("below", "above"):
            raise ConfigError(f"band {self.kind}: direction must be 'below' or 'above'")
        if self.hysteresis < 0:
            raise ConfigError(f"band {self.kind}: hysteresis must be >= 0")
        if self.persist_s <= 0:
            raise ConfigError(f"band {self.kind}: persist_s must be > 0")
        if not 0 <= self.glitch_s < self.persist_s:
            raise ConfigError(f"band {self.kind}: glitch_s must be >= 0 and below persist_s")


def who_thermal_bands(persist_s: float = 60.0, hysteresis: float = 0.1) -> tuple[Band, ...]:
    """The four WHO bands on infant skin temperature (DESIGN.md, Detection)."""
    return tuple(
        Band(who.kind, who.threshold_c, who.direction, hysteresis, persist_s) for who in WHO_BANDS
    )


class ScreenSettings(TypedDict):
    """`DetectorConfig.screen_settings()`; the gateway's status carries it as
    `kmc_host.mqtt.DetectorSettings`, of the same shape."""

    digest: str
    axillary_offset_c: float
    thresholds_c: dict[str, float]


@dataclass(frozen=True)
class DetectorConfig:
    """All detector parameters, in seconds and degrees Celsius.

    Sample timing
      sample_period_s: nominal strap sampling period; the time a sample stands for when the
        one before it is too far away to tell.
      gap_s: a silence longer than this between two samples is missing data (a gap), not a late
        sample. Shorter silences are covered by the sample that ends them.
    KMC sessions (evidence: contact == 1 and worn == 1)
      dropout_s: lift-offs of the outer pad shorter than this inside contact are closed first.
      min_contact_s: contact runs shorter than this are noise (a touch, a glitch).
      bridge_s: interruptions (no contact or missing data) up to this long inside a session are
        bridged and counted in it (a nappy change).
      min_session_s: sessions shorter than this are handling, not KMC.
      effective_session_s: sessions at least this long are "effective" (WHO: avoid shorter).
    Thermal alerts on infant_c + axillary_offset_c, only while worn
      thermal_bands: the WHO bands with their persistence and hysteresis.
      settle_s: no thermal alert this long after the strap is put (back) on.
      settle_rise_c_per_min, settle_rise_window_s, settle_max_s: after settle_s, a reading
        still climbing at least this fast (over the window) is still settling, up to settle_max_s.
      assume_removed_after_gap_s: a data gap at least this long counts as a removal, so the
        sensor settles again afterwards.
    Device alerts
      strap_off_s: worn == 0 for at least this long raises `strap_off`.
      battery_band: the `battery_low` band on battery_v (volts), used when that column exists.
    """

    sample_period_s: float = 1.0
    gap_s: float = 5.0
    dropout_s: float = 10.0
    min_contact_s: float = 30.0
    bridge_s: float = 300.0
    min_session_s: float = 600.0
    effective_session_s: float = 3600.0
    thermal_bands: tuple[Band, ...] = field(default_factory=who_thermal_bands)
    axillary_offset_c: float = 0.0
    settle_s: float = 300.0
    settle_rise_c_per_min: float = 0.03
    settle_rise_window_s: float = 120.0
    settle_max_s: float = 900.0
    assume_removed_after_gap_s: float = 300.0
    strap_off_s: float = 120.0
    battery_band: Band = Band(BATTERY_LOW, 3.5, "below", 0.05, 60.0)

    def __post_init__(self) -> None:
        for name in (
            "sample_period_s",
            "gap_s",
            "min_contact_s",
            "min_session_s",
            "effective_session_s",
            "strap_off_s",
            "assume_removed_after_gap_s",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("dropout_s", "bridge_s", "settle_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.settle_max_s < self.settle_s:
            raise ConfigError("settle_max_s must be >= settle_s")
        if not self.settle_rise_window_s > 0 or not self.settle_rise_c_per_min > 0:
            raise ConfigError("settle_rise_window_s and settle_rise_c_per_min must be > 0")
        if self.gap_s < self.sample_period_s:
            raise ConfigError("gap_s must be >= sample_period_s")
        if self.dropout_s > self.bridge_s:
            raise ConfigError(
                "dropout_s must be <= bridge_s (dropouts are the shortest interruptions)"
            )
        if not -2.0 <= self.axillary_offset_c <= 2.0:
            raise ConfigError("axillary_offset_c must be within -2.0..2.0 C")
        kinds = [b.kind for b in self.thermal_bands] + [self.battery_band.kind, STRAP_OFF]
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"alert kinds must be unique, got {kinds}")

    def threshold_c(self, kind: str) -> float | None:
        """The threshold of the thermal band `kind` (on infant_c + axillary_offset_c), if any."""
        return next((b.threshold for b in self.thermal_bands if b.kind == kind), None)

    def describe(self) -> dict[str, Any]:
        """Every setting as plain values (bands by kind), for an output to name what made it."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "thermal_bands":
                value = {b.kind: _band_values(b) for b in value}
            elif isinstance(value, Band):
                value = _band_values(value)
            out[f.name] = value
        return out

    def digest(self) -> str:
        """A short fingerprint of `describe()`: two outputs with the same digest were made with
        the same settings (12 hex digits of SHA-256 over the sorted JSON)."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def screen_settings(self) -> ScreenSettings:
        """What a ward screen needs to colour a reading as this detector raises alerts: the
        digest, the chest-to-axillary offset, and each thermal band's threshold by kind (the
        gateway's status `detector`, docs/mqtt.md)."""
        return ScreenSettings(
            digest=self.digest(),
            axillary_offset_c=self.axillary_offset_c,
            thresholds_c={b.kind: b.threshold for b in self.thermal_bands},
        )

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> DetectorConfig:
        """Build from a parsed config file section; unknown keys and wrong types are errors.

        Scalars override the fields of the same name; a `thresholds_c` table moves WHO bands'
        thresholds by kind (`[detector.thresholds_c]` with `cold_stress = 36.4`, ...), for a
        ward whose protocol sets its own."""
        values = dict(values)
        thresholds = values.pop("thresholds_c", None)
        known = {f.name for f in fields(cls)} - {"thermal_bands", "battery_band"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown detector setting(s): {', '.join(unknown)} (known: thresholds_c, "
                f"{', '.join(sorted(known))})"
            )
        clean: dict[str, Any] = {}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"detector setting {key} must be a number, got {value!r}")
            clean[key] = float(value)
        base = replace(cls(), **clean)
        if thresholds is None:
            return base
        return replace(base, thermal_bands=_moved_bands(base.thermal_bands, thresholds))


def _band_values(band: Band) -> dict[str, Any]:
    values = asdict(band)
    del values["kind"]
    return values


THRESHOLD_RANGE_C = (30.0, 40.0)


def _moved_bands(bands: tuple[Band, ...], thresholds: Any) -> tuple[Band, ...]:
    """`bands` with the thresholds of `thresholds` (kind -> degrees C), checked: known kinds,
    numbers within THRESHOLD_RANGE_C, and the WHO order kept (severe < moderate < cold stress <
    hyperthermia), so a typo cannot turn a band inside out."""
    if not isinstance(thresholds, dict):
        raise ConfigError(
            f"detector thresholds_c must be a table of kind = degrees C, got {thresholds!r}"
        )
    kinds = [b.kind for b in bands]
    unknown = sorted(set(thresholds) - set(kinds))
    if unknown:
        raise ConfigError(
            f"detector thresholds_c: unknown kind(s) {', '.join(unknown)} (known: {', '.join(kinds)})"
        )
    lo, hi = THRESHOLD_RANGE_C
    for kind, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"detector thresholds_c.{kind} must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise ConfigError(
                f"detector thresholds_c.{kind} must be within {lo}-{hi} C, got {value}"
            )
    moved = tuple(replace(b, threshold=float(thresholds.get(b.kind, b.threshold))) for b in bands)
    by_kind = {b.kind: b.threshold for b in moved}
    rising = (SEVERE_HYPOTHERMIA, MODERATE_HYPOTHERMIA, COLD_STRESS, HYPERTHERMIA)
    order = [k for k in rising if k in by_kind]
    values = [by_kind[k] for k in order]
    if values != sorted(values) or len(set(values)) != len(values):
        said = ", ".join(f"{k} {by_kind[k]}" for k in order)
        raise ConfigError(
            f"detector thresholds_c must rise from severe hypothermia to hyperthermia, got {said}"
        )
    return moved
