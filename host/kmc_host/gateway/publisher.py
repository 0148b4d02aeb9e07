"""MQTT publishing with paho-mqtt: QoS 1, an on-disk outbox, a retained status with a last will.

Every message goes through the `Outbox` first. A pump sends the oldest messages while the
broker is connected, at most `window` unacknowledged at a time, and removes each from the
outbox on its PUBACK. When the connection drops, whatever was not acknowledged is sent again,
in order, after paho has reconnected (with its own backoff). A broker outage therefore loses
nothing: the outbox grows on disk and drains when the broker is back.

Topics live under `<prefix>/<site>/<ward>/`; every part is checked (no `/ + #`, not empty), and
every payload is JSON with a schema version `"v"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ..errors import BadInput
from .outbox import Outbox

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class TopicError(BadInput):
    """A topic part from a strap id or the configuration that MQTT cannot carry safely."""


def topic_part(what: str, value: str) -> str:
    if not value or any(ch in value for ch in "/+#\x00") or value != value.strip():
        raise TopicError(
            f"{what} {value!r} cannot be an MQTT topic part (empty, spaces at the ends, or / + #)"
        )
    return value


@dataclass(frozen=True)
class TopicTree:
    """`<prefix>/<site>/<ward>/<strap>/<leaf>` and the gateway's own status topic."""

    prefix: str
    site: str
    ward: str

    def __post_init__(self) -> None:
        for what in ("prefix", "site", "ward"):
            topic_part(what, getattr(self, what))

    def strap(self, strap_id: str, leaf: str) -> str:
        return f"{self.prefix}/{self.site}/{self.ward}/{topic_part('strap id', strap_id)}/{topic_part('leaf', leaf)}"

    @property
    def gateway_status(self) -> str:
        return f"{self.prefix}/{self.site}/{self.ward}/gateway/status"


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    client_id: str = "kmc-gateway"
    keepalive_s: int = 30


def mqtt_client(broker: BrokerConfig, *, clean_session: bool) -> mqtt.Client:
    """A paho client with the broker's login, TLS and reconnect settings: the one way the
    gateway, the sink and the ward screen open their connections."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=broker.client_id, clean_session=clean_session
    )
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def payload(**fields: Any) -> bytes:
    """A message body: JSON, with the schema version first."""
    return json.dumps(
        {"v": SCHEMA_VERSION, **fields}, separators=(",", ":"), allow_nan=False
    ).encode()


class MqttPublisher:
    """Outbox -> broker, QoS 1, in order, at least once (see module docstring)."""

    def __init__(
        self,
        broker: BrokerConfig,
        topics: TopicTree,
        outbox_path: Path,
        window: int = 200,
        reserve_mb: float = 0.0,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self.outbox = Outbox(outbox_path, reserve_mb)
        self.window = window
        self.connected = threading.Event()
        self.sent = 0
        self.acked = 0
        self._inflight: list[tuple[mqtt.MQTTMessageInfo, int]] = []  # sent, not yet acked
        self._last_sent = 0  # highest outbox id handed to paho on this connection
        self._reset = threading.Event()  # set by paho's thread on (re)connect
        self._wake = asyncio.Event()
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt_client(self.broker, clean_session=True)
        client.will_set(self.topics.gateway_status, payload(state="offline"), qos=1, retain=True)
        client.max_inflight_messages_set(self.window)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    # -- API

    def start(self) -> None:
        """Connect in the background (paho's thread); retries forever until stop()."""
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Say offline (retained), disconnect cleanly; unsent messages stay in the outbox."""
        if self.connected.is_set():
            info = self._client.publish(
                self.topics.gateway_status, payload(state="offline"), qos=1, retain=True
            )
            info.wait_for_publish(timeout=2)
        self._client.disconnect()  # before loop_stop: the other order stalls (paho 2.x)
        self._client.loop_stop()
        self.outbox.close()

    def publish(self, topic: str, body: bytes, retain: bool = False) -> None:
        """Queue a message (durable at once); it is sent when the broker is reachable."""
        self.outbox.put(topic, body, retain)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """The pump: keeps up to `window` messages in flight while connected."""
        while not stop.is_set():
            self._wake.clear()
            if self.connected.is_set():
                self._fill()
            # acks are collected every 5 ms while messages are in flight, else on new messages
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.005 if self._inflight else 0.05)

    async def flush(self, timeout_s: float) -> bool:
        """At a clean stop: keep pumping until the broker has acknowledged everything in the
        outbox, for at most `timeout_s`; True when it is empty (else the rest waits on disk
        for the next start)."""
        deadline = time.monotonic() + timeout_s
        while len(self.outbox) and self.connected.is_set() and time.monotonic() < deadline:
            self._fill()
            await asyncio.sleep(0.005)
        return len(self.outbox) == 0

    def pending(self) -> int:
        return len(self.outbox)

    # -- internals

    def _fill(self) -> None:
        """Drop what the broker acknowledged, then send more (called from the pump only)."""
        if self._reset.is_set():  # a new connection: everything unacknowledged goes again
            self._reset.clear()
            self._inflight = []
            self._last_sent = 0
        still = []
        for info, outbox_id in self._inflight:
            if not info.is_published():
                still.append((info, outbox_id))
                continue
            try:
                self.outbox.remove(outbox_id)
            except sqlite3.OperationalError as exc:  # a full disk: delete it later
                log.warning("outbox: cannot delete an acknowledged message yet (%s)", exc)
                still.append((info, outbox_id))
                continue
            self.acked += 1
        self._inflight = still
        room = self.window - len(still)
        if room <= 0:
            return
        for msg in self.outbox.oldest(room, after=self._last_sent):
            info = self._client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # the connection went away meanwhile: resent after the reconnect
            self._inflight.append((info, msg.id))
            self._last_sent = msg.id
            self.sent += 1

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the connection: %s", reason)
            return
        self._reset.set()  # the pump resends everything not acknowledged, oldest first
        client.publish(self.topics.gateway_status, payload(state="online"), qos=1, retain=True)
        self.connected.set()
        log.info("connected to %s:%d", self.broker.host, self.broker.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        log.warning(
            "broker connection lost (%s); the outbox holds %d messages", reason, len(self.outbox)
        )
