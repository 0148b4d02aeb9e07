"""MQTT publishing with paho-mqtt: QoS 1, an on-disk outbox, a retained status with a last will.

Every message goes through the `Outbox` first. A pump sends the oldest messages while the
broker is connected, at most `window` unacknowledged at a time, and removes each from the
outbox on its PUBACK. When the connection drops, whatever was not acknowledged is sent again,
in order, after paho has reconnected (with its own backoff). A broker outage therefore loses
nothing: the outbox grows on disk and drains when the broker is back.

`send(message)` publishes a per-strap message (`messages`) on its topic of the `TopicTree`,
retained where its leaf is; `publish(topic, body)` any body on any topic.

The gateway's status is the exception to the outbox: `status()` (a heartbeat, online with the
radios) is published straight to the broker when connected, on connect and whenever the
gateway calls `publish_status()`. A status is about now; one kept through an outage and sent
after it would be stale the moment it arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from .client import BrokerConfig, mqtt_client
from .messages import OFFLINE, ONLINE, StatusMessage, StrapMessage
from .outbox import Outbox
from .topics import TopicTree

__all__ = ["MqttPublisher"]

log = logging.getLogger(__name__)


class MqttPublisher:
    """Outbox -> broker, QoS 1, in order, at least once (see module docstring)."""

    def __init__(
        self,
        broker: BrokerConfig,
        topics: TopicTree,
        outbox_path: Path,
        window: int = 200,
        reserve_mb: float = 0.0,
        status: Callable[[], StatusMessage] | None = None,
    ) -> None:
        """`status`: the gateway's status now (online), for each connect and heartbeat."""
        self.broker = broker
        self.status = status or (lambda: StatusMessage(state=ONLINE, time=time.time()))
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
        client.will_set(
            self.topics.gateway_status,
            StatusMessage(state=OFFLINE).encode(),
            qos=1,
            retain=StatusMessage.RETAIN,
        )
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
                self.topics.gateway_status,
                StatusMessage(state=OFFLINE, time=time.time()).encode(),
                qos=1,
                retain=StatusMessage.RETAIN,
            )
            info.wait_for_publish(timeout=2)
        self._client.disconnect()  # before loop_stop: the other order stalls (paho 2.x)
        self._client.loop_stop()
        self.outbox.close()

    def publish(self, topic: str, body: bytes, retain: bool = False) -> None:
        """Queue a message (durable at once); it is sent when the broker is reachable."""
        self.outbox.put(topic, body, retain)
        self._wake.set()

    def publish_status(self) -> bool:
        """Publish `status()` now, retained, if connected (else the next connect does)."""
        if not self.connected.is_set():
            return False
        info = self._client.publish(
            self.topics.gateway_status,
            self.status().encode(),
            qos=1,
            retain=StatusMessage.RETAIN,
        )
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def send(self, message: StrapMessage) -> None:
        """Queue a strap's message on its topic, retained if its leaf is."""
        self.publish(
            self.topics.strap(message.strap, message.LEAF), message.encode(), message.RETAIN
        )

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
        client.publish(
            self.topics.gateway_status,
            self.status().encode(),
            qos=1,
            retain=StatusMessage.RETAIN,
        )
        self.connected.set()
        log.info("connected to %s:%d", self.broker.host, self.broker.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        log.warning(
            "broker connection lost (%s); the outbox holds %d messages", reason, len(self.outbox)
        )
