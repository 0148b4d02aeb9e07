"""Real servers on 127.0.0.1 for `kmc demo` and the tests, started on free loopback ports,
waited for, and stopped afterwards (and by the kernel if we die first).

- `Mosquitto`: the MQTT broker (Debian's package); `ward_broker()` gives the demo one, or amqtt
  (an embedded Python broker) where Mosquitto is not installed.
- `LocalInfluxDB`: an InfluxDB 1.x server (Debian's `influxd`), with `query`/`count` helpers.
- `VictoriaMetrics`: a real server of the InfluxDB v2 write API.
- `local_sink()`: an in-process `kmc sink` from such a broker into such an InfluxDB.
- `free_port`, `wait_port`, `stop_process`, `die_with_parent`: the plumbing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kmc_host.sink.service import Sink


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, wait, and SIGKILL only if it will not stop: servers and our own services."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent() -> None:
    """preexec_fn for the servers we start: the kernel stops them when we die, even by SIGKILL
    (Linux PR_SET_PDEATHSIG), so no broker or database outlives a killed demo or test. They
    also run in a session of their own (start_new_session): a Ctrl-C at the terminal reaches
    only us, and we stop them in order after the services that use them."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for the demo's broker, and the tests' servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """A server process of ours: its output in `log`, in a session of its own (a terminal's
    Ctrl-C reaches only us, and we stop it after the services that use it), dying with us."""

    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def _launch(self, argv: list[str]) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=log, preexec_fn=die_with_parent, start_new_session=True
            )

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def _mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    return found or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Mosquitto(_Server):
    """A Mosquitto broker on 127.0.0.1, anonymous, logging to `workdir`/mosquitto.log; sessions
    kept across a restart only with `persistence=True` (as a ward's broker is configured)."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        persistence: bool = False,
        extra: str = "",
    ) -> None:
        """`extra`: more configuration, appended (a bridge section)."""
        binary = _mosquitto_binary()
        if binary is None:
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
            # Mosquitto drops QoS 1 messages beyond 1000 queued per client by default: a
            # subscriber that falls behind for a moment (the sink) would lose them
            f"max_queued_messages 1000000\n{keep}{extra}"
        )
        self.log = workdir / "mosquitto.log"

    @staticmethod
    def installed() -> bool:
        return _mosquitto_binary() is not None

    def start(self) -> Mosquitto:
        self._launch([self.binary, "-c", str(self.config)])
        try:
            wait_port(self.port)
        except BaseException:
            self.stop()
            raise
        return self


@contextlib.contextmanager
def ward_broker(workdir: Path, external: int | None = None) -> Iterator[tuple[int, str]]:
    """A broker on 127.0.0.1: `external` (a port) if given, else Mosquitto if installed, else
    amqtt in a thread."""
    if external is not None:
        wait_port(external)
        yield external, "the broker given"
        return
    if Mosquitto.installed():
        broker = Mosquitto(workdir).start()
        try:
            yield broker.port, "Mosquitto"
        finally:
            broker.stop()
        return
    port = free_port()
    try:
        from amqtt.broker import Broker
    except ImportError:
        raise RuntimeError(
            "no MQTT broker: apt-get install mosquitto, or pip install amqtt"
        ) from None
    loop = asyncio.new_event_loop()
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    broker = Broker(config, loop=loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(10)
    try:
        wait_port(port)
        yield port, "amqtt (embedded)"
    finally:
        asyncio.run_coroutine_threadsafe(broker.shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:g} s")


class LocalInfluxDB(_Server):
    """An InfluxDB 1.x server (Debian's `influxd`) on 127.0.0.1 with its data in `workdir`;
    stop() then start() keeps the data, as a real restart does."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("influxd") or "/usr/bin/influxd"
        if not Path(binary).exists():
            raise RuntimeError("influxd is not installed (apt-get install influxdb; .ci/run does)")
        self.binary = binary
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = workdir / "influxdb"
        self.config = workdir / "influxdb.conf"
        self.config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{root}/meta"\n'
            f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n'
            "  query-log-enabled = false\n  trace-logging-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )
        self.log = workdir / "influxdb.log"

    @staticmethod
    def installed() -> bool:
        return bool(shutil.which("influxd")) or Path("/usr/bin/influxd").exists()

    def start(self) -> LocalInfluxDB:
        self._launch([self.binary, "-config", str(self.config)])
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/ping", timeout=1).close()
                return self
            except OSError:
                if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"influxd did not start; see {self.log}") from None
                time.sleep(0.1)

    def query(self, q: str, db: str = "kmc") -> list[dict]:
        """InfluxQL `q` on database `db`: the result's series (times in ms)."""
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


class VictoriaMetrics(_Server):
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

    def start(self) -> VictoriaMetrics:
        self._launch(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.data}",
                "-retentionPeriod=100y",
            ]
        )
        wait_port(self.port)
        return self

    def export(self, match: str) -> list[dict]:
        urllib.request.urlopen(f"{self.url}/internal/force_flush").close()
        q = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{q}") as resp:
            return [json.loads(ln) for ln in resp.read().decode().splitlines() if ln]


def local_sink(data_dir: Path, broker_port: int, influx_url: str, client_id: str) -> Sink:
    """An in-process `kmc sink` from the broker on a loopback port into the `kmc` database of a
    local InfluxDB, started and subscribed (RuntimeError if it cannot subscribe in 10 s)."""
    from kmc_host.mqtt import BrokerConfig
    from kmc_host.sink.config import SinkConfig
    from kmc_host.sink.influx import InfluxConfig
    from kmc_host.sink.service import Sink

    sink = Sink(
        SinkConfig(
            data_dir,
            BrokerConfig(port=broker_port, client_id=client_id),
            InfluxConfig(url=influx_url, database="kmc"),
            create_database=True,
        )
    )
    sink.start()
    if not sink.subscribed.wait(10):
        sink.stop()
        raise RuntimeError(f"the sink could not subscribe to the broker on port {broker_port}")
    return sink
