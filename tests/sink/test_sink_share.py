"""Two `kmc sink` processes share one broker's messages (`[sink] share_group`, an MQTT shared
subscription on a real Mosquitto) into one real InfluxDB; the production gateway publishes
(without BLE: test_sink's WardGateway). One sink is SIGKILLed mid-stream and restarted, as
systemd restarts it: every sample is in InfluxDB once, and both sinks took a share."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from test_sink import STRAPS, WardGateway, samples_in_db, start_sink, wait_for

from kmc_host.sink.config import load_sink_config
from kmc_host.tomlconf import ConfigError
from kmc_testbed.servers import stop_process
from servers import InfluxDB, Listener, Mosquitto

pytestmark = pytest.mark.usefixtures("mqtt_contract")

SAMPLES = 1800  # per strap: WardGateway's 30 min at 1 Hz, 180 notifications of 10


def sink_toml(tmp_path: Path, name: str, broker: int, influx: str, group: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'[sink]\ndata_dir = "{tmp_path / name}"\nmax_backoff_s = 2\nshare_group = "{group}"\n'
        f'[mqtt]\nport = {broker}\nclient_id = "{name}"\n'
        f'[influx]\napi = "v1"\nurl = "{influx}"\ndatabase = "kmc"\ncreate_database = true\n'
    )
    return path


def spooled_by(log: Path) -> int:
    """Messages a sink took since its last start, from its log's stop line."""
    found = re.findall(r"stopped: SinkStats\(received=(\d+)", log.read_text())
    assert found, f"no stop line in {log}"
    return int(found[-1])


def test_two_sinks_share_the_messages_and_one_killed_loses_nothing(tmp_path: Path):
    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq").start()
    influx = InfluxDB(tmp_path).start()
    configs = {
        name: sink_toml(tmp_path, name, broker.port, influx.url, "kmc-sinks")
        for name in ("sink-a", "sink-b")
    }
    logs = {name: tmp_path / f"{name}.log" for name in configs}
    sinks = {name: start_sink(configs[name], logs[name]) for name in configs}
    every = Listener(broker.port, "kmc/+/+/+/+")  # not shared: every message the sinks get
    gateway = None
    try:
        wait_for(
            lambda: all("sink connected" in log.read_text() for log in logs.values()),
            30,
            "both sinks connected",
        )
        gateway = WardGateway(tmp_path, broker.port)
        gateway.publish(0, 60)
        sinks["sink-a"].send_signal(signal.SIGKILL)  # mid-stream: some of its share unacked
        sinks["sink-a"].wait()
        gateway.publish(60, 120)  # only b is there; a's share queues for a's session
        sinks["sink-a"] = start_sink(configs["sink-a"], logs["sink-a"])  # systemd restarts it
        gateway.publish(120, SAMPLES // 10)
        want = {s: list(range(SAMPLES)) for s in STRAPS}
        wait_for(
            lambda: {s: sorted(v) for s, v in samples_in_db(influx).items()} == want,
            120,
            "every sample in InfluxDB",
        )
        stored = samples_in_db(influx)
        assert all(len(v) == len(set(v)) == SAMPLES for v in stored.values())
        total = len(every.bodies())
    finally:
        every.close()
        if gateway is not None:
            gateway.close()
        for sink in sinks.values():
            stop_process(sink, timeout=15)
        influx.stop()
        broker.stop()
    took = {name: spooled_by(log) for name, log in logs.items()}
    print(f"\nof {total} messages, each sink took (a: since its restart): {took}")
    # shared: b, which ran throughout, did not get every message, and a got its queued share
    # after the restart (without share_group each sink gets all of them)
    assert 0 < took["sink-b"] < total and took["sink-a"] > 0, (total, took)
    for log in logs.values():
        assert "Traceback" not in log.read_text()


def test_share_group_is_checked(tmp_path: Path):
    for bad in ("a/b", "x+", "#", "", " a"):
        path = sink_toml(tmp_path, "s", 1883, "http://127.0.0.1:8086", bad)
        if bad == "":
            assert load_sink_config(path).share_group == ""  # every message to this sink
            continue
        with pytest.raises(ConfigError, match="share_group") as err:
            load_sink_config(path)
        assert "[sink]" in str(err.value) and str(path) in str(err.value)
    ok = load_sink_config(sink_toml(tmp_path, "s", 1883, "http://127.0.0.1:8086", "kmc-sinks_2"))
    assert ok.share_group == "kmc-sinks_2"
