"""Gateway configuration: one TOML file, validated at start with errors that name the key.

[gateway]
site = "site1"                      # topic parts: no / + #, not empty
ward = "ward-a"
timezone = "Africa/Addis_Ababa"     # IANA name, for KMC hours "today"
data_dir = "/var/lib/kmc-gateway"   # cursors and the MQTT outbox
max_connections = 7                 # straps connected at once per adapter

[mqtt]
host = "127.0.0.1"
port = 1883
prefix = "kmc"
username = "gateway"                # optional; password from password_file or $KMC_MQTT_PASSWORD
password_file = "/etc/kmc/mqtt.pw"
tls = false
ca_file = "/etc/kmc/ca.pem"

[[straps]]                          # the allow-list: only these straps are connected
id = "KMC-0001"
bed = "3"
infant = "INF-7Q2X"                 # a pseudonym, never a name

[detector]                          # optional overrides of DetectorConfig
bridge_s = 300
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..deploy import STRAP_ID
from ..detect import ConfigError, DetectorConfig, zone
from .publisher import BrokerConfig, TopicError, TopicTree, topic_part


@dataclass(frozen=True)
class StrapEntry:
    id: str
    bed: str = ""
    infant: str = ""


@dataclass(frozen=True)
class GatewayConfig:
    topics: TopicTree
    timezone: str
    data_dir: Path
    broker: BrokerConfig
    straps: tuple[StrapEntry, ...]
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    max_connections: int = 7


def _section(raw: dict[str, Any], name: str, where: str, required: bool = True) -> dict[str, Any]:
    value = raw.get(name, None if required else {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: [{name}] section is missing"
            if value is None
            else f"{where}: [{name}] must be a table"
        )
    return value


def _get(
    section: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...
) -> Any:
    if key not in section:
        if default is ...:
            raise ConfigError(f"{where}: {key} is required")
        return default
    value = section[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} = {value!r} should be {getattr(kind, '__name__', kind)}")
    return value


def _unknown(section: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(section) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}")


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate the gateway's TOML file; ConfigError names the file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    _unknown(raw, {"gateway", "mqtt", "straps", "detector"}, str(path))

    where = f"{path} [gateway]"
    g = _section(raw, "gateway", str(path))
    _unknown(g, {"site", "ward", "timezone", "data_dir", "max_connections"}, where)
    try:
        topics_site = topic_part("site", _get(g, "site", str, where))
        topics_ward = topic_part("ward", _get(g, "ward", str, where))
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    tz = _get(g, "timezone", str, where, "UTC")
    try:
        zone(tz)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    data_dir = Path(_get(g, "data_dir", str, where))
    max_conn = _get(g, "max_connections", int, where, 7)
    if not 1 <= max_conn <= 32:
        raise ConfigError(f"{where}: max_connections must be 1..32")

    where = f"{path} [mqtt]"
    m = _section(raw, "mqtt", str(path), required=False)
    _unknown(
        m,
        {"host", "port", "prefix", "username", "password_file", "tls", "ca_file", "client_id"},
        where,
    )
    port = _get(m, "port", int, where, 1883)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 1..65535")
    password = None
    if "password_file" in m:
        pw_path = Path(_get(m, "password_file", str, where))
        try:
            password = pw_path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: password_file: {exc}") from None
    elif os.environ.get("KMC_MQTT_PASSWORD"):
        password = os.environ["KMC_MQTT_PASSWORD"]
    ca_file = _get(m, "ca_file", str, where, None)
    if ca_file is not None and not Path(ca_file).exists():
        raise ConfigError(f"{where}: ca_file {ca_file} not found")
    broker = BrokerConfig(
        host=_get(m, "host", str, where, "127.0.0.1"),
        port=port,
        username=_get(m, "username", str, where, None),
        password=password,
        tls=_get(m, "tls", bool, where, False),
        ca_file=ca_file,
        client_id=_get(m, "client_id", str, where, f"kmc-gateway-{topics_site}-{topics_ward}"),
    )
    try:
        topics = TopicTree(_get(m, "prefix", str, where, "kmc"), topics_site, topics_ward)
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None

    straps_raw = raw.get("straps", [])
    if not isinstance(straps_raw, list) or not straps_raw:
        raise ConfigError(f"{path}: at least one [[straps]] entry is required (the allow-list)")
    straps = []
    for k, s in enumerate(straps_raw, start=1):
        where = f"{path} [[straps]] #{k}"
        if not isinstance(s, dict):
            raise ConfigError(f"{where}: must be a table")
        _unknown(s, {"id", "bed", "infant"}, where)
        sid = _get(s, "id", str, where)
        if not STRAP_ID.fullmatch(sid):
            raise ConfigError(f"{where}: id {sid!r} must be 1-8 characters of A-Z a-z 0-9 - _")
        straps.append(
            StrapEntry(
                sid, str(_get(s, "bed", (str, int), where, "")), _get(s, "infant", str, where, "")
            )
        )
    ids = [s.id for s in straps]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: a strap id is listed twice in [[straps]]")

    try:
        detector = DetectorConfig.from_mapping(_section(raw, "detector", str(path), required=False))
    except ConfigError as exc:
        raise ConfigError(f"{path} [detector]: {exc}") from None
    return GatewayConfig(topics, tz, data_dir, broker, tuple(straps), detector, max_conn)
