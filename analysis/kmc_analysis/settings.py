"""The detector settings an offline command runs with, and how its outputs name them.

A ward tunes its gateway's `[detector]` section; `kmc analyze`, `report`, `export` and
`validate` take the same file with `--config FILE` and read it with the gateway's own parser
(`tomlconf.detector_config`), so a report counts the sessions and alerts the nurses saw. The
gateway's whole file is taken as it is: only `[detector]` is read, and a file without it means the
defaults (the outputs say so).

Every output then names its settings by `DetectorConfig.digest()` (12 hex digits: two outputs with
the same digest were made with the same settings), and where there is room by every value
(`describe()`) and the ones that differ from the defaults:

  analyze, report, validate --out   settings.json in the output folder (`Settings.record`)
  report                            report.html's method paragraph; Parquet schema metadata
  export dhis2 / fhir               a comment on each data value / a tag on each Observation
  every command                     one line of its summary (`Settings.line`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmc_host.detect import DetectorConfig
from kmc_host.tomlconf import detector_config, read_toml

DEFAULTS = "defaults"
SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class Settings:
    """The detector's configuration and where it came from: a config file's path, or
    `DEFAULTS` when no `--config` was given."""

    detector: DetectorConfig = field(default_factory=DetectorConfig)
    source: str = DEFAULTS
    has_section: bool = False  # the file had a [detector] section (else: the defaults)

    @property
    def digest(self) -> str:
        return self.detector.digest()

    def origin(self) -> str:
        """Where the settings came from, in words."""
        if self.source == DEFAULTS:
            return "the defaults"
        if not self.has_section:
            return f"the defaults: {self.source} has no [detector] section"
        return f"[detector] of {self.source}"

    def line(self) -> str:
        """The line a command's summary names its settings with."""
        return f"detector settings {self.digest} ({self.origin()})"

    def changed(self) -> dict[str, tuple[Any, Any]]:
        """The settings that differ from the defaults: dotted name -> (value, default), e.g.
        `thermal_bands.cold_stress.threshold` -> (37.0, 36.5)."""
        return _differences(self.detector.describe(), DetectorConfig().describe())

    def record(self) -> dict[str, Any]:
        """settings.json: the digest, the config file (or "defaults"), what differs from the
        defaults, and every value."""
        return {
            "detector_digest": self.digest,
            "config": self.source,
            "detector_section": self.has_section,
            "changed_from_defaults": {
                k: {"value": v, "default": d} for k, (v, d) in self.changed().items()
            },
            "detector": self.detector.describe(),
        }

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / SETTINGS_FILE
        path.write_text(json.dumps(self.record(), indent=1) + "\n")
        return path


def load_settings(path: str | Path | None) -> Settings:
    """`--config FILE`: the `[detector]` section of a TOML file (a gateway's whole file will
    do), read as the gateway reads it; None: the defaults. Errors (no file, bad TOML, an
    unknown key or bad value) are ConfigErrors naming the file and the key."""
    if path is None:
        return Settings()
    raw = read_toml(Path(path))
    return Settings(detector_config(raw, path), str(path), "detector" in raw)


def _differences(value: Any, default: Any, prefix: str = "") -> dict[str, tuple[Any, Any]]:
    if isinstance(value, dict) and isinstance(default, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in value.keys() | default.keys():
            out |= _differences(value.get(key), default.get(key), f"{prefix}{key}.")
        return dict(sorted(out.items()))
    return {} if value == default else {prefix.rstrip("."): (value, default)}
