"""The ward screen's configuration: one TOML file, validated at start; errors name file and key.

[ward]
site = "site1"                     # the gateway's site and ward: the topics to show
ward = "ward-a"
listen = "0.0.0.0"                 # the ward's network (tablets); "127.0.0.1" for this machine only
port = 8080
data_dir = "/var/lib/kmc-ward"     # the audit log
pin_file = "/etc/kmc/ward.pin"     # the ward PIN (4-12 digits), or $KMC_WARD_PIN
escalate_after_min = 5             # an unacknowledged alert escalates after this long
gateway_silent_after_min = 2       # nothing from the gateway this long: gateway_silent (0.5-60)
audio_pause_min = 2                # a nurse's audio pause lasts this long (0.5-5)
target_hours = 18                  # KMC hours a day each tile is measured against
language = "en"                    # a language of static/strings.json

[mqtt]                             # as the gateway's (read-only user "wardscreen")
host = "127.0.0.1"
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..mqtt import BrokerConfig, TopicError, topic_part
from ..tomlconf import ConfigError, broker_config, get, read_toml, secret, section, unknown

STATIC = Path(__file__).with_name("static")


def languages() -> list[str]:
    return sorted(json.loads((STATIC / "strings.json").read_text(encoding="utf-8")))


@dataclass(frozen=True)
class WardConfig:
    site: str
    ward: str
    data_dir: Path
    pin: str
    broker: BrokerConfig
    prefix: str = "kmc"
    listen: str = "127.0.0.1"
    port: int = 8080
    escalate_after_s: float = 300.0
    target_hours: float = 18.0
    language: str = "en"
    gateway_silent_after_s: float = 120.0
    audio_pause_s: float = 120.0

    def __repr__(self) -> str:  # the PIN never reaches a log line
        return f"WardConfig(site={self.site!r}, ward={self.ward!r}, port={self.port})"


def load_ward_config(path: str | Path) -> WardConfig:
    path = Path(path)
    raw = read_toml(path)
    unknown(raw, {"ward", "mqtt"}, str(path))
    where = f"{path} [ward]"
    w = section(raw, "ward", str(path))
    unknown(
        w,
        {
            "site",
            "ward",
            "listen",
            "port",
            "data_dir",
            "pin_file",
            "escalate_after_min",
            "gateway_silent_after_min",
            "audio_pause_min",
            "target_hours",
            "language",
        },
        where,
    )
    try:
        site = topic_part("site", get(w, "site", str, where))
        ward = topic_part("ward", get(w, "ward", str, where))
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    pin = secret(w, "pin_file", "KMC_WARD_PIN", where)
    if pin is None:
        raise ConfigError(f"{where}: pin_file (or $KMC_WARD_PIN) is required")
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ConfigError(f"{where}: the ward PIN must be 4-12 digits")
    port = get(w, "port", int, where, 8080)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 1..65535")
    escalate = float(get(w, "escalate_after_min", (int, float), where, 5))
    if not 0 < escalate <= 120:
        raise ConfigError(f"{where}: escalate_after_min must be within 0-120")
    silent = float(get(w, "gateway_silent_after_min", (int, float), where, 2))
    if not 0.5 <= silent <= 60:
        raise ConfigError(
            f"{where}: gateway_silent_after_min must be within 0.5-60 (minutes without a word "
            "from the gateway before its technical alarm; above its status_every_s)"
        )
    pause = float(get(w, "audio_pause_min", (int, float), where, 2))
    if not 0.5 <= pause <= 5:
        raise ConfigError(
            f"{where}: audio_pause_min must be within 0.5-5 (IEC 60601-1-8 keeps an audio "
            "pause short; the alarms stay on the screen meanwhile)"
        )
    target = float(get(w, "target_hours", (int, float), where, 18))
    if not 0 < target <= 24:
        raise ConfigError(f"{where}: target_hours must be within 0-24")
    language = get(w, "language", str, where, "en")
    if language not in languages():
        raise ConfigError(f"{where}: language {language!r} is not one of {languages()}")
    m = section(raw, "mqtt", str(path), required=False)
    mwhere = f"{path} [mqtt]"
    broker = broker_config(m, mwhere, f"kmc-ward-{site}-{ward}")
    try:
        prefix = topic_part("prefix", get(m, "prefix", str, mwhere, "kmc"))
    except TopicError as exc:
        raise ConfigError(f"{mwhere}: {exc}") from None
    return WardConfig(
        site,
        ward,
        Path(get(w, "data_dir", str, where)),
        pin,
        broker,
        prefix,
        get(w, "listen", str, where, "127.0.0.1"),
        port,
        escalate * 60.0,
        target,
        language,
        silent * 60.0,
        pause * 60.0,
    )
