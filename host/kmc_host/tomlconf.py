"""Reading the services' TOML files: small checked accessors whose errors name file and key.

The gateway and the sink are configured the same way (a TOML file, validated at start into frozen
dataclasses); these helpers are what they share: required/optional keys with their types, unknown
keys refused (a typo must not silently fall back to a default), secrets read from a file or an
environment variable rather than written in the file, the `[mqtt]` section, and the `[detector]`
section (`detector_config`: the gateway's settings, which `kmc analyze`, `report`, `export` and
`validate` read from the same file with `--config`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .detect import ConfigError, DetectorConfig

if TYPE_CHECKING:  # the MQTT client is imported by the services that use it, not by kmc analyze
    from .mqtt import BrokerConfig

__all__ = [
    "ConfigError",
    "read_toml",
    "section",
    "get",
    "unknown",
    "secret",
    "broker_config",
    "detector_config",
]


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def section(raw: dict[str, Any], name: str, where: str, required: bool = True) -> dict[str, Any]:
    value = raw.get(name, None if required else {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: [{name}] section is missing"
            if value is None
            else f"{where}: [{name}] must be a table"
        )
    return value


def get(
    sec: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = ...
) -> Any:
    if key not in sec:
        if default is ...:
            raise ConfigError(f"{where}: {key} is required")
        return default
    value = sec[key]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise ConfigError(f"{where}: {key} = {value!r} should be {getattr(kind, '__name__', kind)}")
    return value


def unknown(sec: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(sec) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(extra)}")


def secret(sec: dict[str, Any], file_key: str, env: str, where: str) -> str | None:
    """A password or token: from the file named by `file_key`, else `$env`, else None.

    Never from the TOML file itself: configuration gets copied into tickets and backups."""
    if file_key in sec:
        path = Path(get(sec, file_key, str, where))
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: {file_key}: {exc}") from None
    return os.environ.get(env) or None


MQTT_KEYS = {
    "host",
    "port",
    "prefix",
    "username",
    "password_file",
    "tls",
    "ca_file",
    "client_id",
    "keepalive_s",
}


def broker_config(m: dict[str, Any], where: str, default_client_id: str) -> BrokerConfig:
    """The `[mqtt]` section (see the gateway's and the sink's config docstrings)."""
    unknown(m, MQTT_KEYS, where)
    port = get(m, "port", int, where, 1883)
    if not 1 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 1..65535")
    # how soon the broker notices a silent client and publishes its last will (1.5 x this)
    keepalive = get(m, "keepalive_s", int, where, 30)
    if not 5 <= keepalive <= 600:
        raise ConfigError(f"{where}: keepalive_s must be 5..600")
    ca_file = get(m, "ca_file", str, where, None)
    if ca_file is not None and not Path(ca_file).exists():
        raise ConfigError(f"{where}: ca_file {ca_file} not found")
    from .mqtt import BrokerConfig

    return BrokerConfig(
        host=get(m, "host", str, where, "127.0.0.1"),
        port=port,
        username=get(m, "username", str, where, None),
        password=secret(m, "password_file", "KMC_MQTT_PASSWORD", where),
        tls=get(m, "tls", bool, where, False),
        ca_file=ca_file,
        client_id=get(m, "client_id", str, where, default_client_id),
        keepalive_s=keepalive,
    )


def detector_config(raw: dict[str, Any], path: Path | str) -> DetectorConfig:
    """The optional `[detector]` section (with its `[detector.thresholds_c]` table) of the file
    `raw` was read from; without it, the defaults. Other sections are not looked at: the
    offline commands take a gateway's whole file as it is. Errors name the file and the key."""
    values = section(raw, "detector", str(path), required=False)
    try:
        return DetectorConfig.from_mapping(values)
    except ConfigError as exc:
        raise ConfigError(f"{path} [detector]: {exc}") from None
