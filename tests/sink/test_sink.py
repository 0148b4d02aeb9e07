"""`kmc sink` end to end: the real gateway publishes to a real Mosquitto, the sink (a `kmc sink`
process) writes to a real InfluxDB; exact counts through an InfluxDB restart, a sink killed with
SIGKILL and restarted, and a replay of every message."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from kmc_host import protocol as P
from kmc_host.detect import DetectorConfig
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import BrokerConfig, TopicTree
from packets import T2000, notifications, records
from servers import InfluxDB, Listener, Mosquitto

# every payload the gateway publishes in these tests keeps to the MQTT contract (conftest)
pytestmark = pytest.mark.usefixtures("mqtt_contract")

BATCH = 10  # samples per notification
SECONDS = 1800
STRAPS = {"S1": "INF-A1", "S2": "INF-B2"}


def strap_notifications(strap: int) -> list[bytes]:
    """30 min at 1 Hz: S1 in KMC from 2 to 23 min; S2 in the cot, cold (35.6 C) from 10 to 14."""
    t = np.arange(SECONDS)
    kmc = (strap == 0) & (t >= 120) & (t < 1380)
    cold = (strap == 1) & (t >= 600) & (t < 840)
    rec = records(SECONDS, np.where(cold, 3560, 3680), np.where(kmc, 3500, 2600), kmc)
    return notifications(rec, BATCH)


class WardGateway:
    """The production Gateway without BLE: batches handed in as its links would."""

    def __init__(self, work: Path, port: int) -> None:
        cfg = GatewayConfig(
            TopicTree("kmc", "site1", "ward-a"),
            "UTC",
            work / "gateway",
            BrokerConfig(port=port, client_id="test-gateway"),
            tuple(StrapEntry(s, str(k + 1), inf) for k, (s, inf) in enumerate(STRAPS.items())),
            DetectorConfig(),
        )
        self.clock = {"t": float(T2000 + P.EPOCH_2000_UNIX)}
        self.gw = Gateway(cfg, now=lambda: self.clock["t"])
        self.streams = {s: strap_notifications(k) for k, s in enumerate(STRAPS)}
        self.loop = asyncio.new_event_loop()  # one loop: the publisher's events belong to it
        self.gw.publisher.start()
        wait_for(self.gw.publisher.connected.is_set, 10, "the gateway's broker connection")

    def close(self) -> None:
        self.gw.publisher.stop()
        self.loop.close()

    def publish(self, first: int, last: int) -> None:
        """Notifications [first, last) of every strap, then wait until the broker has them."""

        async def run() -> None:
            stop = asyncio.Event()
            pump = asyncio.create_task(self.gw.publisher.run(stop))
            for k in range(first, last):
                self.clock["t"] = T2000 + P.EPOCH_2000_UNIX + (k + 1) * BATCH
                for strap, stream in self.streams.items():
                    await self.gw._on_batch(strap, P.decode_measurement(stream[k]))
                await asyncio.sleep(0)
            deadline = time.monotonic() + 30
            while self.gw.publisher.pending() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            stop.set()
            await pump
            assert self.gw.publisher.pending() == 0, "the broker did not take every message"

        self.loop.run_until_complete(run())


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - t0


def start_sink(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "kmc_host", "sink", "--config", str(config)],
        stdout=out,
        stderr=out,
    )


def spooled(data_dir: Path) -> int:
    """Messages in the sink's spool: 0 without a spool, -1 while it is being created."""
    path = data_dir / "spool.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        # the sink creates the file, then its table: a spool without one is not ready yet
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is None:
            return -1
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


@pytest.fixture
def ward(tmp_path: Path):
    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq", persistence=True).start()
    influx = InfluxDB(tmp_path).start()
    sink_dir = tmp_path / "sink"
    config = tmp_path / "sink.toml"
    config.write_text(
        f'[sink]\ndata_dir = "{sink_dir}"\nmax_backoff_s = 2\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "test-sink"\n'
        f'[influx]\napi = "v1"\nurl = "{influx.url}"\ndatabase = "kmc"\ncreate_database = true\n'
    )
    yield broker, influx, config, sink_dir
    influx.stop()
    broker.stop()


def samples_in_db(influx: InfluxDB) -> dict[str, list[int]]:
    out = {}
    for strap in STRAPS:
        series = influx.query(f"SELECT seq FROM kmc_sample WHERE strap='{strap}'")
        out[strap] = [int(v[1]) for v in series[0]["values"]] if series else []
    return out


def test_sink_end_to_end_through_restarts_and_replay(ward, tmp_path: Path) -> None:
    broker, influx, config, sink_dir = ward
    gateway = WardGateway(tmp_path, broker.port)
    listener = Listener(broker.port)  # keeps every message, for the replay at the end
    sink = start_sink(config, tmp_path / "sink.log")
    try:
        wait_for(lambda: spooled(sink_dir) == 0 and (sink_dir / "spool.db").exists(), 20, "sink")
        time.sleep(0.5)  # subscribed
        n = SECONDS // BATCH
        expected = lambda k: 2 * k * BATCH  # noqa: E731  samples of both straps

        # 1. normal flow
        gateway.publish(0, n // 3)
        wait_for(lambda: influx.count("kmc_sample", "seq") == expected(n // 3), 30, "phase 1")

        # 2. InfluxDB down while the gateway publishes: the sink spools, then catches up
        influx.stop()
        gateway.publish(n // 3, n // 2)
        wait_for(lambda: spooled(sink_dir) > 0, 20, "messages spooled on disk")
        time.sleep(2)  # a few failed writes and backoffs
        influx.start()
        took = wait_for(
            lambda: influx.count("kmc_sample", "seq") == expected(n // 2), 60, "catch-up"
        )
        print(f"InfluxDB back: caught up in {took:.1f} s")

        # 3. the sink killed (SIGKILL) while messages flow; the broker keeps its session queue
        sink.send_signal(signal.SIGKILL)
        sink.wait()
        gateway.publish(n // 2, n)
        sink = start_sink(config, tmp_path / "sink.log")
        wait_for(lambda: influx.count("kmc_sample", "seq") == expected(n), 60, "after the kill")

        # 4. replay: every message the broker ever carried, sent again
        replay = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-replay")
        replay.connect("127.0.0.1", broker.port)
        replay.loop_start()
        messages = [
            (topic, json.dumps(body).encode())
            for _, topic, body, _ in listener.records
            if "/gateway/" not in topic
        ]
        assert len(messages) > 3 * n
        for topic, body in messages:
            replay.publish(topic, body, qos=1).wait_for_publish(5)
        replay.disconnect()
        replay.loop_stop()
        time.sleep(1.0)
        wait_for(lambda: spooled(sink_dir) == 0, 30, "the replay written")
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=20)
        listener.close()
        gateway.close()

    seqs = samples_in_db(influx)
    for strap in STRAPS:  # every sample exactly once
        assert seqs[strap] == list(range(SECONDS)), strap
    assert influx.count("kmc_sample_unclocked", "seq") == 0
    sessions = influx.query("SELECT * FROM kmc_session")
    assert len(sessions) == 1 and len(sessions[0]["values"]) == 1
    row = dict(zip(sessions[0]["columns"], sessions[0]["values"][0], strict=True))
    assert row["strap"] == "S1" and row["infant"] == "INF-A1"
    assert row["time"] == (T2000 + P.EPOCH_2000_UNIX + 120) * 1000
    assert row["duration_min"] == pytest.approx(21.0, abs=0.1)
    alerts = influx.query("SELECT * FROM kmc_alert GROUP BY kind")
    kinds = {s["tags"]["kind"]: s for s in alerts}
    assert set(kinds) == {"cold_stress", "moderate_hypothermia"}
    for s in kinds.values():  # one episode each: the active and ended messages on one point
        assert len(s["values"]) == 1
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        assert row["state"] == "ended" and row["strap"] == "S2" and row["extreme_c"] == 35.6
        assert row["time"] == (T2000 + P.EPOCH_2000_UNIX + 600) * 1000
    daily = influx.query("SELECT kmc_hours, monitored_hours FROM kmc_daily GROUP BY strap")
    by_strap = {s["tags"]["strap"]: s["values"] for s in daily}
    assert len(by_strap["S1"]) == 1
    assert by_strap["S1"][0][1] == pytest.approx(21 / 60, abs=0.01)
    assert (sink_dir / "rejected.jsonl").exists() is False
    assert "Traceback" not in (tmp_path / "sink.log").read_text()
