"""deploy/: the Grafana dashboard's queries run against a real InfluxDB holding the documented
example messages (docs/mqtt.md through the sink's schema), and the example configs load."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import documented_examples
from kmc_host.gateway.config import load_config
from kmc_host.mqtt import STRAP_LEAVES
from kmc_host.sink.config import load_sink_config
from kmc_host.sink.influx import InfluxConfig, InfluxQL, V1Writer
from kmc_host.sink.schema import to_lines
from kmc_host.ward.config import load_ward_config
from servers import InfluxDB

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "kmc-ward-dashboard.json"


def documented_messages() -> list[tuple[str, bytes]]:
    """Every JSON example of docs/mqtt.md about a strap, with the topic of its section."""
    return [
        (f"kmc/site1/ward-a/{obj['strap']}/{leaf}", json.dumps(obj).encode())
        for leaf, obj in documented_examples()
        if leaf in STRAP_LEAVES
    ]


def grafana_to_influxql(query: str) -> str:
    """What Grafana sends for 'All' variables, a 3-day range around the examples (10 July 2026)
    and a 1-minute interval."""
    query = re.sub(r"/\^\$(site|ward|infant)\$/", "/^.*$/", query)
    window = "time >= '2026-07-09T00:00:00Z' AND time < '2026-07-12T00:00:00Z'"
    return query.replace("$timeFilter", window).replace("$__interval", "1m")


@pytest.fixture(scope="module")
def influx(tmp_path_factory):
    server = InfluxDB(tmp_path_factory.mktemp("influx")).start()
    cfg = InfluxConfig(url=server.url, database="kmc")
    InfluxQL(cfg).run("CREATE DATABASE kmc")
    messages = documented_messages()
    assert {t.rsplit("/", 1)[1] for t, _ in messages} == {
        "samples",
        "state",
        "alert",
        "daily",
        "session",
    }
    V1Writer(cfg).write([ln for t, b in messages for ln in to_lines(t, b)])
    yield InfluxQL(cfg)
    server.stop()


def test_the_documented_examples_store_as_the_schema_says(influx):
    assert influx.run('SELECT count("seq") FROM "kmc_sample"')[0]["values"][0][1] == 2
    alert = influx.run('SELECT * FROM "kmc_alert"')[0]
    assert len(alert["values"]) == 1  # active and ended: one episode, one point
    row = dict(zip(alert["columns"], alert["values"][0], strict=True))
    assert row["state"] == "ended" and row["raised_time"] == 1783685658


def test_every_dashboard_query_runs_and_finds_data(influx):
    dash = json.loads(DASHBOARD.read_text())
    for var in dash["templating"]["list"]:
        series = influx.run(grafana_to_influxql(var["query"]))
        assert series and series[0]["values"], var["name"]
    for panel in dash["panels"]:
        for target in panel["targets"]:
            series = influx.run(grafana_to_influxql(target["query"]))
            assert series, f"panel {panel['title']!r} found nothing"
            assert any(v is not None for s in series for row in s["values"] for v in row[1:])


def test_example_configs_load(tmp_path):
    for name in ("mqtt-gateway.pw", "mqtt-sink.pw", "influx-sink.pw", "mqtt-ward.pw"):
        (tmp_path / name).write_text("secret\n")
    (tmp_path / "ward.pin").write_text("482916\n")
    for name, load in (
        ("gateway.toml", load_config),
        ("sink.toml", load_sink_config),
        ("ward.toml", load_ward_config),
    ):
        text = (ROOT / "deploy" / name).read_text().replace("/etc/kmc/", f"{tmp_path}/")
        (tmp_path / name).write_text(text)
        cfg = load(tmp_path / name)
        assert cfg.broker.password == "secret"
    influxd = subprocess.run(
        ["influxd", "config", "-config", str(ROOT / "deploy" / "influxdb" / "influxdb.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert influxd.returncode == 0, influxd.stderr
    assert 'bind-address = "127.0.0.1:8086"' in influxd.stdout
