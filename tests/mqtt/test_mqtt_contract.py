"""The MQTT contract (kmc_host.mqtt, docs/mqtt.md) held together: each leaf's JSON Schema and its
message type have the same fields; bytes parse to the whole typed message and encode back to the
same bytes; the documented examples keep to the schemas and the doc's field tables are the ones
the schemas generate; the gateway's payloads keep to the schemas (here, and in the gateway and
sink tests through the `mqtt_contract` fixture); what breaks the contract is refused by name."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, contract_errors, documented_examples, sink_examples, validator
from kmc_host import protocol as P
from kmc_host.clinical import (
    ALARMS,
    ALERT_KINDS,
    HIGH,
    MEDIUM,
    PRIORITIES,
    SIGNAL_LOST,
    STRAP_OFF,
)
from kmc_host.detect import DetectorConfig
from kmc_host.errors import BadInput
from kmc_host.gateway.config import GatewayConfig, StrapEntry
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import (
    ACTIVE,
    ENDED,
    LEAVES,
    MESSAGE_TYPES,
    OFFLINE,
    ONLINE,
    SCHEMA_VERSION,
    SINK_STATES,
    STATES,
    STRAP_LEAVES,
    AlertMessage,
    BrokerConfig,
    DailyMessage,
    MessageError,
    SamplesMessage,
    SessionMessage,
    SinkStatusMessage,
    StateMessage,
    StatusMessage,
    TopicTree,
    read,
    sink_status_topic,
)
from kmc_host.mqtt.schema import field_table, generated_leaves, main, render_doc, schema
from kmc_host.ward.model import MessageIgnored
from packets import T2000, notifications, records

DOC = ROOT / "docs" / "mqtt.md"
T = "kmc/site1/ward-a/KMC-0001"
IDS = {"strap": "KMC-0001", "bed": "3", "infant": "INF-7Q2X"}


def compact(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# -- schemas and message types: the same fields


@pytest.mark.parametrize("leaf", LEAVES)
def test_each_schema_has_its_message_types_fields_in_wire_order(leaf):
    s = schema(leaf)
    cls = MESSAGE_TYPES[leaf]
    names = [f.name for f in fields(cls)]
    assert list(s["properties"]) == ["v", *names]
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    assert set(s["required"]) == {"v", *required}
    assert s["properties"]["v"]["const"] == SCHEMA_VERSION
    assert s["additionalProperties"] is False and s["type"] == "object"
    assert all(p.get("description") for p in s["properties"].values())


def test_the_schemas_name_the_codes_of_the_code():
    assert schema("state")["properties"]["state"]["enum"] == list(STATES)
    assert schema("status")["properties"]["state"]["enum"] == [ONLINE, OFFLINE]
    alert = schema("alert")
    assert alert["properties"]["state"]["enum"] == [ACTIVE, ENDED]
    assert alert["properties"]["kind"]["examples"] == list(ALERT_KINDS)
    for kind in ALERT_KINDS:  # each kind keeps to the schema's pattern and is read
        body = AlertMessage(
            **IDS,
            kind=kind,
            state=ACTIVE,
            start="2026-07-10T12:13:17Z",
            raised="2026-07-10T12:14:18Z",
        ).encode()
        assert contract_errors(f"{T}/alert", body) == []
    listed = re.search(
        r"^Kinds: ((?:`\w+`,\s*)+)(`\w+`) \(rules: docs/detector.md\), and (`\w+`)",
        DOC.read_text(),
        re.M,
    )
    assert listed, "docs/mqtt.md: no 'Kinds: ...' list under ## alert"
    assert set(re.findall(r"`(\w+)`", "".join(listed.groups()))) == set(ALERT_KINDS)


def test_an_alert_carries_its_kinds_priority_and_one_without_it_is_read_with_it():
    """Every alert the gateway writes says its alarm priority (clinical.ALARMS); an alert from
    a gateway before `priority` (none in the payload) is read with its kind's priority, and an
    unknown kind (a newer gateway's) as medium, never dropped."""
    for alarm in ALARMS:
        msg = AlertMessage(**IDS, kind=alarm.kind, state=ACTIVE, start="2026-07-10T12:13:17Z")
        assert json.loads(msg.encode())["priority"] == alarm.priority
    old = (
        b'{"v":1,"strap":"KMC-0001","kind":"moderate_hypothermia","state":"active",'
        b'"start":"2026-07-10T12:13:17Z","extreme_c":35.8}'
    )
    assert AlertMessage.parse(old, f"{T}/alert").priority == HIGH
    newer = old.replace(b"moderate_hypothermia", b"apnoea")
    assert AlertMessage.parse(newer, f"{T}/alert").priority == MEDIUM
    newer_high = newer.replace(b'"extreme_c"', b'"priority":"high","extreme_c"')
    assert AlertMessage.parse(newer_high, f"{T}/alert").priority == HIGH  # the gateway's word
    unknown = old.replace(b'"extreme_c"', b'"priority":"urgent","extreme_c"')
    assert AlertMessage.parse(unknown, f"{T}/alert").priority == HIGH  # kept, with the kind's
    assert {a.priority for a in ALARMS} == set(PRIORITIES)


@pytest.mark.parametrize(("leaf", "example"), documented_examples())
def test_each_field_the_schema_requires_is_required_by_the_message_type(leaf, example):
    """Leaving out a field: refused by the schema exactly when the message type refuses it."""
    topic = f"kmc/site1/ward-a/gateway/{leaf}" if leaf == "status" else f"{T}/{leaf}"
    for name in example:
        less = {k: v for k, v in example.items() if k != name}
        body = compact(less)
        schema_ok = validator(leaf).is_valid(less)
        try:
            MESSAGE_TYPES[leaf].parse(body, topic)
            parsed = True
        except MessageError:
            parsed = False
        assert schema_ok == parsed, (leaf, name)


# -- bytes in, the whole typed message out, the same bytes back

CASES = [
    (
        f"{T}/samples",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","seq":[1200,1201],'
        b'"time":[1783684800.0,1783684801.0],"infant_c":[36.81,null],"outer_c":[34.9,34.9],'
        b'"contact":[1,0],"worn":[1,1],"battery_v":[3.91,null],"clock_set":[true,false]}',
        SamplesMessage(
            **IDS,
            seq=[1200, 1201],
            time=[1783684800.0, 1783684801.0],
            infant_c=[36.81, None],
            outer_c=[34.9, 34.9],
            contact=[1, 0],
            worn=[1, 1],
            battery_v=[3.91, None],
            clock_set=[True, False],
        ),
    ),
    (  # an older gateway's samples: no battery, no clock flags (all set)
        f"{T}/samples",
        b'{"v":1,"strap":"KMC-0001","bed":"","infant":"","seq":[7],"time":[1783684800.0],'
        b'"infant_c":[36.5],"outer_c":[null],"contact":[0],"worn":[1]}',
        SamplesMessage(
            strap="KMC-0001",
            seq=[7],
            time=[1783684800.0],
            infant_c=[36.5],
            outer_c=[None],
            contact=[0],
            worn=[1],
        ),
    ),
    (
        f"{T}/state",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","state":"worn","infant_c":null,'
        b'"battery_v":3.9,"last_seq":59,"time":1783684859.0,"kmc_hours_today":0.0,'
        b'"session_start":null,"alerts":[]}',
        StateMessage(
            **IDS,
            state="worn",
            battery_v=3.9,
            last_seq=59,
            time=1783684859.0,
            kmc_hours_today=0.0,
        ),
    ),
    (
        f"{T}/alert",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","kind":"cold_stress",'
        b'"state":"active","start":"2026-07-10T12:13:17Z","extreme_c":35.5,'
        b'"raised":"2026-07-10T12:14:18Z","priority":"medium"}',
        AlertMessage(
            **IDS,
            kind="cold_stress",
            state=ACTIVE,
            start="2026-07-10T12:13:17Z",
            extreme_c=35.5,
            raised="2026-07-10T12:14:18Z",
        ),
    ),
    (  # no temperature to a strap taken off: null
        f"{T}/alert",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","kind":"strap_off",'
        b'"state":"ended","start":"2026-07-10T12:05:00Z","end":"2026-07-10T12:11:40Z",'
        b'"extreme_c":null,"priority":"low"}',
        AlertMessage(
            **IDS,
            kind=STRAP_OFF,
            state=ENDED,
            start="2026-07-10T12:05:00Z",
            end="2026-07-10T12:11:40Z",
        ),
    ),
    (  # none to a lost signal: left out
        f"{T}/alert",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","kind":"signal_lost",'
        b'"state":"active","start":"2026-07-10T12:16:40Z","raised":"2026-07-10T12:20:10Z",'
        b'"priority":"medium"}',
        AlertMessage(
            **IDS,
            kind=SIGNAL_LOST,
            state=ACTIVE,
            start="2026-07-10T12:16:40Z",
            raised="2026-07-10T12:20:10Z",
        ),
    ),
    (
        f"{T}/alert",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","kind":"signal_lost",'
        b'"state":"ended","start":"2026-07-10T12:16:40Z","end":"2026-07-10T12:23:30Z",'
        b'"priority":"medium"}',
        AlertMessage(
            **IDS,
            kind=SIGNAL_LOST,
            state=ENDED,
            start="2026-07-10T12:16:40Z",
            end="2026-07-10T12:23:30Z",
        ),
    ),
    (
        f"{T}/session",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","start":"2026-07-10T09:10:00Z",'
        b'"end":"2026-07-10T11:42:30Z","duration_min":152.5,"effective":true}',
        SessionMessage(
            **IDS,
            start="2026-07-10T09:10:00Z",
            end="2026-07-10T11:42:30Z",
            duration_min=152.5,
            effective=True,
        ),
    ),
    (
        f"{T}/daily",
        b'{"v":1,"strap":"KMC-0001","bed":"3","infant":"INF-7Q2X","date":"2026-07-10",'
        b'"kmc_hours":6.25,"monitored_hours":11.9}',
        DailyMessage(**IDS, date="2026-07-10", kmc_hours=6.25, monitored_hours=11.9),
    ),
    ("kmc/site1/ward-a/gateway/status", b'{"v":1,"state":"online"}', StatusMessage(state=ONLINE)),
    (  # a heartbeat: the radios, one of them down, and the detector settings
        "kmc/site1/ward-a/gateway/status",
        b'{"v":1,"state":"online","time":1783684800.5,"every_s":30.0,"adapters":['
        b'{"name":"hci0","scanning":true,"down_since":null},'
        b'{"name":"usb:1","scanning":false,"down_since":"2026-07-10T11:58:20Z"}],'
        b'"detector":{"digest":"0123456789ab","axillary_offset_c":0.3,'
        b'"thresholds_c":{"cold_stress":36.4,"moderate_hypothermia":36.0}}}',
        StatusMessage(
            state=ONLINE,
            time=1783684800.5,
            every_s=30.0,
            adapters=[
                {"name": "hci0", "scanning": True, "down_since": None},
                {"name": "usb:1", "scanning": False, "down_since": "2026-07-10T11:58:20Z"},
            ],
            detector={
                "digest": "0123456789ab",
                "axillary_offset_c": 0.3,
                "thresholds_c": {"cold_stress": 36.4, "moderate_hypothermia": 36.0},
            },
        ),
    ),
    ("kmc/site1/ward-a/gateway/status", b'{"v":1,"state":"offline"}', StatusMessage(state=OFFLINE)),
]


@pytest.mark.parametrize(("topic", "raw", "expected"), CASES)
def test_bytes_parse_to_the_whole_message_and_encode_back(topic, raw, expected):
    parsed = type(expected).parse(raw, topic)
    assert parsed == expected
    assert parsed.encode() == raw
    assert type(expected).parse(expected.encode(), topic) == expected
    assert contract_errors(topic, raw) == []
    if not isinstance(expected, StatusMessage):
        origin, message = read(topic, raw, "kmc")
        assert message == expected and (origin.strap, origin.leaf) == (
            expected.strap,
            expected.LEAF,
        )


readings = st.one_of(st.none(), st.floats(-40, 60, allow_nan=False).map(lambda x: round(x, 2)))


@given(
    st.integers(1, 20).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(0, 2**32 - 1), min_size=n, max_size=n),
            st.lists(st.floats(0, 4e9, allow_nan=False), min_size=n, max_size=n),
            st.lists(readings, min_size=n, max_size=n),
            st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n),
            st.one_of(st.none(), st.lists(st.booleans(), min_size=n, max_size=n)),
        )
    ),
    st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s),
)
def test_any_samples_message_round_trips(columns, bed):
    seq, time, temps, flags, clocks = columns
    msg = SamplesMessage(
        strap="S1",
        bed=bed,
        seq=seq,
        time=time,
        infant_c=temps,
        outer_c=temps[::-1],
        contact=flags,
        worn=flags[::-1],
        battery_v=temps,
        clock_set=clocks,
    )
    assert SamplesMessage.parse(msg.encode(), "kmc/s/w/S1/samples", strap="S1") == msg


@given(
    st.sampled_from(STATES),
    readings,
    st.integers(0, 2**32 - 1),
    st.lists(st.sampled_from(ALERT_KINDS), unique=True).map(sorted),
    st.one_of(
        st.none(),
        st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
        ),
    ),
)
def test_any_state_message_round_trips(state, temp, seq, alerts, session_start):
    msg = StateMessage(
        strap="S1",
        state=state,
        infant_c=temp,
        last_seq=seq,
        time=1.7e9,
        kmc_hours_today=temp,
        session_start=session_start,
        alerts=alerts,
    )
    assert StateMessage.parse(msg.encode()) == msg


# -- what breaks the contract is refused, naming the topic and the field


@pytest.mark.parametrize(
    ("leaf", "body", "words"),
    [
        ("status", b'{"v":1,"state":"asleep"}', "status 'asleep' is not online or offline"),
        ("status", b'{"v":1,"state":"online","every_s":0}', "every_s = 0 should be above 0"),
        (
            "status",
            b'{"v":1,"state":"online","adapters":{}}',
            "adapters should be a list of at most 16",
        ),
        (
            "status",
            b'{"v":1,"state":"online","adapters":[{"name":"hci0","scanning":"no",'
            b'"down_since":null}]}',
            "adapters[0]: scanning = 'no' should be true or false",
        ),
        (
            "status",
            b'{"v":1,"state":"online","adapters":[{"name":"hci0","scanning":false,'
            b'"down_since":"yesterday"}]}',
            "adapters[0]: down_since = 'yesterday' is not an ISO 8601",
        ),
        (
            "status",
            b'{"v":1,"state":"online","detector":{"digest":"0123456789ab",'
            b'"axillary_offset_c":0,"thresholds_c":{"cold_stress":"cold"}}}',
            "detector: thresholds_c: cold_stress = 'cold' should be a number",
        ),
        (
            "status",
            b'{"v":1,"state":"online","detector":{"digest":"0123456789ab",'
            b'"axillary_offset_c":0,"thresholds_c":{}}}',
            "detector: thresholds_c = {} should be an object of kind: degrees C",
        ),
        (
            "status",
            b'{"v":1,"state":"online","detector":{"digest":"0123456789ab",'
            b'"axillary_offset_c":0,"thresholds_c":{"cold_stress":1e308}}}',
            "detector: thresholds_c: cold_stress = 1e+308 should be within 30-40 C",
        ),
        (
            "status",
            b'{"v":1,"state":"online","detector":{"digest":"0123456789ab",'
            b'"axillary_offset_c":50,"thresholds_c":{"cold_stress":36.5}}}',
            "axillary_offset_c = 50 should be within -2..2 C",
        ),
        (
            "status",
            b'{"v":1,"state":"online","detector":{"digest":"<script>",'
            b'"axillary_offset_c":0,"thresholds_c":{"cold_stress":36.5}}}',
            "digest = '<script>' should be 12 hex digits",
        ),
        (
            "status",
            b'{"v":1,"state":"online","adapters":[{"name":"' + b"x" * 65 + b'",'
            b'"scanning":true,"down_since":null}]}',
            "adapters[0]: name should be 1-64 characters",
        ),
        ("samples", b'{"v":1,"strap":"S1","seq":[1],"time":[NaN]}', "not JSON: NaN"),
        ("samples", b'{"v":1,"strap":"S1","seq":[1],"time":[1e999]}', "time holds an infinite"),
        (
            "samples",
            b'{"v":1,"strap":"S1","seq":[1],"time":[1.7e9],"infant_c":[36.0],"outer_c":[30.0],'
            b'"contact":[0],"worn":[1],"clock_set":[1]}',
            "clock_set should be a list of 1 booleans",
        ),
        ("samples", b'{"strap":"S1"}', "schema version None, expected schema version 1"),
        ("samples", b'{"v":1,"strap":7}', "strap = 7 should be a string"),
        (
            "session",
            b'{"v":1,"strap":"S1","start":"2026-07-10T09:10:00Z","end":"2026-07-10T11:42:30Z",'
            b'"duration_min":1,"effective":"yes"}',
            "effective = 'yes' should be true or false",
        ),
        (
            "state",
            b'{"v":1,"strap":"S1","state":"kmc","last_seq":1,"time":1.7e9,"session_start":"soon"}',
            "session_start = 'soon' is not an ISO 8601",
        ),
        (
            "alert",
            b'{"v":1,"strap":"S1","kind":"cold_stress","state":"active",'
            b'"start":"2026-07-10T12:13:17Z","extreme_c":"cold"}',
            "extreme_c = 'cold' should be a number",
        ),
        ("alert", b'{"v":1,"strap":"S1","kind":"cold_stress"}', "needs kind, start and state"),
        ("daily", b'{"v":1,"strap":"S1","date":"2026-07-10","kmc_hours":1}', "monitored_hours"),
    ],
)
def test_a_message_that_breaks_the_contract_is_refused_by_name(leaf, body, words):
    topic = f"kmc/site1/ward-a/{'gateway' if leaf == 'status' else 'S1'}/{leaf}"
    with pytest.raises(MessageError) as err:
        MESSAGE_TYPES[leaf].parse(body, topic)
    assert str(err.value).startswith(f"{topic}: ") and words in str(err.value)
    assert contract_errors(topic, body)  # and the schema check finds it too


def test_read_checks_the_topic_and_the_strap_in_it():
    body = compact(
        {"v": 1, "strap": "KMC-0002", "date": "2026-07-10", "kmc_hours": 1, "monitored_hours": 2}
    )
    with pytest.raises(MessageError, match="strap 'KMC-0002' in the payload does not match"):
        read(f"{T}/daily", body, "kmc")
    with pytest.raises(MessageError, match="unknown leaf 'weather'"):
        read(f"{T}/weather", body, "kmc")
    assert read("kmc/site1/ward-a/gateway/status", b"anything", "kmc") is None
    with pytest.raises(MessageError, match=r"^samples: payload is not a JSON object"):
        SamplesMessage.parse(b"[]")  # without a topic, the error names the leaf
    assert issubclass(MessageError, BadInput) and issubclass(MessageIgnored, MessageError)


def test_contract_errors_name_what_the_schema_refuses():
    """The check the gateway and sink tests run on every payload can fail: a field the schema
    does not know, a time in another format (both still read), a wrong type."""
    ok = {"v": 1, **IDS, "date": "2026-07-10", "kmc_hours": 1.0, "monitored_hours": 2.0}
    assert contract_errors(f"{T}/daily", compact(ok)) == []
    assert "Additional properties" in contract_errors(f"{T}/daily", compact(ok | {"x": 1}))[0]
    alert = {
        "v": 1,
        **IDS,
        "kind": "cold_stress",
        "state": "active",
        "start": "2026-07-10T12:13:17+00:00",
    }
    assert "does not match" in contract_errors(f"{T}/alert", compact(alert))[0]
    assert contract_errors(f"{T}/daily", compact(ok | {"kmc_hours": "1"}))
    spaced = json.dumps(ok).encode()  # valid, but not what the gateway writes
    assert "encodes back as" in contract_errors(f"{T}/daily", spaced)[0]


# -- docs/mqtt.md: examples keep to the schemas, field tables generated from them


def test_the_documented_examples_keep_to_the_schemas_and_show_the_wire_order():
    examples = documented_examples()
    assert {leaf for leaf, _ in examples} == set(LEAVES)
    for leaf, obj in examples:
        topic = (
            "kmc/site1/ward-a/gateway/status"
            if leaf == "status"
            else f"kmc/s/w/{obj['strap']}/{leaf}"
        )
        assert contract_errors(topic, compact(obj)) == [], (leaf, obj)


def test_the_doc_says_the_schema_version_and_the_retained_leaves():
    text = DOC.read_text()
    assert text.startswith(f"# MQTT topics and payloads (schema version {SCHEMA_VERSION})\n")
    rows = re.findall(
        r"^\| `<prefix>/<site>/<ward>/(?:<strap>|gateway)/(\w+)` \| (yes|no) \|", text, re.M
    )
    assert sorted(leaf for leaf, _ in rows) == sorted(LEAVES)
    for leaf, retained in rows:
        assert (retained == "yes") == MESSAGE_TYPES[leaf].RETAIN, leaf


def test_the_doc_field_tables_are_generated_from_the_schemas():
    text = DOC.read_text()
    assert sorted(generated_leaves(text)) == sorted(LEAVES)
    assert render_doc(text) == text, "stale: run python -m kmc_host.mqtt.schema docs/mqtt.md"
    for leaf in LEAVES:  # each under its own heading
        section = re.search(rf"^## {leaf}\b(.*?)(?=^## |\Z)", text, re.S | re.M)
        assert section and field_table(leaf) in section.group(1), leaf


def test_a_stale_field_table_is_found_and_rewritten(tmp_path: Path, capsys):
    text = DOC.read_text()
    row = "| `kmc_hours` | number | yes |"
    assert row in text
    stale = tmp_path / "mqtt.md"
    stale.write_text(text.replace(row, "| `kmc_hours` | string | yes |"))
    assert main(["--check", str(stale)]) == 1 and "stale" in capsys.readouterr().out
    assert main([str(stale)]) == 0 and stale.read_text() == text
    assert main(["--check", str(stale)]) == 0
    cut = text.split("<!-- fields of `status`")[0]
    stale.write_text(cut)
    assert main(["--check", str(stale)]) == 1 and "status" in capsys.readouterr().out


# -- what the gateway publishes keeps to the contract


def test_every_leaf_the_gateway_publishes_is_checked(tmp_path: Path, mqtt_contract):
    """A strap in KMC, cooling, then silent for 3 min and back: samples, state, daily,
    session and alerts (thermal and signal_lost, active and ended), every one checked by the
    `mqtt_contract` fixture against its schema as the gateway queues it."""
    cfg = GatewayConfig(
        TopicTree("kmc", "site1", "ward-a"),
        "Africa/Addis_Ababa",
        tmp_path / "gw",
        BrokerConfig(port=1, client_id="t"),  # never started: messages stay in the outbox
        (StrapEntry("S1", "1", "INF-1"),),
        DetectorConfig(),
    )
    clock = {"wall": float(T2000 + P.EPOCH_2000_UNIX), "mono": 0.0}
    gw = Gateway(cfg, now=lambda: clock["wall"], elapsed=lambda: clock["mono"])
    t = np.arange(1800)
    rec = records(1800, np.where((t >= 600) & (t < 900), 3560, 3680), 3500, (t >= 60) & (t < 1200))
    stream = notifications(rec, 10)

    async def main() -> None:
        for k, packet in enumerate(stream):
            if k == 120:  # silent for 3 min
                clock["wall"] += 180
                clock["mono"] += 180
                stop = asyncio.Event()
                task = asyncio.create_task(gw._watchdog(stop, period_s=0.001))
                await asyncio.sleep(0.01)
                stop.set()
                await task
            clock["wall"] += 10
            clock["mono"] += 10
            await gw._on_batch("S1", P.decode_measurement(packet))

    asyncio.run(main())
    queued = gw.publisher.outbox.oldest(100_000)
    gw.publisher.outbox.close()
    assert [m.topic for m in queued] == mqtt_contract  # the fixture saw every message
    assert {topic.rsplit("/", 1)[1] for topic in mqtt_contract} == set(STRAP_LEAVES)
    alerts = [json.loads(m.payload) for m in queued if m.topic.endswith("/alert")]
    kinds = {(a["kind"], a["state"]) for a in alerts}
    assert {(SIGNAL_LOST, ACTIVE), (SIGNAL_LOST, ENDED), ("cold_stress", ENDED)} <= kinds


def test_the_sinks_status_documented_is_read_and_written_back_as_it_is():
    """docs/mqtt.md's sink status examples parse to SinkStatusMessage and encode to the same
    bytes; its topic has four levels, outside the strap topics' `<prefix>/+/+/+/+`."""
    examples = sink_examples()
    assert [e["state"] for e in examples] == list(SINK_STATES)[:2] + ["offline"]
    for example in examples:
        msg = SinkStatusMessage.parse(compact(example), "kmc/sink/kmc-sink/status")
        assert msg.encode() == compact(example)
    assert sink_status_topic("kmc", "kmc-sink") == "kmc/sink/kmc-sink/status"
    with pytest.raises(MessageError, match="sink status 'asleep' is not one of"):
        SinkStatusMessage.parse(b'{"v":1,"state":"asleep"}', "kmc/sink/x/status")
    with pytest.raises(MessageError, match="held = 1.5 should be an integer"):
        SinkStatusMessage.parse(b'{"v":1,"state":"stalled","held":1.5}', "kmc/sink/x/status")
    with pytest.raises(BadInput):
        sink_status_topic("kmc", "a/b")
