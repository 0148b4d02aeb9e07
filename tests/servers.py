"""Real servers for tests, started on free loopback ports and stopped afterwards."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Mosquitto:
    """A Mosquitto broker (Debian package) on 127.0.0.1, anonymous; sessions kept across a
    restart only with `persistence=True` (as a ward's broker is configured)."""

    def __init__(self, workdir: Path, port: int | None = None, persistence: bool = False) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError(
                "mosquitto is not installed (apt-get install mosquitto; .ci/run does)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.config = workdir / "mosquitto.conf"
        keep = (
            f"persistence true\npersistence_location {workdir}/\n"
            if persistence
            else "persistence false\n"
        )
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n{keep}"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        log = self.log.open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=log)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class Listener:
    """A subscriber that records every message (payload decoded) per topic."""

    def __init__(self, port, topic="kmc/#"):
        self.messages = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="listener", clean_session=False
        )
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload), msg.retain))

    def bodies(self, topic):
        with self.lock:
            return [body for t, body, _ in self.messages if t == topic]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()
