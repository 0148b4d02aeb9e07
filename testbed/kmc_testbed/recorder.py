"""A subscriber that records what the gateway publishes (demo summary, benchmarks, tests).

Every message under a topic filter is kept with its arrival time (monotonic), topic, decoded
JSON body and retain flag. The ward screen (issue #6) will be the real consumer of these topics.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt


class TopicRecorder:
    def __init__(
        self,
        port: int,
        pattern: str = "kmc/#",
        host: str = "127.0.0.1",
        client_id: str = "kmc-recorder",
    ) -> None:
        self.records: list[tuple[float, str, dict[str, Any], bool]] = []
        self._lock = threading.Lock()
        # a persistent session: messages published while it is away (broker restart) still arrive
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(pattern, qos=1)
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        record = (time.monotonic(), msg.topic, json.loads(msg.payload), bool(msg.retain))
        with self._lock:
            self.records.append(record)

    def bodies(self, topic: str | None = None, leaf: str | None = None) -> list[dict[str, Any]]:
        """Bodies in arrival order, of one topic or of every topic ending in `/leaf`."""
        with self._lock:
            return [
                body
                for _, t, body, _ in self.records
                if (topic is None or t == topic) and (leaf is None or t.rsplit("/", 1)[-1] == leaf)
            ]

    def timed(self, leaf: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(at, body) for at, t, body, _ in self.records if t.rsplit("/", 1)[-1] == leaf]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
