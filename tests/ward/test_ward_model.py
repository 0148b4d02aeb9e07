"""The ward screen's rules without a browser: urgency order, alert lifecycle, escalation,
acknowledgement, the audit log across a restart, the PIN and CSRF checks, bad messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmc_host.detect import ConfigError
from kmc_host.ward.audit import AuditLog
from kmc_host.ward.auth import TooManyAttempts, WardAuth
from kmc_host.ward.config import load_ward_config
from kmc_host.ward.model import MessageIgnored, WardModel, band

P = "kmc/site1/ward-a"


def msg(**fields) -> bytes:
    return json.dumps({"v": 1} | fields).encode()


def state(m: WardModel, strap: str, bed: str, temp: float, hours: float, now: float, st="worn"):
    m.on_message(
        f"{P}/{strap}/state",
        msg(
            strap=strap,
            bed=bed,
            infant=f"INF-{strap}",
            state=st,
            infant_c=temp,
            battery_v=3.9,
            last_seq=1,
            time=now,
            kmc_hours_today=hours,
            alerts=[],
        ),
        now,
    )


def alert(
    m: WardModel, strap: str, kind: str, now: float, st="active", start="2026-07-10T12:00:00Z"
):
    body = {"strap": strap, "kind": kind, "state": st, "start": start, "extreme_c": 35.4}
    if st == "ended":
        body["end"] = "2026-07-10T12:30:00Z"
    return m.on_message(f"{P}/{strap}/alert", msg(**body), now)


def order(m: WardModel, now: float) -> list[str]:
    return [t["strap"] for t in m.snapshot(now)["tiles"]]


def test_tiles_are_sorted_by_urgency():
    m = WardModel(escalate_after_s=300)
    now = 1000.0
    for strap, bed, temp, hours in [
        ("A", "1", 36.8, 9.0),
        ("B", "2", 36.9, 2.0),
        ("C", "3", 35.4, 5.0),
        ("D", "4", 36.7, 12.0),
        ("E", "5", 36.6, 1.0),
    ]:
        state(m, strap, bed, temp, hours, now)
    assert order(m, now) == ["E", "B", "C", "A", "D"]  # no alerts: fewest KMC hours first
    alert(m, "D", "strap_off", now)
    alert(m, "C", "cold_stress", now)
    alert(m, "C", "moderate_hypothermia", now)
    assert order(m, now)[:2] == ["C", "D"]  # thermal before device alerts
    m.acknowledge("C|moderate_hypothermia|2026-07-10T12:00:00Z", "AB", now)
    m.acknowledge("C|cold_stress|2026-07-10T12:00:00Z", "AB", now)
    assert order(m, now)[:2] == ["D", "C"]  # acknowledged comes after unacknowledged
    tile = m.snapshot(now)["tiles"][1]
    assert tile["band"] == "moderate" and tile["alerts"][0]["acked_by"] == "AB"


def test_alarms_are_ordered_by_priority_then_kind_and_say_their_priority():
    """docs/alarms.md: high (hypothermia) before medium (hyperthermia, cold stress, no
    signal) before low (strap off, battery low), on the tiles and in the list the banner
    reads; the tile names its most urgent unacknowledged alarm's priority."""
    m = WardModel()
    now = 1000.0
    beds = {
        "A": "battery_low",
        "B": "signal_lost",
        "C": "cold_stress",
        "D": "strap_off",
        "E": "moderate_hypothermia",
        "F": "hyperthermia",
    }
    for k, strap in enumerate(beds):
        state(m, strap, str(k + 1), 36.6, 5.0, now)
    for strap, kind in beds.items():
        alert(m, strap, kind, now + ord(strap))  # A oldest
    snap = m.snapshot(now + 100)
    assert [t["strap"] for t in snap["tiles"]] == ["E", "F", "C", "B", "D", "A"]
    assert [t["priority"] for t in snap["tiles"]] == [
        "high",
        "medium",
        "medium",
        "medium",
        "low",
        "low",
    ]
    assert [(a["kind"], a["priority"], a["technical"]) for a in snap["alerts"]] == [
        ("moderate_hypothermia", "high", False),
        ("hyperthermia", "medium", False),
        ("cold_stress", "medium", False),
        ("signal_lost", "medium", True),
        ("strap_off", "low", True),
        ("battery_low", "low", True),
    ]
    m.acknowledge("E|moderate_hypothermia|2026-07-10T12:00:00Z", "AB", now)
    tiles = m.snapshot(now + 100)["tiles"]
    assert tiles[-1]["strap"] == "E" and tiles[-1]["priority"] is None  # acknowledged: last


def test_alert_lifecycle_escalation_and_no_signal():
    m = WardModel(escalate_after_s=300)
    state(m, "A", "1", 35.5, 1.0, 0.0)
    assert [e for e, _ in alert(m, "A", "cold_stress", 10.0)] == ["raised"]
    assert alert(m, "A", "cold_stress", 11.0) == []  # a replay is the same episode
    assert m.escalate(200.0) == []
    (esc,) = m.escalate(311.0)
    assert esc.kind == "cold_stress" and esc.escalated
    assert m.escalate(400.0) == []  # escalates once
    assert [e for e, _ in alert(m, "A", "cold_stress", 500.0, st="ended")] == ["ended"]
    snap = m.snapshot(500.0)
    assert snap["tiles"][0]["alerts"] == []
    # no message for 2 min: no signal, whatever the last state said
    assert m.snapshot(500.0 + 121)["tiles"][0]["state"] == "no_signal"
    assert band(31.9) == "severe" and band(37.6) == "hot" and band(None) == "none"


def test_trace_keeps_a_point_per_minute_for_24_hours():
    m = WardModel()
    t0 = 1_783_684_800.0
    for k in range(0, 26 * 3600, 30):  # one message every 30 s for 26 h
        m.on_message(
            f"{P}/A/samples",
            msg(
                strap="A",
                seq=[k],
                time=[t0 + k],
                infant_c=[36.5],
                outer_c=[30.0],
                contact=[1],
                worn=[1],
                clock_set=[True],
            ),
            t0 + k,
        )
    trace = m.detail("A")["trace"]
    assert len(trace) == 24 * 60 + 1 and trace[-1]["kmc"] == 1
    assert trace[-1]["t"] - trace[0]["t"] == 86400
    # the lines it is drawn against are the WHO bands of kmc_host.clinical, not the page's own
    assert m.detail("A")["bands"] == [
        {"kind": "cold_stress", "threshold_c": 36.5},
        {"kind": "moderate_hypothermia", "threshold_c": 36.0},
        {"kind": "hyperthermia", "threshold_c": 37.5},
    ]


@pytest.mark.parametrize(
    "topic, body, words",
    [
        ("other/x/y/A/state", msg(strap="A"), "not a kmc/"),
        (f"{P}/A/state", b"{oops", "not JSON"),
        (f"{P}/A/state", json.dumps({"v": 2}).encode(), "schema version 1"),
        (f"{P}/A/alert", msg(strap="A", kind="cold_stress"), "needs kind, start and state"),
    ],
)
def test_bad_messages_are_named_and_ignored(topic, body, words):
    with pytest.raises(MessageIgnored) as err:
        WardModel().on_message(topic, body, 0.0)
    assert words in str(err.value)


def test_audit_log_keeps_alerts_and_acknowledgements_across_a_restart(tmp_path: Path):
    m = WardModel()
    log = AuditLog(tmp_path / "audit.db")
    for what, a in alert(m, "A", "severe_hypothermia", 100.0):
        log.record(what, a, 100.0)
    a = m.acknowledge("A|severe_hypothermia|2026-07-10T12:00:00Z", "JN", 130.0)
    log.record("acknowledged", a, 130.0, "JN")
    log.close()
    again = AuditLog(tmp_path / "audit.db")
    (restored,) = again.alerts()
    assert restored.acked_by == "JN" and restored.kind == "severe_hypothermia"
    assert [e["event"] for e in again.events()] == ["raised", "acknowledged"]
    text = again.csv()
    assert text.splitlines()[0] == "time_utc,event,strap,kind,start,initials,alert_id,detail"
    assert "acknowledged,A,severe_hypothermia,2026-07-10T12:00:00Z,JN" in text


def test_an_audit_log_from_before_audio_pauses_gets_its_detail_column(tmp_path: Path):
    """A ward's existing audit.db (no `detail` column) is opened, extended, and its rows kept."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "audit.db")
    db.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, event TEXT"
        " NOT NULL, alert_id TEXT NOT NULL, strap TEXT, kind TEXT, start TEXT, initials TEXT)"
    )
    db.execute(
        "INSERT INTO events (at, event, alert_id, strap, kind, start, initials) VALUES"
        " (5.0, 'acknowledged', 'A|cold_stress|x', 'A', 'cold_stress', 'x', 'JN')"
    )
    db.commit()
    db.close()
    log = AuditLog(tmp_path / "audit.db")
    assert log.events() == [
        {
            "at": 5.0,
            "event": "acknowledged",
            "strap": "A",
            "kind": "cold_stress",
            "start": "x",
            "initials": "JN",
            "alert_id": "A|cold_stress|x",
            "detail": None,
        }
    ]
    log.close()


def test_pin_sessions_csrf_and_attempt_limit():
    auth = WardAuth("4321", max_failures=3, window_s=60)
    assert auth.login("0000", "10.0.0.5", now=0) is None
    s = auth.login("4321", "10.0.0.5", now=1)
    assert s is not None
    assert auth.check(s.token, s.csrf, now=2)
    assert not auth.check(s.token, "forged", now=2)
    assert not auth.check(None, s.csrf, now=2)
    assert not auth.check(s.token, s.csrf, now=2 + 13 * 3600)  # the session expired
    for k in range(3):
        assert auth.login("1111", "10.0.0.9", now=10 + k) is None
    with pytest.raises(TooManyAttempts):
        auth.login("4321", "10.0.0.9", now=20)  # even the right PIN, while limited
    assert auth.login("4321", "10.0.0.9", now=80) is not None  # the window has passed
    assert auth.login("4321", "10.0.0.7", now=20) is not None  # other clients unaffected
    with pytest.raises(ValueError):
        WardAuth("12")


def test_ward_config(tmp_path: Path, monkeypatch):
    f = tmp_path / "ward.toml"
    f.write_text(f'[ward]\nsite = "s"\nward = "w"\ndata_dir = "{tmp_path}"\nlanguage = "fr"\n')
    with pytest.raises(ConfigError, match="pin_file"):
        load_ward_config(f)
    monkeypatch.setenv("KMC_WARD_PIN", "2468")
    cfg = load_ward_config(f)
    assert cfg.pin == "2468" and cfg.language == "fr" and "2468" not in repr(cfg)
    f.write_text(f'[ward]\nsite = "s"\nward = "w"\ndata_dir = "{tmp_path}"\nlanguage = "xx"\n')
    with pytest.raises(ConfigError, match="language 'xx'"):
        load_ward_config(f)


def test_every_language_has_every_string():
    strings = json.loads(
        (Path(__file__).resolve().parents[2] / "host/kmc_host/ward/static/strings.json").read_text()
    )
    keys = set(strings["en"])
    for lang, table in strings.items():
        assert set(table) == keys, lang
    js = (Path(__file__).resolve().parents[2] / "host/kmc_host/ward/static/ward.js").read_text()
    import re

    used = set(re.findall(r'\bt\("([a-z_0-9]+)"\)', js))
    assert used <= keys, used - keys


def test_the_audit_export_shows_a_formula_like_strap_as_text(tmp_path: Path):
    """A strap id comes from a topic: one that starts like a spreadsheet formula is written
    with a leading apostrophe, so the unit's spreadsheet shows it and runs nothing."""
    m = WardModel()
    log = AuditLog(tmp_path / "audit.db")
    for what, a in alert(m, "=HYPERLINK(1)", "cold_stress", 100.0):
        log.record(what, a, 100.0)
    row = log.csv().splitlines()[1]
    assert ",'=HYPERLINK(1),cold_stress," in row
    log.close()
