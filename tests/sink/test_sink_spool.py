"""The sink's spool (compressed line protocol, a batch in one transaction) and its spooler's
acknowledgements, without servers: a Sink that is never started, its paho client's `ack`
recorded."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from kmc_host.mqtt import BrokerConfig, OutboxFull
from kmc_host.sink.config import SinkConfig
from kmc_host.sink.influx import InfluxConfig
from kmc_host.sink.schema import to_lines
from kmc_host.sink.service import Received, Sink
from kmc_host.sink.spool import Spool

TOPIC = "kmc/site1/ward-a/S1/samples"


def samples(first: int, n: int = 60) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "strap": "S1",
            "seq": list(range(first, first + n)),
            "time": [1783684800.0 + k for k in range(first, first + n)],
            "infant_c": [36.81] * n,
            "outer_c": [34.9] * n,
            "contact": [1] * n,
            "worn": [1] * n,
        }
    ).encode()


def test_the_spool_gives_back_what_it_took_and_stores_it_smaller(tmp_path: Path):
    spool = Spool(tmp_path / "spool.db")
    payloads = ["\n".join(to_lines(TOPIC, samples(k * 60))).encode() for k in range(5)]
    spool.put_many([(TOPIC, p) for p in payloads[:4]])
    spool.put(TOPIC, payloads[4])
    got = spool.oldest(10)
    assert [m.payload for m in got] == payloads and [m.topic for m in got] == [TOPIC] * 5
    with sqlite3.connect(tmp_path / "spool.db") as db:
        stored = [bytes(r[0]) for r in db.execute("SELECT payload FROM outbox ORDER BY id")]
    assert all(len(s) * 4 < len(p) for s, p in zip(stored, payloads, strict=True))
    spool.close()


def test_rows_of_an_older_sink_plain_line_protocol_are_read_as_they_are(tmp_path: Path):
    spool = Spool(tmp_path / "spool.db")
    plain = "\n".join(to_lines(TOPIC, samples(0))).encode()
    with sqlite3.connect(tmp_path / "spool.db") as db:  # as the sink before compression wrote
        db.execute("INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, 0)", (TOPIC, plain))
    spool.put(TOPIC, plain)
    assert [m.payload for m in spool.oldest(10)] == [plain, plain]
    spool.close()


def test_a_batch_refused_inside_the_transaction_is_rolled_back_whole(tmp_path: Path):
    spool = Spool(tmp_path / "spool.db")
    spool.put(TOPIC, b"kmc_sample f=1i 1")
    # a trigger refuses the third row of the batch, as a full disk refuses a write
    spool._db.execute(
        "CREATE TRIGGER full BEFORE INSERT ON outbox WHEN (SELECT COUNT(*) FROM outbox) >= 3 "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    with pytest.raises(sqlite3.Error):  # the sink holds the batch, unacknowledged, on any
        spool.put_many([(TOPIC, b"kmc_sample f=%di 1" % k) for k in range(5)])
    assert len(spool) == 1 and not spool._db.in_transaction
    spool.close()


@pytest.fixture
def sink(tmp_path: Path):
    cfg = SinkConfig(
        tmp_path / "sink",
        BrokerConfig(port=1, client_id="unit-sink"),
        InfluxConfig(url="http://127.0.0.1:1"),
        spool_reserve_mb=0,
    )
    s = Sink(cfg)
    acks: list[int] = []
    s._client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[method-assign]
    yield s, acks
    s.spool.close()


def test_the_spooler_acknowledges_after_spooling_and_rejects_with_a_reason(sink):
    s, acks = sink
    batch = [
        Received(1, 1, TOPIC, samples(0), 0),
        Received(2, 1, TOPIC, b"not json", 0),
        Received(3, 1, "kmc/site1/ward-a/gateway/status", b'{"v":1,"state":"offline"}', 0),
        Received(4, 1, TOPIC, samples(60), 0),
    ]
    s._receive(batch)
    assert sorted(acks) == [1, 2, 3, 4]
    assert len(s.spool) == 2 and s.stats.spooled == 2 and s.stats.rejected == 1
    rejected = json.loads((s.cfg.data_dir / "rejected.jsonl").read_text())
    assert "not JSON" in rejected["reason"] and rejected["payload"] == "not json"
    stored = [m.payload.decode().split("\n") for m in s.spool.oldest(10)]
    assert stored == [to_lines(TOPIC, samples(0)), to_lines(TOPIC, samples(60))]


def test_a_message_of_an_ended_connection_is_spooled_but_not_acknowledged(sink):
    """Its packet id was the old connection's; the broker sends it again (persistent session)
    and that copy is acknowledged, overwriting the same points."""
    s, acks = sink
    s._on_disconnect(s._client, None, None, "test", None)
    s._receive([Received(7, 1, TOPIC, samples(0), 0), Received(8, 1, TOPIC, samples(60), 1)])
    assert acks == [8] and len(s.spool) == 2


def test_while_messages_are_held_the_next_batch_is_held_behind_them(sink, monkeypatch):
    s, acks = sink
    monkeypatch.setattr(s, "_publish_status", lambda *a: None)  # no broker here
    monkeypatch.setattr(s.spool, "ensure_room", lambda: (_ for _ in ()).throw(OutboxFull("x")))
    s._receive([Received(1, 1, TOPIC, samples(0), 0)])
    assert acks == [] and s.held() == 1 and s.stalled_since is not None
    monkeypatch.undo()
    monkeypatch.setattr(s, "_publish_status", lambda *a: None)
    s._receive([Received(2, 1, TOPIC, samples(60), 0)])  # room again, but order comes first
    assert acks == [] and s.held() == 2
    s._store_held()  # the writer thread's pass: oldest first
    assert acks == [1, 2] and s.held() == 0 and s.stalled_since is None
    assert [m.payload.decode().split("\n")[0] for m in s.spool.oldest(5)] == [
        to_lines(TOPIC, samples(0))[0],
        to_lines(TOPIC, samples(60))[0],
    ]


def test_a_full_inbox_makes_pahos_thread_wait_for_the_spooler(sink, monkeypatch):
    import threading

    from kmc_host.sink import service

    s, _ = sink
    monkeypatch.setattr(service, "INBOX_LIMIT", 2)

    class Msg:
        def __init__(self, mid: int) -> None:
            self.mid, self.qos, self.topic, self.payload = mid, 0, TOPIC, samples(mid)

    s._on_message(s._client, None, Msg(1))
    s._on_message(s._client, None, Msg(2))
    third = threading.Thread(target=s._on_message, args=(s._client, None, Msg(3)))
    third.start()
    third.join(0.5)
    assert third.is_alive() and len(s._inbox) == 2  # waits: the inbox is full
    s._spooler.start()  # takes the inbox: room again
    third.join(5)
    assert not third.is_alive() and s.stats.received == 3
    deadline = time.monotonic() + 5  # the spooler may not have taken the third one yet
    while s.stats.spooled < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    s._stop.set()
    with s._inbox_ready:
        s._inbox_ready.notify_all()
    s._spooler.join(5)
    assert len(s.spool) == 3
