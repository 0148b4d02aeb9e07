"""The tests' servers: the testbed's (Mosquitto, InfluxDB, VictoriaMetrics), the tests'
subscriber, a ward's air in a process of its own, and a network link that can be cut."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from kmc_testbed.recorder import TopicRecorder
from kmc_testbed.servers import LocalInfluxDB as InfluxDB
from kmc_testbed.servers import Mosquitto, VictoriaMetrics, free_port, wait_port

__all__ = ["CuttableLink", "InfluxDB", "Listener", "Mosquitto", "Radio", "VictoriaMetrics"]


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


class CuttableLink:
    """A TCP link from a port of its own to 127.0.0.1:`target` that can be cut and mended: the
    network between two brokers (a bridge) going down and coming back. Cut, every connection
    through it is closed and nothing listens; mended, it listens on the same port again."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.connections = 0  # accepted, over its life
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def mend(self) -> CuttableLink:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    start = mend

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (a close alone does not)
            listener.close()
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                near, _ = listener.accept()
            except OSError:  # cut
                return
            try:
                far = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                near.close()
                continue
            with self._lock:
                self._open += [near, far]
                self.connections += 1
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
