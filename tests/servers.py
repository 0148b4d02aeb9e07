"""The tests' servers: the testbed's (Mosquitto, InfluxDB, VictoriaMetrics), the tests'
subscriber, and a ward's air in a process of its own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from kmc_testbed.recorder import TopicRecorder
from kmc_testbed.servers import LocalInfluxDB as InfluxDB
from kmc_testbed.servers import Mosquitto, VictoriaMetrics, free_port, wait_port

__all__ = ["InfluxDB", "Listener", "Mosquitto", "Radio", "VictoriaMetrics"]


class Listener(TopicRecorder):
    """The tests' subscriber: everything under kmc/#."""

    def __init__(self, port: int, topic: str = "kmc/#") -> None:
        super().__init__(port, topic, client_id=f"test-listener-{port}")


RADIO = Path(__file__).resolve().parent / "integration" / "faults" / "radio.py"


class Radio:
    """A ward's air in its own process (tests/integration/faults/radio.py): `straps` emulated straps
    sampling at 1 Hz in real time, with the gateway's controller served as HCI on a TCP port
    (`kmc gateway` with `[ble] hci = "tcp-client:127.0.0.1:<hci>"`) and a control port."""

    def __init__(self, work: Path, straps: int) -> None:
        self.hci, self.ctl = free_port(), free_port()
        self.log = (work / "radio.log").open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(RADIO),
                "--hci-port",
                str(self.hci),
                "--control-port",
                str(self.ctl),
                "--dir",
                str(work / "straps"),
                "--straps",
                str(straps),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_port(self.ctl, 60)
        self.started = time.monotonic()
        self.sock = socket.create_connection(("127.0.0.1", self.ctl))
        self.io = self.sock.makefile("rw")

    def ask(self, **cmd) -> dict:
        self.io.write(json.dumps(cmd) + "\n")
        self.io.flush()
        return json.loads(self.io.readline())

    def status(self) -> dict[str, dict]:
        return self.ask(cmd="status")["straps"]

    def at(self, second: float) -> None:
        """Wait until `second` seconds into the run."""
        time.sleep(max(0.0, self.started + second - time.monotonic()))

    def close(self) -> None:
        self.sock.close()
        self.proc.kill()
        self.proc.wait()
