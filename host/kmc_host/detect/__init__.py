"""The KMC detector: samples -> runs -> sessions, alert episodes, hours per day.

One detector for the live gateway and the offline tools. Read top-down: config (every
threshold) -> runs (samples to runs, incremental) -> intervals (pure interval steps) ->
sessions, bands (rules on runs) -> strap (one strap's detector, any chunking) -> calendar
(hours per local day, rolling 24 h, day of life).

Public API:

- configuration: `DetectorConfig` (validated; `from_mapping` for a TOML section), `Band`,
  `who_thermal_bands`, `ConfigError`
- one strap: `StrapDetector` (`feed` chunks in time order, each giving an `Update` for the live
  view; `finish`, `result`), `detect` (a whole recording at once), `StrapResult`, `Update`,
  `Episodes`, `SampleOrderError`
- per-sample states: `sample_states` and `STATE_GAP`, `STATE_OFF`, `STATE_WORN`, `STATE_KMC`,
  `STATE_NAMES`; `STRAP_OFF` (the strap-off alert kind)
- calendar: `daily_hours`, `rolling_24h`, `day_of_life_hours`, `local_day_edges`, `zone`,
  `Daily`
"""

from .bands import Episodes
from .calendar import Daily, daily_hours, day_of_life_hours, local_day_edges, rolling_24h, zone
from .config import Band, ConfigError, DetectorConfig, who_thermal_bands
from .strap import (
    STATE_GAP,
    STATE_KMC,
    STATE_NAMES,
    STATE_OFF,
    STATE_WORN,
    STRAP_OFF,
    SampleOrderError,
    StrapDetector,
    StrapResult,
    Update,
    detect,
    sample_states,
)

__all__ = [
    "STATE_GAP",
    "STATE_KMC",
    "STATE_NAMES",
    "STATE_OFF",
    "STATE_WORN",
    "STRAP_OFF",
    "Band",
    "ConfigError",
    "Daily",
    "DetectorConfig",
    "Episodes",
    "SampleOrderError",
    "StrapDetector",
    "StrapResult",
    "Update",
    "daily_hours",
    "day_of_life_hours",
    "detect",
    "local_day_edges",
    "rolling_24h",
    "sample_states",
    "who_thermal_bands",
    "zone",
]
