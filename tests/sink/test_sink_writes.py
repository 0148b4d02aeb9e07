"""The sink's writes to InfluxDB and its spooler, without servers: a Sink that is never
connected, its writer a fake InfluxDB that keeps one point per series and timestamp (the last
write it applied wins, as InfluxDB's does) and its paho client's `ack` recorded."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from kmc_host.mqtt import BrokerConfig
from kmc_host.sink.config import SinkConfig
from kmc_host.sink.influx import InfluxConfig
from kmc_host.sink.schema import to_lines
from kmc_host.sink.service import Received, Sink

ALERT = "kmc/site1/ward-a/S1/alert"
SAMPLES = "kmc/site1/ward-a/S1/samples"


def alert(state: str) -> bytes:
    msg = {
        "v": 1,
        "strap": "S1",
        "kind": "cold_stress",
        "state": state,
        "start": "2026-07-10T12:13:17Z",
        "extreme_c": 35.5,
    }
    if state == "ended":
        msg["end"] = "2026-07-10T12:40:02Z"
    return json.dumps(msg).encode()


def samples(first: int, n: int = 3, **extra: object) -> bytes:
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
        | extra
    ).encode()


class SlowFirstInflux:
    """Applies each write when it returns; the first write takes a while (a big batch being
    parsed), so a write sent after it may be applied before it."""

    def __init__(self) -> None:
        self.points: dict[tuple[str, str], str] = {}
        self.calls = 0
        self.lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        with self.lock:
            self.calls += 1
            first = self.calls == 1
        if first:
            time.sleep(0.4)
        with self.lock:
            for ln in "\n".join(lines).split("\n"):
                head, _, ts = ln.rpartition(" ")
                series = head.split(" ", 1)[0]
                self.points[(series, ts)] = ln

    def close(self) -> None:
        pass


def make_sink(tmp_path: Path, writer: object, batch_lines: int = 5000) -> Sink:
    cfg = SinkConfig(
        tmp_path / "sink",
        BrokerConfig(port=1, client_id="unit-sink"),
        InfluxConfig(url="http://127.0.0.1:1"),
        batch_lines=batch_lines,
        spool_reserve_mb=0,
    )
    return Sink(cfg, writer=writer)  # type: ignore[arg-type]


def drain(s: Sink, timeout_s: float = 10.0) -> None:
    s._thread.start()
    deadline = time.monotonic() + timeout_s
    while len(s.spool) and time.monotonic() < deadline:
        s._wake.set()
        time.sleep(0.02)
    s._stop.set()
    s._wake.set()
    s._thread.join(timeout_s)
    assert not s._thread.is_alive()


def test_an_alert_that_ended_stays_ended_with_two_writes_in_flight(tmp_path: Path):
    """`active` then `ended` on the same point, in two batches: the second must not be sent
    while the first is in flight, or InfluxDB may apply them the other way round and keep the
    episode active for ever."""
    influx = SlowFirstInflux()
    s = make_sink(tmp_path, influx, batch_lines=1)  # one message a batch
    for state in ("active", "ended"):
        (line,) = to_lines(ALERT, alert(state))
        s.spool.put(ALERT, line.encode())
    drain(s)
    assert len(s.spool) == 0
    (stored,) = influx.points.values()
    assert 'state="ended"' in stored
    s.spool.close()


def test_samples_batches_still_fly_two_at_a_time(tmp_path: Path):
    """Samples never change once written (a replay is the same point, the same fields): two of
    their batches may be in flight at once."""
    influx = SlowFirstInflux()
    s = make_sink(tmp_path, influx, batch_lines=3)
    for k in range(4):
        s.spool.put(SAMPLES, "\n".join(to_lines(SAMPLES, samples(3 * k))).encode())
    start = time.monotonic()
    drain(s)
    assert len(influx.points) == 12
    assert time.monotonic() - start < 0.4 * 2  # the slow first write overlapped the others
    s.spool.close()


def test_a_lone_surrogate_is_rejected_naming_the_field_and_the_batch_goes_on(tmp_path: Path):
    """JSON can carry "\\udc00", UTF-8 cannot: the message is refused (rejected.jsonl, with the
    field named) and the other messages taken with it are spooled and acknowledged."""
    s = make_sink(tmp_path, SlowFirstInflux())
    acks: list[int] = []
    s._client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[method-assign]
    state = json.dumps(
        {"v": 1, "strap": "S1", "bed": "\udc00", "state": "kmc", "last_seq": 1, "time": 1.0}
    ).encode()
    s._receive(
        [
            Received(1, 1, SAMPLES, samples(0), 0),
            Received(2, 1, "kmc/site1/ward-a/S1/state", state, 0),
            Received(3, 1, SAMPLES, samples(3), 0),
        ]
    )
    assert sorted(acks) == [1, 2, 3] and len(s.spool) == 2 and s.stats.rejected == 1
    rejected = json.loads((s.cfg.data_dir / "rejected.jsonl").read_text())
    assert "kmc/site1/ward-a/S1/state" in rejected["reason"] and "bed" in rejected["reason"]
    s.spool.close()


def test_a_message_that_breaks_the_line_builder_keeps_no_other_off_the_disk(
    tmp_path: Path, monkeypatch
):
    """An unexpected error building one message's lines leaves that one unacknowledged (the
    broker sends it again) and the rest of its batch is spooled and acknowledged."""
    from kmc_host.sink import service

    s = make_sink(tmp_path, SlowFirstInflux())
    acks: list[int] = []
    s._client.ack = lambda mid, qos: acks.append(mid)  # type: ignore[method-assign]
    real = service.to_lines_many

    def fragile(messages, *a, **kw):  # type: ignore[no-untyped-def]
        if any(b"poison" in body for _, body in messages):
            raise RuntimeError("a bug")
        return real(messages, *a, **kw)

    monkeypatch.setattr(service, "to_lines_many", fragile)
    s._receive(
        [
            Received(1, 1, SAMPLES, samples(0), 0),
            Received(2, 1, SAMPLES, samples(3, infant="poison"), 0),
            Received(3, 1, SAMPLES, samples(6), 0),
        ]
    )
    assert sorted(acks) == [1, 3] and len(s.spool) == 2
    s.spool.close()


def test_a_seq_beyond_64_bits_is_refused_by_both_line_builders_naming_it():
    """The vectorised builder wrapped 2**63 to -2**63 (stored as a plausible integer) where the
    reference wrote 2**63 (which InfluxDB refuses), and both stored a seq above 2**53 rounded
    (it goes through float64): now neither builds those, the same way."""
    import pytest

    from kmc_host.sink.schema import REFERENCE, VECTORISED, MessageError

    body = samples(0, 2, seq=[2**63, 1])
    for builder in (VECTORISED, REFERENCE):
        with pytest.raises(MessageError, match=r"samples: seq holds 9223372036854775808"):
            to_lines(SAMPLES, body, samples=builder)
        with pytest.raises(MessageError, match=r"seq holds 9007199254740993"):
            to_lines(SAMPLES, samples(0, 2, seq=[1, 2**53 + 1]), samples=builder)
    top = samples(0, 2, seq=[2**53, 1])
    assert to_lines(SAMPLES, top) == to_lines(SAMPLES, top, samples=REFERENCE)
    assert f"seq={2**53}i" in to_lines(SAMPLES, top)[0]
