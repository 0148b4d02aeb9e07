"""Real servers for tests, started on free loopback ports and stopped afterwards."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from kmc_analysis.local_services import (
    LocalInfluxDB,
    die_with_parent,
    free_port,
    stop_process,
    wait_port,
)
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
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\nuser root\n"
            f"max_queued_messages 100000\n{keep}"
        )
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class Listener(TopicRecorder):
    """The tests' subscriber: everything under kmc/#."""

    def __init__(self, port: int, topic: str = "kmc/#") -> None:
        super().__init__(port, topic, client_id=f"test-listener-{port}")


class InfluxDB(LocalInfluxDB):
    """The tests' InfluxDB 1.x: the demo's local server plus query helpers."""

    def query(self, q: str, db: str = "kmc") -> list[dict]:
        url = f"{self.url}/query?" + urllib.parse.urlencode({"db": db, "q": q, "epoch": "ms"})
        with urllib.request.urlopen(urllib.request.Request(url, method="POST")) as resp:
            body = json.loads(resp.read())
        for r in body["results"]:
            if "error" in r:
                raise RuntimeError(r["error"])
        return [s for r in body["results"] for s in r.get("series", [])]

    def count(self, measurement: str, field: str, where: str = "", db: str = "kmc") -> int:
        series = self.query(f'SELECT count("{field}") FROM "{measurement}" {where}', db)
        return int(series[0]["values"][0][1]) if series else 0


class VictoriaMetrics:
    """VictoriaMetrics (Debian `victoria-metrics`): a real server for the InfluxDB v2 write API
    (`/api/v2/write`, as influxdb-client sends it); read back with `export()`."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        if not Path(binary).exists():
            raise RuntimeError("victoria-metrics is not installed (.ci/run installs it)")
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = workdir / "vm-data"
        self.log = workdir / "victoria-metrics.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VictoriaMetrics:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data}",
                "-retentionPeriod=100y",
            ],
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        wait_port(self.port)
        return self

    def export(self, match: str) -> list[dict]:
        urllib.request.urlopen(f"{self.url}/internal/force_flush").close()
        q = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{q}") as resp:
            return [json.loads(ln) for ln in resp.read().decode().splitlines() if ln]

    stop = Mosquitto.stop


RADIO = Path(__file__).resolve().parent / "faults" / "radio.py"


class Radio:
    """A ward's air in its own process (tests/faults/radio.py): `straps` emulated straps
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
