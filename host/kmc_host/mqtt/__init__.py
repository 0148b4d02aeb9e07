"""The MQTT contract between the gateway and its readers (docs/mqtt.md), defined once.

The gateway writes through it, the sink and the ward screen read through it; none of them
spells a topic, a leaf, the schema version or a payload field of its own.

- `topics`: `TopicTree` (`<prefix>/<site>/<ward>/<strap>/<leaf>` and the gateway's status topic),
  `topic_part`, `TopicError`, the leaves (`STRAP_LEAVES`, `STATUS`, ...).
- `messages`: `SCHEMA_VERSION`; one message type per leaf (`StatusMessage`, `SamplesMessage`,
  `StateMessage`, `AlertMessage`, `SessionMessage`, `DailyMessage`), each with `encode()` ->
  bytes and `parse(body, topic)` -> itself or `MessageError`; `read(topic, body, prefix)` for a
  received per-strap message and its `Origin`, `read_status` for the gateway's status (its
  radios as `AdapterStatus`, its `DetectorSettings`); `iso_seconds` for the times they carry.
- `schema`: `schema(leaf)`, the JSON Schema of each message (`schemas/<leaf>.schema.json`); the
  field tables of docs/mqtt.md are generated from them (`python -m kmc_host.mqtt.schema`).
- `client`: `BrokerConfig` and `mqtt_client`, the paho client with login, TLS and reconnect.
- `outbox`: `Outbox`, the durable FIFO behind the publisher (and the sink's spool); `OutboxFull`.
- `SinkStatusMessage` on `sink_status_topic`: a sink's own state (online, stalled, offline).
- `publisher`: `MqttPublisher`, outbox -> broker with QoS 1, in order, retained status and will.
"""

from .client import BrokerConfig, mqtt_client
from .messages import (
    ACTIVE,
    ENDED,
    MESSAGE_TYPES,
    OFFLINE,
    ONLINE,
    SCHEMA_VERSION,
    SINK_STATES,
    STATES,
    AdapterStatus,
    AlertMessage,
    DailyMessage,
    DetectorSettings,
    Ids,
    Message,
    MessageError,
    Origin,
    SamplesMessage,
    SessionMessage,
    SinkStatusMessage,
    StateMessage,
    StatusMessage,
    StrapMessage,
    iso_seconds,
    parse_topic,
    read,
    read_status,
)
from .outbox import Outbox, OutboxFull
from .publisher import MqttPublisher
from .topics import (
    ALERT,
    DAILY,
    GATEWAY,
    LEAVES,
    SAMPLES,
    SESSION,
    STATE,
    STATUS,
    STRAP_LEAVES,
    TopicError,
    TopicTree,
    sink_status_topic,
    topic_part,
)

__all__ = [
    "ACTIVE",
    "ALERT",
    "DAILY",
    "ENDED",
    "GATEWAY",
    "LEAVES",
    "MESSAGE_TYPES",
    "OFFLINE",
    "ONLINE",
    "SAMPLES",
    "SCHEMA_VERSION",
    "SESSION",
    "SINK_STATES",
    "STATE",
    "STATES",
    "STATUS",
    "STRAP_LEAVES",
    "AdapterStatus",
    "AlertMessage",
    "BrokerConfig",
    "DailyMessage",
    "DetectorSettings",
    "Ids",
    "Message",
    "MessageError",
    "MqttPublisher",
    "Origin",
    "Outbox",
    "OutboxFull",
    "SamplesMessage",
    "SessionMessage",
    "SinkStatusMessage",
    "StateMessage",
    "StatusMessage",
    "StrapMessage",
    "TopicError",
    "TopicTree",
    "iso_seconds",
    "mqtt_client",
    "parse_topic",
    "read",
    "read_status",
    "sink_status_topic",
    "topic_part",
]
