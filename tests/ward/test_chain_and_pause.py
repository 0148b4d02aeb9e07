"""The ward model's own alarms when the chain breaks, the audio pause, and the bands from the
gateway's detector settings: the rules, without a browser (the browser test kills the real
processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmc_host.clinical import (
    ADAPTER_DOWN,
    BROKER_UNREACHABLE,
    COLD_STRESS,
    GATEWAY_OFFLINE,
    GATEWAY_SILENT,
    alarm_of,
)
from kmc_host.detect import ConfigError
from kmc_host.ward.audit import AuditLog
from kmc_host.ward.config import load_ward_config
from kmc_host.ward.model import BROKER_GRACE_S, WardModel, band

P = "kmc/site1/ward-a"
STATUS = f"{P}/gateway/status"
T0 = 1_783_684_800.0  # 2026-07-10T12:00:00Z


def body(**fields) -> bytes:
    return json.dumps({"v": 1} | fields).encode()


def online(adapters=(("hci0", True, None),), detector=None, every_s=30.0) -> bytes:
    fields = {
        "state": "online",
        "time": T0,
        "every_s": every_s,
        "adapters": [{"name": n, "scanning": s, "down_since": d} for n, s, d in adapters],
    }
    if detector is not None:
        fields["detector"] = detector
    return body(**fields)


def state(m: WardModel, strap: str, temp: float, now: float, retained=False):
    return m.on_message(
        f"{P}/{strap}/state",
        body(strap=strap, bed="1", state="worn", infant_c=temp, last_seq=1, time=now),
        now,
        retained,
    )


def cold(m: WardModel, strap: str, now: float, kind=COLD_STRESS, start="2026-07-10T12:00:00Z"):
    return m.on_message(
        f"{P}/{strap}/alert",
        body(strap=strap, kind=kind, state="active", start=start, extreme_c=35.9),
        now,
    )


def chain(m: WardModel) -> dict[str, str]:
    """The open chain alarms: source -> kind."""
    return {a.source: a.kind for a in m.alerts.values() if a.chain and a.state == "active"}


def connected(t: float = T0, silent_after_s: float = 120.0) -> WardModel:
    m = WardModel(silent_after_s=silent_after_s, started=t)
    m.broker_connected(t + 0.5)
    return m


def test_the_broker_unreachable_past_its_grace_is_a_high_alarm_and_its_return_ends_it():
    m = WardModel(started=T0)  # never connected
    assert m.tick(T0 + BROKER_GRACE_S - 1) == []
    (raised,) = m.tick(T0 + BROKER_GRACE_S)
    what, alert = raised
    assert what == "raised" and alert.kind == BROKER_UNREACHABLE and alert.priority == "high"
    assert alert.start == "2026-07-10T12:00:00Z" and alert.source == "broker"  # since the start
    assert m.tick(T0 + 60) == []  # raised once
    assert not m.snapshot(T0 + 60)["chain_ok"]
    events = m.broker_connected(T0 + 70)
    assert [(w, a.kind) for w, a in events] == [("ended", BROKER_UNREACHABLE)]
    assert alert.end == "2026-07-10T12:01:10Z"
    # a drop later: the grace counts from the drop
    m.on_message(STATUS, online(), T0 + 71)
    m.broker_lost(T0 + 100)
    assert m.tick(T0 + 109) == [] and chain(m) == {}
    assert chain(m) == {} and [a.kind for _, a in m.tick(T0 + 110)] == [BROKER_UNREACHABLE]


def test_a_gateway_that_says_offline_raises_its_alarm_and_online_ends_it():
    m = connected()
    m.on_message(STATUS, online(), T0 + 1)
    assert chain(m) == {}
    events = m.on_message(STATUS, body(state="offline"), T0 + 5)  # its last will
    assert [(w, a.kind, a.source) for w, a in events] == [("raised", GATEWAY_OFFLINE, "gateway")]
    assert alarm_of(GATEWAY_OFFLINE).priority == "high" and alarm_of(GATEWAY_OFFLINE).technical
    snap = m.snapshot(T0 + 6)
    assert not snap["chain_ok"] and snap["gateway"]["state"] == "offline"
    assert [w for w, _ in m.tick(T0 + 600)] == ["escalated"]  # offline is not also silent
    assert chain(m) == {"gateway": GATEWAY_OFFLINE}
    ended = m.on_message(STATUS, online(), T0 + 700)
    assert [(w, a.kind) for w, a in ended] == [("ended", GATEWAY_OFFLINE)]
    assert m.snapshot(T0 + 701)["chain_ok"]


def test_a_retained_offline_at_start_is_raised_with_the_gateways_time():
    m = connected()
    m.on_message(STATUS, body(state="offline", time=T0 - 3600), T0 + 1, retained=True)
    (a,) = [a for a in m.alerts.values() if a.kind == GATEWAY_OFFLINE]
    assert a.start == "2026-07-10T11:00:00Z"


def test_a_silent_gateway_is_a_high_alarm_and_retained_copies_do_not_count_as_hearing_it():
    m = connected(silent_after_s=120)
    # a restart of the ward service: the broker hands back the dead gateway's retained state
    m.on_message(STATUS, online(), T0 + 1, retained=True)
    state(m, "KMC-0001", 36.8, T0 + 1, retained=True)
    assert m.tick(T0 + 120) == []
    (raised,) = m.tick(T0 + 120.5)  # 120 s after the broker connected
    assert raised[1].kind == GATEWAY_SILENT and raised[1].start == "2026-07-10T12:00:00Z"
    tile = m.snapshot(T0 + 121)["tiles"][0]
    assert tile["state"] == "no_signal" and tile["band"] == "none"  # nothing shown as live
    ended = state(m, "KMC-0001", 36.8, T0 + 200)  # anything live from the gateway
    assert [(w, a.kind) for w, a in ended] == [("ended", GATEWAY_SILENT)]
    assert m.snapshot(T0 + 200)["tiles"][0]["state"] == "worn"
    # silent again: from the last message heard
    assert m.tick(T0 + 319) == []
    (again,) = m.tick(T0 + 320)
    assert again[1].kind == GATEWAY_SILENT and again[1].start == "2026-07-10T12:03:20Z"


def test_while_the_broker_is_unreachable_the_gateway_is_not_judged():
    m = connected(silent_after_s=60)
    m.on_message(STATUS, online(), T0 + 1)
    m.broker_lost(T0 + 2)
    kinds = {a.kind for _, a in m.tick(T0 + 300)}
    assert kinds == {BROKER_UNREACHABLE}  # not also gateway_silent: it cannot be known


def test_each_radio_not_scanning_is_an_alarm_of_its_own():
    m = connected()
    m.on_message(STATUS, online([("hci0", True, None), ("hci1", True, None)]), T0 + 1)
    down = online([("hci0", True, None), ("hci1", False, "2026-07-10T11:59:40Z")])
    (raised,) = m.on_message(STATUS, down, T0 + 30)
    a = raised[1]
    assert (a.kind, a.source, a.start, a.priority) == (
        ADAPTER_DOWN,
        "adapter hci1",
        "2026-07-10T11:59:40Z",
        "high",
    )
    assert m.snapshot(T0 + 31)["chain_ok"]  # one radio down: the beds on others stay live
    state(m, "KMC-0001", 36.8, T0 + 31)
    assert m.on_message(STATUS, down, T0 + 60) == []  # the next heartbeat: the same alarm
    both = online([("hci0", False, "2026-07-10T12:01:00Z"), ("hci1", False, None)])
    assert [e[1].source for e in m.on_message(STATUS, both, T0 + 90)] == ["adapter hci0"]
    snap = m.snapshot(T0 + 91)  # every radio down: no bed is live
    assert not snap["chain_ok"] and snap["tiles"][0]["state"] == "no_signal"
    back = m.on_message(STATUS, online([("hci0", True, None)]), T0 + 120)  # hci1 removed
    assert sorted((w, e.source) for w, e in back) == [
        ("ended", "adapter hci0"),
        ("ended", "adapter hci1"),
    ]


def test_the_chains_alarms_are_acknowledged_and_escalate_like_the_others(tmp_path: Path):
    m = WardModel(escalate_after_s=60, started=T0)
    log = AuditLog(tmp_path / "audit.db")
    for what, a in m.tick(T0 + BROKER_GRACE_S):
        log.record(what, a, T0)
    (a,) = m.alerts.values()
    assert [a.id for a in m.escalate(T0 + BROKER_GRACE_S + 60)] == [a.id]
    m.acknowledge(a.id, "JN", T0 + 100)
    log.record("acknowledged", a, T0 + 100, "JN")
    rows = [(e["event"], e["kind"], e["detail"]) for e in log.events()]
    assert rows == [
        ("raised", BROKER_UNREACHABLE, "broker"),
        ("acknowledged", BROKER_UNREACHABLE, "broker"),
    ]
    log.close()
    # a restart of the ward service: the restored alarm is ended once the broker is back
    again = WardModel(started=T0 + 200)
    (restored,) = AuditLog(tmp_path / "audit.db").alerts()
    again.alerts[restored.id] = restored
    assert [(w, x.kind) for w, x in again.broker_connected(T0 + 201)] == [
        ("ended", BROKER_UNREACHABLE)
    ]


# -- the audio pause


def test_an_audio_pause_runs_its_time_and_is_logged(tmp_path: Path):
    m = WardModel(pause_s=120.0)
    cold(m, "A", T0)
    (paused,) = m.pause_audio("JN", T0 + 10)
    assert paused[0] == "audio_paused" and m.pause.priority == "medium"
    snap = m.snapshot(T0 + 11)
    assert snap["audio_pause"] == {
        "by": "JN",
        "since": T0 + 10,
        "until": T0 + 130,
        "priority": "medium",
    }
    assert m.tick(T0 + 129) == []
    ((what, pause),) = m.tick(T0 + 130)
    assert what == "audio_pause_ended" and pause.ended == "expired" and m.pause is None
    log = AuditLog(tmp_path / "audit.db")
    log.record(*paused, T0 + 10)
    log.record(what, pause, T0 + 130)
    csv = log.csv().splitlines()
    assert (
        csv[1] == "2026-07-10T12:00:10Z,audio_paused,,,2026-07-10T12:00:10Z,JN,,120 s; open: medium"
    )
    assert csv[2] == "2026-07-10T12:02:10Z,audio_pause_ended,,,2026-07-10T12:00:10Z,JN,,expired"
    log.close()


def test_a_higher_priority_ends_the_pause_and_the_same_or_lower_does_not():
    m = WardModel(pause_s=120.0)
    cold(m, "A", T0)  # medium
    m.pause_audio("JN", T0 + 10)
    assert [w for w, _ in cold(m, "B", T0 + 20)] == ["raised"]  # another medium: still paused
    assert m.pause is not None
    events = cold(m, "C", T0 + 30, kind="moderate_hypothermia")  # high
    assert [w for w, _ in events] == ["raised", "audio_pause_ended"]
    assert events[1][1].ended == "higher priority: moderate_hypothermia C" and m.pause is None


def test_a_pause_with_no_alarm_open_is_ended_by_any_new_alarm_and_resume_ends_it_by_name():
    m = WardModel(pause_s=60.0)
    m.pause_audio("AB", T0)
    assert m.pause.priority is None
    events = cold(m, "A", T0 + 5)
    assert [w for w, _ in events] == ["raised", "audio_pause_ended"]
    m.pause_audio("AB", T0 + 10)
    ((what, pause),) = m.resume_audio("CD", T0 + 20)
    assert (what, pause.by, pause.ended) == ("audio_resumed", "CD", "resumed")
    assert m.resume_audio("CD", T0 + 21) == []  # nothing to resume


def test_a_pause_again_starts_from_now():
    m = WardModel(pause_s=60.0)
    m.pause_audio("AB", T0)
    m.pause_audio("CD", T0 + 50)
    assert (m.pause.by, m.pause.until) == ("CD", T0 + 110)
    assert m.tick(T0 + 100) == []


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("audio_pause_min = 5", 300.0),
        ("audio_pause_min = 0.5", 30.0),
        ("audio_pause_min = 6", "audio_pause_min must be within 0.5-5"),
        ("audio_pause_min = 0", "audio_pause_min must be within 0.5-5"),
        ('audio_pause_min = "2"', "audio_pause_min"),
        ("gateway_silent_after_min = 0.4", "gateway_silent_after_min must be within 0.5-60"),
        ("gateway_silent_after_min = 61", "gateway_silent_after_min must be within 0.5-60"),
        ("gateway_silent_after_min = 60", 3600.0),
    ],
)
def test_the_pause_and_silence_settings_have_their_ranges(tmp_path, monkeypatch, line, ok):
    monkeypatch.setenv("KMC_WARD_PIN", "2468")
    f = tmp_path / "ward.toml"
    f.write_text(f'[ward]\nsite = "s"\nward = "w"\ndata_dir = "{tmp_path}"\n{line}\n')
    if isinstance(ok, float):
        cfg = load_ward_config(f)
        key = line.split()[0]
        got = cfg.audio_pause_s if key == "audio_pause_min" else cfg.gateway_silent_after_s
        assert got == ok
    else:
        with pytest.raises(ConfigError) as err:
            load_ward_config(f)
        assert ok in str(err.value) and str(f) in str(err.value)


# -- one set of thresholds: the gateway's


def test_tiles_are_coloured_with_the_gateways_thresholds_and_offset():
    m = WardModel()
    state(m, "A", 36.45, T0)
    assert m.snapshot(T0)["tiles"][0]["band"] == "cold"  # the defaults: below 36.5
    tuned = {
        "digest": "0123456789ab",
        "axillary_offset_c": 0.2,
        "thresholds_c": {"cold_stress": 36.6, "moderate_hypothermia": 36.0},
    }
    m.on_message(STATUS, online(detector=tuned), T0 + 1)
    snap = m.snapshot(T0 + 1)
    assert snap["tiles"][0]["band"] == "normal"  # 36.45 + 0.2 = 36.65, above 36.6
    assert snap["gateway"]["detector"] == tuned and snap["gateway"]["settings_from"] == "gateway"
    bands = {b["kind"]: b["threshold_c"] for b in m.detail("A")["bands"]}
    assert bands == {"cold_stress": 36.4, "moderate_hypothermia": 35.8, "hyperthermia": 37.3}
    # a last will carries no settings: the gateway's last ones stay
    m.on_message(STATUS, body(state="offline"), T0 + 2)
    assert m.snapshot(T0 + 2)["gateway"]["detector"] == tuned


def test_band_reads_each_threshold_and_the_offset():
    settings = {
        "digest": "x",
        "axillary_offset_c": -0.5,
        "thresholds_c": {
            "severe_hypothermia": 33.0,
            "moderate_hypothermia": 35.5,
            "cold_stress": 36.0,
            "hyperthermia": 37.0,
        },
    }
    got = [band(t, settings) for t in (33.4, 33.6, 36.4, 36.6, 37.4, 37.6, None, float("nan"))]
    assert got == ["severe", "moderate", "cold", "normal", "normal", "hot", "none", "none"]


def test_a_broker_reconnect_is_not_news_from_a_silent_gateway():
    """A hung gateway (its connection alive, nothing sent): the broker dropping and coming back
    must not end gateway_silent; only a live message from the gateway does."""
    m = connected(silent_after_s=120)
    m.on_message(STATUS, online(), T0 + 1)
    (raised,) = [a for _, a in m.tick(T0 + 122)]
    assert raised.kind == GATEWAY_SILENT
    m.broker_lost(T0 + 130)
    m.broker_connected(T0 + 135)
    m.on_message(STATUS, online(), T0 + 136, retained=True)  # the stored copy, again
    assert chain(m) == {"gateway": GATEWAY_SILENT} and not m.snapshot(T0 + 137)["chain_ok"]
    ended = m.on_message(STATUS, online(), T0 + 200)  # news
    assert [(w, a.kind) for w, a in ended] == [("ended", GATEWAY_SILENT)]


def test_a_restarted_ward_service_keeps_its_restored_alarms_until_the_status_says(tmp_path):
    """The alarms of the chain restored from the audit log stay open (and acknowledged) across
    a restart until the gateway's status, retained or live, says otherwise."""
    m = connected(silent_after_s=120)
    down = online([("hci0", False, "2026-07-10T11:59:40Z")])
    m.on_message(STATUS, down, T0 + 1)
    (radio,) = [a for a in m.alerts.values() if a.kind == ADAPTER_DOWN]
    m.acknowledge(radio.id, "JN", T0 + 5)
    log = AuditLog(tmp_path / "audit.db")
    log.record("acknowledged", radio, T0 + 5, "JN")
    log.close()
    again = WardModel(silent_after_s=120, started=T0 + 100)
    for a in AuditLog(tmp_path / "audit.db").alerts():
        again.alerts[a.id] = a
    assert again.broker_connected(T0 + 101) == []  # no status yet: nothing judged
    assert again.tick(T0 + 102) == []
    again.on_message(STATUS, down, T0 + 102, retained=True)  # still down, says the broker
    (kept,) = [a for a in again.alerts.values() if a.kind == ADAPTER_DOWN]
    assert kept.state == "active" and kept.acked_by == "JN"
    back = again.on_message(STATUS, online(), T0 + 130)
    assert [(w, a.kind) for w, a in back] == [("ended", ADAPTER_DOWN)]


def test_a_retained_state_fills_a_tile_in_but_does_not_make_it_live():
    m = connected()
    state(m, "KMC-0001", 36.8, T0 + 1, retained=True)
    tile = m.snapshot(T0 + 2)["tiles"][0]
    assert tile["state"] == "no_signal" and tile["infant_c"] == 36.8
    state(m, "KMC-0001", 36.8, T0 + 3)
    assert m.snapshot(T0 + 4)["tiles"][0]["state"] == "worn"


def test_an_alert_of_a_chain_kind_from_mqtt_is_ignored():
    from kmc_host.ward.model import MessageIgnored

    m = connected()
    with pytest.raises(MessageIgnored, match="'gateway_silent' is the ward screen's own"):
        cold(m, "KMC-0001", T0, kind=GATEWAY_SILENT)
    assert m.snapshot(T0)["chain_ok"]


def test_an_alarm_of_the_chain_ends_even_a_high_pause():
    m = WardModel(pause_s=120.0, started=T0)
    m.broker_connected(T0)
    m.on_message(STATUS, online(), T0)
    cold(m, "A", T0, kind="moderate_hypothermia")
    m.pause_audio("JN", T0 + 1)
    assert m.pause.priority == "high"
    events = m.on_message(STATUS, body(state="offline"), T0 + 2)
    assert [w for w, _ in events] == ["raised", "audio_pause_ended"]
    assert events[1][1].ended == "alarm of the chain: gateway_offline gateway"
