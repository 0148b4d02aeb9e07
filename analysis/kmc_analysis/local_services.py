"""Local servers on 127.0.0.1 for `kmc demo` and the tests: free ports, an MQTT broker and an
InfluxDB 1.x server, started on loopback, waited for, and stopped afterwards.

Mosquitto and InfluxDB come from Debian's packages when installed; without Mosquitto the demo
uses amqtt (an embedded Python broker), without InfluxDB it keeps samples in a file instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
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


@contextlib.contextmanager
def ward_broker(workdir: Path, external: int | None = None) -> Iterator[tuple[int, str]]:
    """A broker on 127.0.0.1: `external` (a port) if given, else Mosquitto if installed, else
    amqtt in a thread."""
    if external is not None:
        wait_port(external)
        yield external, "the broker given"
        return
    port = free_port()
    mosquitto = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"
            # Mosquitto drops QoS 1 messages beyond 1000 queued per client by default: a
            # subscriber that falls behind for a moment (the sink) would lose them
            "max_queued_messages 1000000\n"
        )
        proc = subprocess.Popen(
            [mosquitto, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        try:
            wait_port(port)
            yield port, "Mosquitto"
        finally:
            stop_process(proc)
        return
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


class LocalInfluxDB:
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
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def installed() -> bool:
        return bool(shutil.which("influxd")) or Path("/usr/bin/influxd").exists()

    def start(self) -> LocalInfluxDB:
        log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(self.config)],
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/ping", timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"influxd did not start; see {self.log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


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
