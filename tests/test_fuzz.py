"""Property-based tests (hypothesis) of every parser that takes input from outside: the BLE
packet decoder, the sink's and the ward screen's MQTT payload parsers, the samples loader and the
configuration loaders. For any input: a result, or the module's own error with a message; never
another exception, never a hang. (The coverage-guided run of the same targets: fuzz/.)"""

from __future__ import annotations

import contextlib
import json
import string
import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kmc_analysis import samples_io
from kmc_analysis.samples_io import SampleReader, SamplesFileError, load_straps
from kmc_host import protocol as P
from kmc_host.detect import ConfigError
from kmc_host.gateway.config import load_config
from kmc_host.sink.config import load_sink_config
from kmc_host.sink.schema import MessageError, to_lines
from kmc_host.ward.config import load_ward_config
from kmc_host.ward.model import MessageIgnored, WardModel
from packets import notifications, records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
import targets  # noqa: E402  (fuzz/targets.py: the atheris targets)

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def valid_samples(n: int) -> dict:
    return {
        "v": 1,
        "strap": "S1",
        "bed": "1",
        "infant": "I",
        "seq": list(range(n)),
        "time": [1.78e9 + k for k in range(n)],
        "infant_c": [36.5] * n,
        "outer_c": [30.0] * n,
        "contact": [1] * n,
        "worn": [1] * n,
        "battery_v": [3.9] * n,
        "clock_set": [True] * n,
    }


# -- BLE packets


@FAST
@given(st.binary(max_size=600))
def test_packet_decoder_never_fails_other_than_protocol_error(data):
    targets.packet(data)  # every decoder: a result or a ProtocolError with a message


@FAST
@given(st.integers(1, 20), st.integers(0, 2**32 - 1), st.data())
def test_corrupting_a_valid_packet_gives_a_named_error_or_consistent_columns(count, seq, data):
    (valid,) = notifications(records(count, 3650), count, first_seq=seq)
    packet = bytearray(valid)
    for _ in range(data.draw(st.integers(0, 4))):
        k = data.draw(st.integers(0, len(packet) - 1))
        packet[k] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        packet = packet[: data.draw(st.integers(0, len(packet)))]
    try:
        m = P.decode_measurement(bytes(packet))
    except P.ProtocolError as exc:
        assert str(exc)
        return
    n = len(m.seq)
    assert all(len(c) == n for c in (m.time, m.infant_c, m.outer_c, m.contact, m.worn))


# -- MQTT payloads (sink and ward screen)


leaves = st.sampled_from(["samples", "state", "alert", "session", "daily", "other"])


@FAST
@given(leaves, json_values)
def test_sink_schema_on_any_json(leaf, value):
    body = json.dumps(value).encode()
    try:
        lines = to_lines(f"kmc/site1/ward-a/S1/{leaf}", body)
    except MessageError as exc:
        assert "kmc/site1/ward-a/S1" in str(exc)
        return
    assert all(isinstance(x, str) and "\n" not in x for x in lines)


@FAST
@given(st.integers(1, 5), st.sampled_from(list(valid_samples(1))), json_values)
def test_sink_schema_on_valid_samples_with_one_field_replaced(n, key, value):
    msg = valid_samples(n)
    msg[key] = value
    try:
        lines = to_lines("kmc/site1/ward-a/S1/samples", json.dumps(msg).encode())
    except MessageError as exc:
        assert str(exc).startswith("kmc/site1/ward-a/S1/samples: ")
        return
    assert len(lines) <= n


@FAST
@given(st.binary(max_size=300), leaves)
def test_sink_and_ward_on_arbitrary_bytes(body, leaf):
    topic = f"kmc/site1/ward-a/S1/{leaf}"
    with contextlib.suppress(MessageError):
        to_lines(topic, body)
    model = WardModel()
    with contextlib.suppress(MessageIgnored):
        model.on_message(topic, body, 0.0)
    model.snapshot(1.0)


@FAST
@given(leaves, json_values, st.text(alphabet=string.ascii_letters + "/+#", max_size=20))
def test_ward_model_on_any_json_and_topic(leaf, value, junk):
    model = WardModel()
    for topic in (f"kmc/site1/ward-a/S1/{leaf}", junk):
        with contextlib.suppress(MessageIgnored):
            model.on_message(topic, json.dumps(value).encode(), 0.0)
    snap = model.snapshot(10.0)
    json.dumps(snap)  # what the page receives is always JSON
    for strap in model.beds:
        json.dumps(model.detail(strap))


# -- files


csv_cells = st.one_of(
    st.sampled_from(
        [
            "",
            "1",
            "0",
            "36.5",
            "nan",
            "1783684800",
            "2026-07-10T12:00:00Z",
            "x",
            "-1",
            "1e309",
            '"',
            "KMC-1",
            "50",
        ]
    ),
    st.text(max_size=6),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.sampled_from(
            [
                "time",
                "device",
                "infant_c",
                "outer_c",
                "contact",
                "worn",
                "battery_v",
                "seq",
                "bogus",
            ]
        ),
        min_size=1,
        max_size=9,
    ),
    st.lists(st.lists(csv_cells, min_size=0, max_size=10), max_size=8),
)
def test_samples_loader_on_random_csv(tmp_path_factory, header, rows):
    path = tmp_path_factory.mktemp("fz") / "s.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    try:
        load_straps(path)
    except SamplesFileError as exc:
        assert "s.csv" in str(exc)


# cells of one column each, valid and not, in the ways files spell them: the typed CSV parse
# and the checking parse must agree on every file made of them
typed_cells = {
    "time": st.one_of(
        st.integers(1_772_400_000, 1_772_400_040).map(str),
        st.integers(0, 40).map(lambda k: f"2026-03-01T21:00:{k:02d}Z"),
        st.sampled_from(
            [
                "1772400001.5",
                " 1772400002",
                "2026-03-01T22:00:03+01:00",
                " 2026-03-01T21:00:04Z",
                "2026-03-01T21:00:05",
                "946684800",
                "",
                "nan",
                "x",
            ]
        ),
    ),
    "device": st.sampled_from(["A", "B", " A ", "", '"B"']),
    "infant_c": st.sampled_from(["36.5", " 36.4", "+36.3", "3.62e1", "", "nan", "NaN", "50", "x"]),
    "outer_c": st.sampled_from(["35", "35.", ".35e2", "", "inf", "9"]),
    "contact": st.sampled_from(["0", "1", "1.0", " 1", "01", "0x1", "2", "", "-0"]),
    "worn": st.sampled_from(["1", "0", "1e0", "yes", ""]),
    "battery_v": st.sampled_from(["3.9", "", "low"]),
}
TYPED_HEADER = list(typed_cells)


def _outcome(path: Path, typed: bool, skip_invalid: bool) -> object:
    reader = SampleReader(path, typed=typed, skip_invalid=skip_invalid)
    try:
        chunks = reader.consume(list)
    except SamplesFileError as exc:
        return str(exc)
    finally:
        if typed:  # (--hypothesis-show-statistics: how often each parse read a whole file)
            event("typed parse" if reader.typed else "checking parse")
    cols = ("time", "infant_c", "outer_c", "contact", "worn", "battery_v")
    straps: dict[str, list[list[float | None]]] = {}  # joined: the parses cut chunks apart
    for d, c in chunks:
        joined = straps.setdefault(d, [[] for _ in cols])
        for out, k in zip(joined, cols, strict=True):
            v = np.asarray(getattr(c, k), float)
            out.extend(None if x != x else x for x in v.tolist())  # NaN as None: NaN != NaN
    return reader.report.lines(), straps


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.data(),
    st.booleans(),
    st.booleans(),
    st.sampled_from([48, 160, 1 << 24]),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_the_typed_csv_parse_agrees_with_the_checking_parse(
    tmp_path_factory, data, iso, skip, piece, newline, unread
):
    """The same samples, report and errors, word for word, whichever parse reads the file, in
    pieces of a few lines or in one, LF or CRLF, with a column no check reads or without.
    Most rows are clean (so that the typed parse often reads a whole file), some are not."""
    second = st.integers(0, 86_399)  # of a day, so that clean rows rarely share a time
    clean_time = (
        second.map(lambda k: f"2026-03-01T{k // 3600:02d}:{k // 60 % 60:02d}:{k % 60:02d}Z")
        if iso
        else second.map(lambda k: str(1_772_400_000 + k))
    )
    clean = st.tuples(
        clean_time,
        st.sampled_from(["A", "B", " A "]),
        st.sampled_from(["36.5", " 36.4", "3.62e1", "", "nan"]),
        st.sampled_from(["35", "35.", ".35e2"]),
        st.sampled_from(["0", "1", " 1", "01"]),
        st.sampled_from(["1", "0", "1e0"]),
        st.sampled_from(["3.9", ""]),
    )
    messy = st.tuples(*(typed_cells[k] for k in TYPED_HEADER))
    rows = data.draw(st.lists(st.one_of(*[clean] * 6, messy), min_size=1, max_size=30))
    header = list(TYPED_HEADER)
    if unread:
        header.append("seq")
        extra = st.sampled_from(["7", "", "x", '"a\nb"', "é"])
        rows = [(*r, data.draw(extra)) for r in rows]
    text = newline.join([",".join(header), *(",".join(r) for r in rows)])
    if data.draw(st.booleans()):  # the last line with its line end or without
        text += newline
    path = tmp_path_factory.mktemp("typed") / "s.csv"
    path.write_bytes(text.encode())
    saved = samples_io.CSV_TYPED_PIECE_BYTES, samples_io.CSV_TYPED_BLOCK_BYTES
    samples_io.CSV_TYPED_PIECE_BYTES = piece
    samples_io.CSV_TYPED_BLOCK_BYTES = min(piece, saved[1])
    try:
        typed = _outcome(path, True, skip)
    finally:
        samples_io.CSV_TYPED_PIECE_BYTES, samples_io.CSV_TYPED_BLOCK_BYTES = saved
    assert typed == _outcome(path, False, skip)


toml_text = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda a, b, c: (
            f"[gateway]\nsite = {a}\nward = {b}\ndata_dir = {c}\n"
            f"[[straps]]\nid = {a}\n[sink]\ndata_dir = {c}\n[influx]\nport = {b}\n"
            f"[ward]\nsite = {a}\nward = {b}\ndata_dir = {c}\npin_file = {c}\n"
        ),
        *(
            st.sampled_from(['"x"', '"a/b"', "1", "true", '""', '"KMC-0001"', "[1]", '"/tmp"'])
            for _ in range(3)
        ),
    ),
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(toml_text)
def test_config_loaders_on_any_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.toml"
    path.write_text(text)
    for load in (load_config, load_sink_config, load_ward_config):
        try:
            load(path)
        except ConfigError as exc:
            assert str(path) in str(exc)


@FAST
@given(st.binary(max_size=400))
def test_the_atheris_targets_take_any_bytes(data):
    """fuzz/ runs these same targets under atheris (coverage-guided); here on random bytes."""
    for target in targets.TARGETS.values():
        target(data)
