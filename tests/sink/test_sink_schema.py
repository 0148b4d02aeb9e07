"""The sink's pure parts: line protocol (checked against influxdb-client's Point), the schema of
each gateway message, the errors for malformed messages, and the sink's configuration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from influxdb_client import Point, WritePrecision

from kmc_host.detect import ConfigError
from kmc_host.sink.config import load_sink_config
from kmc_host.sink.influx import InfluxConfig
from kmc_host.sink.lineproto import line
from kmc_host.sink.schema import MessageError, to_lines

T = "kmc/site1/ward-a/KMC-0001"


def body(**fields) -> bytes:
    return json.dumps(
        {"v": 1, "strap": "KMC-0001", "bed": "3", "infant": "INF-7Q2X"} | fields
    ).encode()


@pytest.mark.parametrize(
    "tags, fields",
    [
        ({"strap": "S1", "site": "a b", "ward": "w,1=x"}, {"x": 1.5, "n": 3, "ok": True}),
        ({"strap": "S\\1"}, {"s": 'say "hi" \\ there', "f": -0.001}),
        ({"infant": "INF 7", "kind": "cold_stress"}, {"extreme_c": 35.61, "state": "ended"}),
    ],
)
def test_line_protocol_matches_influxdb_client(tags, fields):
    ours = line("kmc m", tags, fields, 1783684800123)
    p = Point("kmc m")
    for k, v in tags.items():
        p = p.tag(k, v)
    for k, v in fields.items():
        p = p.field(k, v)
    p = p.time(1783684800123, WritePrecision.MS)
    assert ours == p.to_line_protocol()


def test_line_leaves_out_missing_fields_and_empty_tags():
    assert (
        line("m", {"a": "", "b": "x"}, {"f": None, "g": math.nan, "h": 1.0}, 5) == "m,b=x h=1.0 5"
    )
    assert line("m", {}, {"f": None}, 5) is None


def test_samples_become_one_point_each_keyed_by_time():
    lines = to_lines(
        f"{T}/samples",
        body(
            seq=[7, 8],
            time=[1783684800.0, 1783684801.0],
            infant_c=[36.81, None],
            outer_c=[34.9, 34.9],
            contact=[1, 0],
            worn=[1, 1],
            battery_v=[3.91, 3.9],
            clock_set=[True, True],
        ),
    )
    assert lines == [
        "kmc_sample,infant=INF-7Q2X,site=site1,strap=KMC-0001,ward=ward-a "
        "battery_v=3.91,contact=1i,infant_c=36.81,outer_c=34.9,seq=7i,worn=1i 1783684800000000007",
        "kmc_sample,infant=INF-7Q2X,site=site1,strap=KMC-0001,ward=ward-a "
        "battery_v=3.9,contact=0i,outer_c=34.9,seq=8i,worn=1i 1783684801000000008",
    ]


def test_samples_with_a_repeated_time_stay_apart_and_replays_overwrite():
    """A strap clock set back (the host's clock stepped): same time, different seq, two points;
    the same message again: the same points."""
    one = body(seq=[7], time=[1783684800.0], infant_c=[36.8], outer_c=[30.0], contact=[0], worn=[1])
    two = body(
        seq=[3607], time=[1783684800.0], infant_c=[36.1], outer_c=[30.0], contact=[0], worn=[1]
    )
    stamp = lambda b: to_lines(f"{T}/samples", b)[0].rsplit(" ", 1)[1]  # noqa: E731
    assert stamp(one) != stamp(two)
    assert stamp(one) == stamp(one)


def test_samples_before_the_clock_was_set_are_kept_apart_keyed_by_seq():
    (point,) = to_lines(
        f"{T}/samples",
        body(
            seq=[3],
            time=[946684805.0],
            infant_c=[36.0],
            outer_c=[30.0],
            contact=[0],
            worn=[1],
            clock_set=[False],
        ),
    )
    assert point.startswith("kmc_sample_unclocked,") and point.endswith(" 3000000")
    assert "device_time=946684805.0" in point


def test_alert_active_and_ended_land_on_one_point():
    active = to_lines(
        f"{T}/alert",
        body(
            kind="cold_stress",
            state="active",
            start="2026-07-10T12:13:17Z",
            extreme_c=35.5,
            raised="2026-07-10T12:14:18Z",
        ),
    )
    ended = to_lines(
        f"{T}/alert",
        body(
            kind="cold_stress",
            state="ended",
            start="2026-07-10T12:13:17Z",
            end="2026-07-10T12:40:02Z",
            extreme_c=35.1,
        ),
    )
    key = lambda ln: (ln.split(" ")[0], ln.rsplit(" ", 1)[1])  # noqa: E731
    assert key(active[0]) == key(ended[0])
    assert "kind=cold_stress" in ended[0] and 'state="ended"' in ended[0]
    assert "duration_min=26.75" in ended[0] and "end_time=1783687202i" in ended[0]


def test_session_daily_and_state():
    (s,) = to_lines(
        f"{T}/session",
        body(
            start="2026-07-10T09:10:00Z",
            end="2026-07-10T11:42:30Z",
            duration_min=152.5,
            effective=True,
        ),
    )
    assert s.startswith("kmc_session,") and s.endswith(" 1783674600000000000")
    assert "effective=true" in s
    (d,) = to_lines(f"{T}/daily", body(date="2026-07-10", kmc_hours=6.25, monitored_hours=11.9))
    assert d.endswith(" 1783641600000000000") and "kmc_hours=6.25" in d
    (st,) = to_lines(
        f"{T}/state",
        body(
            state="kmc",
            infant_c=36.81,
            battery_v=3.91,
            last_seq=12,
            time=1783684801.0,
            kmc_hours_today=6.25,
            session_start=None,
            alerts=["cold_stress"],
        ),
    )
    assert (
        'state="kmc"' in st and 'alerts="cold_stress"' in st and st.endswith(" 1783684801000000000")
    )


def test_gateway_status_is_not_stored():
    assert to_lines("kmc/site1/ward-a/gateway/status", b'{"v":1,"state":"online"}') == []


@pytest.mark.parametrize(
    "topic, payload, words",
    [
        (f"{T}/samples", b"{not json", "not JSON"),
        (f"{T}/samples", b"[1,2]", "not a JSON object"),
        (f"{T}/samples", json.dumps({"v": 2, "strap": "KMC-0001"}).encode(), "schema version 2"),
        (f"{T}/samples", json.dumps({"v": 1, "strap": "OTHER"}).encode(), "does not match"),
        (f"{T}/samples", body(seq=[1], time=[1.0, 2.0]), "seq should be a list of 2"),
        (f"{T}/samples", body(seq=[1], time=[None]), "time has a null"),
        (
            f"{T}/samples",
            body(seq=[1], time=[1.7e9], infant_c=["x"], outer_c=[1.0], contact=[1], worn=[1]),
            "infant_c holds a non-number",
        ),
        (
            f"{T}/samples",
            body(seq=[1], time=[1.7e9], infant_c=[36.0], outer_c=[1.0], contact=[2], worn=[1]),
            "contact holds a value other than 0 or 1",
        ),
        (f"{T}/samples", body(seq=[-1], time=[1.7e9]), "seq holds a value"),
        (
            f"{T}/alert",
            body(kind="cold_stress", state="ended", start="2026-07-10T12:13:17Z"),
            "end = None",
        ),
        (f"{T}/alert", body(kind="cold_stress", state="active", start="yesterday"), "ISO 8601"),
        (
            f"{T}/alert",
            body(kind="x y", state="active", start="2026-07-10T12:13:17Z"),
            "not a word",
        ),
        (
            f"{T}/session",
            body(start="2026-07-10T12:00:00Z", end="2026-07-10T11:00:00Z", duration_min=1),
            "ends before it starts",
        ),
        (f"{T}/daily", body(date="10/07/2026", kmc_hours=1, monitored_hours=2), "YYYY-MM-DD"),
        (f"{T}/daily", body(date="2026-07-10", kmc_hours="1", monitored_hours=2), "kmc_hours"),
        (f"{T}/state", body(state="sleeping", time=1.7e9, last_seq=1), "not kmc, worn"),
        (f"{T}/weather", body(), "unknown leaf"),
        ("other/site1/ward-a/KMC-0001/samples", body(), "not a kmc/<site>"),
    ],
)
def test_malformed_messages_are_named(topic, payload, words):
    with pytest.raises(MessageError) as err:
        to_lines(topic, payload)
    assert words in str(err.value) and topic in str(err.value)


def test_sink_config_validates_and_reads_secrets_from_files(tmp_path: Path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    cfg_file = tmp_path / "sink.toml"
    cfg_file.write_text(
        f'[sink]\ndata_dir = "{tmp_path}/d"\n[mqtt]\nport = 1884\n'
        f'[influx]\napi = "v2"\nurl = "http://127.0.0.1:8086"\norg = "h"\nbucket = "kmc"\n'
        f'token_file = "{token}"\n'
    )
    cfg = load_sink_config(cfg_file)
    assert cfg.influx.token == "s3cret-token" and cfg.broker.client_id == "kmc-sink"
    assert "s3cret" not in repr(cfg)  # never in a log line
    monkeypatch.setenv("KMC_INFLUX_PASSWORD", "pw-from-env")
    cfg_file.write_text(f'[sink]\ndata_dir = "{tmp_path}/d"\n[influx]\nusername = "sink"\n')
    assert load_sink_config(cfg_file).influx.password == "pw-from-env"


def test_sink_spool_reserve_defaults_to_64_mb_and_takes_0(tmp_path: Path):
    f = tmp_path / "sink.toml"
    f.write_text('[sink]\ndata_dir = "d"\n[influx]\n')
    assert load_sink_config(f).spool_reserve_mb == 64.0
    f.write_text('[sink]\ndata_dir = "d"\nspool_reserve_mb = 0\n[influx]\n')
    assert load_sink_config(f).spool_reserve_mb == 0.0


@pytest.mark.parametrize(
    "text, words",
    [
        ('[sink]\ndata_dir = "d"\n[influx]\napi = "v3"\n', "api 'v3' must be v1 or v2"),
        ('[sink]\ndata_dir = "d"\n[influx]\napi = "v2"\n', "needs org and bucket"),
        ('[sink]\ndata_dir = "d"\n[influx]\nurl = "localhost:8086"\n', "must start with http"),
        ('[sink]\ndata_dir = "d"\n[influx]\ntoken = "abc"\n', "unknown key(s) token"),
        ('[sink]\ndata_dir = "d"\nbatch_lines = 0\n[influx]\n', "batch_lines must be"),
        ("[influx]\n", "[sink] section is missing"),
        ('[sink]\ndata_dir = "d"\n[mqtt]\nprefix = "a/b"\n[influx]\n', "prefix"),
        ('[sink]\ndata_dir = "d"\n[mqtt]\nclient_id = "a+b"\n[influx]\n', "client_id 'a+b'"),
        (
            '[sink]\ndata_dir = "d"\nspool_reserve_mb = 0.5\n[influx]\n',
            "spool_reserve_mb must be 0",
        ),
        ('[sink]\ndata_dir = "d"\nspool_reserve_mb = -1\n[influx]\n', "spool_reserve_mb must be 0"),
    ],
)
def test_sink_config_errors_name_the_key(tmp_path: Path, text, words):
    f = tmp_path / "sink.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_sink_config(f)
    assert words in str(err.value) and str(f) in str(err.value)


def test_influx_config_repr_hides_secrets():
    cfg = InfluxConfig(username="u", password="hunter2", token="tok")
    assert "hunter2" not in repr(cfg) and "tok'" not in repr(cfg)


def test_v2_writer_writes_through_influxdb_client_to_a_real_server(tmp_path: Path):
    """influxdb-client's /api/v2/write against VictoriaMetrics (InfluxDB 1.6 has no v2 API)."""
    from kmc_host.sink.influx import InfluxError, V2Writer
    from servers import VictoriaMetrics

    vm = VictoriaMetrics(tmp_path).start()
    try:
        cfg = InfluxConfig(url=vm.url, api="v2", org="h", bucket="kmc", token="t")
        writer = V2Writer(cfg)
        lines = to_lines(
            f"{T}/samples",
            body(
                seq=[7, 8],
                time=[1783684800.0, 1783684801.0],
                infant_c=[36.81, 36.7],
                outer_c=[34.9, 34.9],
                contact=[1, 1],
                worn=[1, 1],
            ),
        )
        writer.write(lines)
        writer.write(lines)  # a replay: same series, same timestamps
        writer.close()
        series = vm.export('{__name__="kmc_sample_infant_c"}')
        assert len(series) == 1
        assert series[0]["metric"]["strap"] == "KMC-0001"
        assert series[0]["metric"]["infant"] == "INF-7Q2X"
        assert sorted(set(series[0]["timestamps"])) == [1783684800000, 1783684801000]
        assert sorted(set(series[0]["values"])) == [36.7, 36.81]
    finally:
        vm.stop()
    down = V2Writer(InfluxConfig(url=vm.url, api="v2", org="h", bucket="kmc", token="t"))
    with pytest.raises(InfluxError) as err:
        down.write(lines)
    assert err.value.retriable and vm.url in str(err.value)
