"""Real servers for tests, started on free loopback ports and stopped afterwards."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kmc_analysis.live_demo import free_port, wait_port
from kmc_host.gateway.recorder import TopicRecorder


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


class Listener(TopicRecorder):
    """The tests' subscriber: everything under kmc/#."""

    def __init__(self, port: int, topic: str = "kmc/#") -> None:
        super().__init__(port, topic, client_id=f"test-listener-{port}")
