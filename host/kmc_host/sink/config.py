"""The sink's configuration: one TOML file, validated at start; errors name the file and key.

[sink]
data_dir = "/var/lib/kmc-sink"      # the spool (messages not yet in InfluxDB) and rejected.jsonl
batch_lines = 5000                  # points per write
max_backoff_s = 60                  # retry delay cap while InfluxDB is away
spool_reserve_mb = 64               # disk kept free: below it the spool takes no more messages
                                    # (held unacknowledged; the broker queues them) and the room
                                    # left lets SQLite delete what InfluxDB took (0: none)
share_group = ""                    # several sinks on one broker share its messages (MQTT
                                    # shared subscription $share/<group>/...): each message goes
                                    # to one of them; each keeps its own client_id (and spool)

[mqtt]                              # as the gateway's; client_id must stay the same across
host = "127.0.0.1"                  # restarts: the broker keeps the session's queue under it
prefix = "kmc"
client_id = "kmc-sink"
username = "sink"                   # password from password_file or $KMC_MQTT_PASSWORD

[influx]
api = "v1"                          # "v1": /write?db= (InfluxDB 1.x); "v2": influxdb-client
url = "http://127.0.0.1:8086"
database = "kmc"                    # v1 database; on 2.x/3.x the name InfluxQL queries use
retention_policy = ""
username = "sink"                   # v1; password from password_file or $KMC_INFLUX_PASSWORD
org = "hospital"                    # v2
bucket = "kmc"                      # v2
token_file = "/etc/kmc/influx.token"  # or $KMC_INFLUX_TOKEN
create_database = false             # v1: CREATE DATABASE at start (needs admin rights)

$KMC_SINK_LINES (not a TOML key: a switch for benchmarks/bench_sink.py) picks how samples
messages become line protocol: `vectorised` (the default) or `reference` (the original
point-at-a-time path, the same bytes, slower).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..mqtt import BrokerConfig, TopicError, topic_part
from ..tomlconf import (
    ConfigError,
    broker_config,
    get,
    read_toml,
    secret,
    section,
    unknown,
)
from .influx import InfluxConfig
from .schema import SAMPLE_BUILDERS, VECTORISED

LINES_ENV = "KMC_SINK_LINES"
SHARE_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class SinkConfig:
    data_dir: Path
    broker: BrokerConfig
    influx: InfluxConfig
    prefix: str = "kmc"
    batch_lines: int = 5000
    max_backoff_s: float = 60.0
    create_database: bool = False
    spool_reserve_mb: float = 64.0
    samples_lines: str = VECTORISED  # schema.to_lines(samples=...): $KMC_SINK_LINES
    share_group: str = ""  # "": the sink takes every message; else a shared subscription


def load_sink_config(path: str | Path) -> SinkConfig:
    path = Path(path)
    raw = read_toml(path)
    unknown(raw, {"sink", "mqtt", "influx"}, str(path))

    where = f"{path} [sink]"
    s = section(raw, "sink", str(path))
    unknown(
        s, {"data_dir", "batch_lines", "max_backoff_s", "spool_reserve_mb", "share_group"}, where
    )
    data_dir = Path(get(s, "data_dir", str, where))
    batch = get(s, "batch_lines", int, where, 5000)
    if not 1 <= batch <= 100_000:
        raise ConfigError(f"{where}: batch_lines must be 1..100000")
    backoff = float(get(s, "max_backoff_s", (int, float), where, 60.0))
    if not 1 <= backoff <= 3600:
        raise ConfigError(f"{where}: max_backoff_s must be 1..3600")
    reserve = float(get(s, "spool_reserve_mb", (int, float), where, 64.0))
    if not (reserve == 0 or 1 <= reserve <= 100_000):
        raise ConfigError(
            f"{where}: spool_reserve_mb must be 0 (none) or 1..100000 (at least the 0.4 MB "
            "the spool's write-ahead log may hold, to delete what InfluxDB took)"
        )

    share = get(s, "share_group", str, where, "")
    if share and not SHARE_GROUP.fullmatch(share):
        raise ConfigError(
            f"{where}: share_group {share!r} must be 1-64 letters, digits, '-' or '_' "
            '(or "" for a sink that takes every message)'
        )

    where = f"{path} [mqtt]"
    m = section(raw, "mqtt", str(path), required=False)
    broker = broker_config(m, where, "kmc-sink")
    try:
        prefix = topic_part("prefix", get(m, "prefix", str, where, "kmc"))
        topic_part("client_id", broker.client_id)  # it names the sink's status topic
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None

    where = f"{path} [influx]"
    i = section(raw, "influx", str(path))
    influx = influx_config(i, where)
    lines = os.environ.get(LINES_ENV, VECTORISED)
    if lines not in SAMPLE_BUILDERS:
        raise ConfigError(f"${LINES_ENV} = {lines!r} must be {' or '.join(SAMPLE_BUILDERS)}")
    return SinkConfig(
        data_dir,
        broker,
        influx,
        prefix,
        batch,
        backoff,
        get(i, "create_database", bool, where, False),
        reserve,
        lines,
        share,
    )


INFLUX_KEYS = {
    "api",
    "url",
    "database",
    "retention_policy",
    "username",
    "password_file",
    "token_file",
    "org",
    "bucket",
    "timeout_s",
    "create_database",
}


def influx_config(i: dict[str, Any], where: str) -> InfluxConfig:
    """The `[influx]` section (see the module docstring)."""
    unknown(i, INFLUX_KEYS, where)
    try:
        return InfluxConfig(
            url=get(i, "url", str, where, "http://127.0.0.1:8086"),
            api=get(i, "api", str, where, "v1"),
            database=get(i, "database", str, where, "kmc"),
            retention_policy=get(i, "retention_policy", str, where, ""),
            username=get(i, "username", str, where, None),
            password=secret(i, "password_file", "KMC_INFLUX_PASSWORD", where),
            token=secret(i, "token_file", "KMC_INFLUX_TOKEN", where),
            org=get(i, "org", str, where, ""),
            bucket=get(i, "bucket", str, where, ""),
            timeout_s=float(get(i, "timeout_s", (int, float), where, 10.0)),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_influx_config(path: str | Path) -> InfluxConfig:
    """Only the `[influx]` section of a TOML file (the sink's own file will do): for readers
    such as `kmc report --influx`."""
    path = Path(path)
    raw = read_toml(path)
    return influx_config(section(raw, "influx", str(path)), f"{path} [influx]")
