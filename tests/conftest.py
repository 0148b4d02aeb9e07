"""Shared helpers: synthetic 1 Hz strap signals with known edges; the `kmc` command as a user
runs it, and its CSV outputs; the MQTT contract's checks (docs/mqtt.md): its documented
examples, and the `mqtt_contract` fixture that holds every payload a test's gateway publishes to
its leaf's JSON Schema."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from kmc_host.mqtt import GATEWAY, MESSAGE_TYPES, STATUS, MessageError, MqttPublisher, read
from kmc_host.mqtt.schema import schema
from kmc_host.samples import Samples

T0 = 1_772_398_800.0  # 2026-03-01T21:00:00Z, midnight in Africa/Addis_Ababa
KMC = [sys.executable, "-m", "kmc_host"]
ROOT = Path(__file__).resolve().parents[1]


def run_kmc(*args: str) -> subprocess.CompletedProcess[str]:
    """`kmc ARGS...` in a subprocess, as a user runs it (exit status, stdout, stderr)."""
    return subprocess.run([*KMC, *args], capture_output=True, text=True, timeout=300)


def ward_a(tz: str) -> list[str]:
    """The options naming the tests' ward (site1/ward-a, as deploy/'s examples) in zone `tz`."""
    return ["--tz", tz, "--site", "site1", "--ward", "ward-a"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def signal(*segments: tuple[float, int, int, float], t0: float = T0) -> Samples:
    """1 Hz samples from (seconds, contact, worn, infant_c) segments, back to back."""
    contact, worn, temp = [], [], []
    for seconds, c, w, temp_c in segments:
        n = int(seconds)
        contact.append(np.full(n, c))
        worn.append(np.full(n, w))
        temp.append(np.full(n, temp_c, dtype=float))
    ct = np.concatenate(contact)
    time = t0 + np.arange(ct.size, dtype=float)
    infant = np.concatenate(temp)
    return Samples.from_columns(
        time, infant, np.where(ct == 1, 35.0, 30.0), ct, np.concatenate(worn)
    )


def drop_rows(s: Samples, start: int, stop: int) -> Samples:
    """The same samples with rows [start, stop) missing (a data gap)."""
    keep = np.ones(len(s), bool)
    keep[start:stop] = False
    return Samples(
        s.time[keep], s.infant_c[keep], s.outer_c[keep], s.contact[keep], s.worn[keep], None
    )


def detect_in_chunks(s: Samples, cuts, device: str = "S"):
    """The detector fed chunk by chunk, cut before each index in `cuts` (as live feeding does)."""
    from kmc_host.detect import StrapDetector

    det = StrapDetector(device)
    edges = np.unique(np.concatenate(([0], np.asarray(cuts, dtype=np.int64), [len(s)])))
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        det.feed(s.slice(int(a), int(b)))
    det.finish()
    return det.result()


def random_cuts(n: int, count: int, seed: int):
    return np.random.default_rng(seed).integers(1, n, count)


RESULT_ARRAYS = ("session_start", "session_end", "monitored_start", "monitored_end")
RESULT_ARRAYS += ("off_start", "off_end")
RESULT_SCALARS = ("device", "samples", "effective_session_s")
EPISODE_ARRAYS = ("start", "end", "extreme", "alert_time")


def assert_same_results(a, b) -> None:
    """Two detector results are identical: every field of StrapResult (sessions, monitored
    and off time, sample count, settings), the same episode kinds, and every field of each
    kind's episodes (start, end, extreme, alert time)."""
    from dataclasses import fields

    from kmc_host.detect import StrapResult
    from kmc_host.detect.bands import Episodes

    # a field added to either type must be compared here too
    assert {f.name for f in fields(StrapResult)} == {*RESULT_ARRAYS, *RESULT_SCALARS, "episodes"}
    assert {f.name for f in fields(Episodes)} == {*EPISODE_ARRAYS, "kind"}
    for name in RESULT_SCALARS:
        assert getattr(a, name) == getattr(b, name), name
    for name in RESULT_ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.episodes.keys() == b.episodes.keys()
    for kind in a.episodes:
        ea, eb = a.episodes[kind], b.episodes[kind]
        assert ea.kind == eb.kind == kind, kind
        for name in EPISODE_ARRAYS:
            assert np.array_equal(getattr(ea, name), getattr(eb, name), equal_nan=True), (
                f"{kind}.{name}"
            )


@pytest.fixture
def t0() -> float:
    return T0


def checkout_copy(dest: Path) -> Path:
    """The checkout's files as git knows them (tracked and new, not ignored): a fresh clone
    of what is being tested, without this checkout's .venv, caches or test artifacts."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


# -- the MQTT contract (docs/mqtt.md, kmc_host.mqtt)


def documented_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every JSON example of docs/mqtt.md with the leaf of its section (`## samples` ...), in
    order; a ```json block may hold several objects."""
    text = (ROOT / "docs" / "mqtt.md").read_text()
    out = []
    decoder = json.JSONDecoder()
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        leaf = section.split(None, 1)[0]
        if leaf == "sink":  # a sink's own status: not a leaf of the gateway's (sink_examples)
            continue
        for block in re.findall(r"^```json\n(.*?)^```", section, re.S | re.M):
            k = 0
            while True:
                while k < len(block) and block[k].isspace():
                    k += 1
                if k >= len(block):
                    break
                obj, k = decoder.raw_decode(block, k)
                out.append((leaf, obj))
    return out


def sink_examples() -> list[dict[str, Any]]:
    """The JSON examples under docs/mqtt.md's `## sink status`."""
    text = (ROOT / "docs" / "mqtt.md").read_text()
    section = text.split("\n## sink status", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"^```json\n(.*?)^```", section, re.S | re.M)[0]
    return [json.loads(line) for line in block.splitlines() if line.strip()]


@cache
def validator(leaf: str) -> jsonschema.Draft202012Validator:
    """The leaf's JSON Schema (itself checked against the 2020-12 metaschema) as a validator."""
    s = schema(leaf)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def contract_errors(topic: str, body: bytes, prefix: str = "kmc") -> list[str]:
    """Why a message breaks the MQTT contract: its leaf's JSON Schema, then the reading of its
    message type (which must also give back the very same bytes); [] when it keeps to it."""
    parts = topic.split("/")
    leaf = STATUS if parts[-2:] == [GATEWAY, STATUS] else parts[-1]
    if leaf not in MESSAGE_TYPES:
        return [f"{topic}: no such leaf"]
    try:
        obj = json.loads(body)
    except ValueError as exc:
        return [f"{topic}: not JSON: {exc}"]
    errors = [f"{topic}: {e.json_path}: {e.message}" for e in validator(leaf).iter_errors(obj)]
    try:
        received = read(topic, body, prefix)
        message = MESSAGE_TYPES[leaf].parse(body, topic) if received is None else received[1]
    except MessageError as exc:
        return [*errors, str(exc)]
    if message.encode() != body:
        errors.append(f"{topic}: {body!r} encodes back as {message.encode()!r}")
    return errors


@pytest.fixture
def mqtt_contract(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every message an `MqttPublisher` queues during the test (the gateway's, all of them) is
    checked with `contract_errors`; the test fails at its end if any broke the contract. The
    real publisher still queues and sends each one."""
    broken: list[str] = []
    checked: list[str] = []
    publish = MqttPublisher.publish

    def checked_publish(self: MqttPublisher, topic: str, body: bytes, retain: bool = False) -> None:
        broken.extend(contract_errors(topic, body, self.topics.prefix))
        checked.append(topic)
        publish(self, topic, body, retain)

    monkeypatch.setattr(MqttPublisher, "publish", checked_publish)
    yield checked
    assert not broken, f"{len(broken)} payloads break the MQTT contract: {broken[:5]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two groups for pytest-xdist's `--dist loadgroup` (pyproject's addopts, `-n 2`): the
    fault suites (tests/integration/faults, and the ward screen's chain broken by killing real
    processes, test_ward_chain.py: real time, mostly waiting) on one worker, everything else on
    the other, each in its own order as before. Their clock-bound minutes then overlap the rest
    instead of adding to them."""
    for item in items:
        faults = "integration/faults/" in item.nodeid or "test_ward_chain.py" in item.nodeid
        item.add_marker(pytest.mark.xdist_group("faults" if faults else "suite"))
