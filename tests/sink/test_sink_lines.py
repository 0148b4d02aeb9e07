"""The vectorised line protocol of samples messages against the original point-at-a-time path
(`to_lines(..., samples="reference")`), byte for byte, on many generated messages: nulls,
unclocked samples, tags that need escapes, no battery column, readings written as integers,
odd floats; one message at a time and many at once (`to_lines_many`, as the sink's spooler
calls it). And the message reader's fast checks: bad columns are still refused, naming the field."""

from __future__ import annotations

import json
import random

import pytest

from kmc_host.sink import schema
from kmc_host.sink.config import LINES_ENV, load_sink_config
from kmc_host.sink.schema import REFERENCE, VECTORISED, MessageError, to_lines, to_lines_many

ODD = ["a b", "w,1=x", "S\\1", 'q"uote', "pct%s%d", "é ü", "=,= ", "x=y"]


def odd_part(rng: random.Random) -> str:
    return rng.choice(["site1", "ward-a", "KMC-0001", *ODD]).strip() or "p"


def reading(rng: random.Random, p_null: float) -> float | int | None:
    r = rng.random()
    if r < p_null:
        return None
    kind = rng.random()
    if kind < 0.6:
        return round(rng.uniform(30, 40), 2)  # as the gateway rounds them
    if kind < 0.7:
        return rng.randint(-5, 45)  # a whole number written without a point: stored as float
    return rng.choice(
        [0.0, -0.0, 1e-7, 123456789.123, 1e17, -273.15, rng.uniform(-1e3, 1e3), 2.5e-5, 0.1]
    )


def samples_message(rng: random.Random) -> tuple[str, bytes]:
    n = rng.randint(1, 80)
    p_null = rng.choice([0.0, 0.0, 0.1, 0.5, 1.0])
    strap = odd_part(rng)
    start = rng.randint(0, 2**40)
    seq = sorted(rng.sample(range(start, start + 3 * n), n))
    t0 = rng.choice([1783684800.0, 1783684800.123, 86400.5, 0.0, 946684800.001])
    msg: dict = {
        "v": 1,
        "strap": strap,
        "bed": rng.choice(["", "3", "b 7"]),
        "infant": rng.choice(["", "INF-7Q2X", "INF 7", "I,N=F"]),
        "seq": seq,
        "time": [t0 + k * rng.choice([1, 1, 0.5, 0.001]) for k in range(n)],
        "infant_c": [reading(rng, p_null) for _ in range(n)],
        "outer_c": [reading(rng, p_null) for _ in range(n)],
        "contact": [rng.randint(0, 1) for _ in range(n)],
        "worn": [rng.randint(0, 1) for _ in range(n)],
    }
    if rng.random() < 0.7:
        msg["battery_v"] = [reading(rng, p_null) for _ in range(n)]
    clock = rng.random()
    if clock < 0.4:
        msg["clock_set"] = [rng.random() < 0.7 for _ in range(n)]
    elif clock < 0.6:
        msg["clock_set"] = [True] * n
    elif clock < 0.7:
        msg["clock_set"] = [False] * n
    topic = f"kmc/{odd_part(rng)}/{odd_part(rng)}/{strap}/samples"
    return topic, json.dumps(msg).encode()


MESSAGES = [samples_message(random.Random(seed)) for seed in range(600)]


def test_generated_messages_cover_the_cases():
    """The generator makes what the comparison must cover (else the test below proves less)."""
    ref = [to_lines(t, b, samples=REFERENCE) for t, b in MESSAGES]
    text = "\n".join(ln for lines in ref for ln in lines)
    bodies = [json.loads(b) for _, b in MESSAGES]
    assert "kmc_sample_unclocked" in text and "device_time=" in text
    assert "\\," in text and "\\=" in text and "\\ " in text and "%" in text
    assert any("battery_v" not in b for b in bodies)
    assert any(None in b["infant_c"] for b in bodies)
    assert any(all(v is None for v in b["outer_c"]) for b in bodies)
    assert "e-07" in text and "e+17" in text and "=-0.0," in text
    lines_with = [ln for ln in text.split("\n") if " contact=" in ln]  # no reading at all
    assert lines_with


def test_vectorised_lines_equal_the_reference_byte_for_byte():
    for topic, body in MESSAGES:
        assert to_lines(topic, body, samples=VECTORISED) == to_lines(
            topic, body, samples=REFERENCE
        ), (topic, body)


@pytest.mark.parametrize("size", [1, 7, 100, len(MESSAGES)])
def test_many_messages_at_once_equal_the_reference(size):
    """The spooler's call: all the messages it took, samples vectorised together; a bad message
    among them gives its error in its place and leaves the others as they are."""
    bad = ("kmc/site1/ward-a/S1/samples", b'{"v":1,"strap":"S1","seq":[1],"time":[]}')
    state = (
        "kmc/site1/ward-a/S1/state",
        b'{"v":1,"strap":"S1","state":"kmc","last_seq":3,"time":1783684800.5}',
    )
    status = ("kmc/site1/ward-a/gateway/status", b'{"v":1,"state":"offline"}')
    for a in range(0, len(MESSAGES), size):
        batch = [*MESSAGES[a : a + size], bad, state, status]
        got = to_lines_many(batch, samples=VECTORISED)
        want = to_lines_many(batch, samples=REFERENCE)
        assert isinstance(got[-3], MessageError) and str(got[-3]) == str(want[-3])
        assert got[:-3] == want[:-3] and got[-2:] == want[-2:]
        assert got[-2] and got[-1] == []


def test_a_full_reprs_cache_starts_again_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(schema._REPRS, "limit", 5)
    schema._REPRS.clear()
    for topic, body in MESSAGES[:50]:
        assert to_lines(topic, body) == to_lines(topic, body, samples=REFERENCE)
    assert len(schema._REPRS) <= 5


def test_unknown_builder_is_refused():
    with pytest.raises(KeyError):
        to_lines(*MESSAGES[0], samples="fast")


def test_the_environment_switch_picks_the_builder(tmp_path, monkeypatch):
    cfg = tmp_path / "sink.toml"
    cfg.write_text(f'[sink]\ndata_dir = "{tmp_path}"\n[influx]\nurl = "http://127.0.0.1:1"\n')
    monkeypatch.delenv(LINES_ENV, raising=False)
    assert load_sink_config(cfg).samples_lines == VECTORISED
    monkeypatch.setenv(LINES_ENV, REFERENCE)
    assert load_sink_config(cfg).samples_lines == REFERENCE
    monkeypatch.setenv(LINES_ENV, "fast")
    with pytest.raises(Exception, match="KMC_SINK_LINES"):
        load_sink_config(cfg)


def good(**change) -> bytes:
    msg = {
        "v": 1,
        "strap": "S1",
        "seq": [1, 2],
        "time": [1783684800.0, 1783684801.0],
        "infant_c": [36.5, None],
        "outer_c": [34.0, 34.0],
        "contact": [1, 0],
        "worn": [1, 1],
    }
    return json.dumps(msg | change).encode()


@pytest.mark.parametrize(
    "change, error",
    [
        ({"infant_c": [36.5, True]}, "infant_c holds a non-number"),
        ({"time": [1783684800.0, None]}, "time has a null at index 1"),
        ({"time": [1783684800.0, "x"]}, "time holds a non-number"),
        ({"seq": [1, -2]}, "seq holds a value that is not a whole number >= 0"),
        ({"seq": [1, 2.5]}, "seq holds a value that is not a whole number >= 0"),
        ({"contact": [1, 2]}, "contact holds a value other than 0 or 1"),
        ({"worn": [1, 0.5]}, "worn holds a value other than 0 or 1"),
        ({"worn": [1, True]}, "worn holds a non-number"),
        ({"clock_set": [True, 1]}, "clock_set should be a list of 2 booleans"),
        ({"battery_v": [3.9]}, "battery_v should be a list of 2 values like time"),
    ],
)
def test_the_reader_still_refuses_bad_columns_naming_them(change, error):
    with pytest.raises(MessageError, match=error):
        to_lines("kmc/site1/ward-a/S1/samples", good(**change))


def test_the_reader_refuses_an_overflowing_number():
    body = good().replace(b"36.5", b"1e999")  # json reads it as inf
    with pytest.raises(MessageError, match="infant_c holds an infinite value"):
        to_lines("kmc/site1/ward-a/S1/samples", body)
    big = good().replace(b"36.5", b"1" + b"0" * 400)  # an int beyond any float
    with pytest.raises(MessageError, match="infant_c holds an infinite value"):
        to_lines("kmc/site1/ward-a/S1/samples", big)


def test_the_reader_takes_whole_floats_as_seq_and_flags():
    lines = to_lines(
        "kmc/site1/ward-a/S1/samples", good(seq=[1.0, 2.0], contact=[1.0, 0], worn=[1, 1.0])
    )
    assert lines == to_lines("kmc/site1/ward-a/S1/samples", good(), samples=REFERENCE)
