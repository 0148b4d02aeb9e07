"""Fuzz targets: every parser that takes outside input, as `target(data: bytes) -> None`.

Each returns normally for input it accepts or refuses with its own error (with a message); any
other exception is a bug. Run coverage-guided with atheris (`python fuzz/run.py`), and on random
bytes by hypothesis in tests/test_fuzz.py.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from kmc_analysis.samples_io import SamplesFileError, load_straps
from kmc_host import protocol as P
from kmc_host.detect import ConfigError
from kmc_host.gateway.config import load_config
from kmc_host.mqtt import STRAP_LEAVES
from kmc_host.sink.config import load_sink_config
from kmc_host.sink.schema import MessageError, to_lines
from kmc_host.ward.config import load_ward_config
from kmc_host.ward.model import MessageIgnored, WardModel

_DIR = Path(tempfile.mkdtemp(prefix="kmc-fuzz-"))


def _named(exc: Exception) -> None:
    if not str(exc):
        raise AssertionError(f"{type(exc).__name__} without a message")


def packet(data: bytes) -> None:
    for decode in (
        P.decode_measurement,
        P.decode_status,
        P.decode_response,
        P.decode_temperature_measurement,
    ):
        try:
            decode(data)
        except P.ProtocolError as exc:
            _named(exc)


def _topic(data: bytes) -> tuple[str, bytes]:
    leaf = STRAP_LEAVES[data[0] % len(STRAP_LEAVES)] if data else STRAP_LEAVES[0]
    return f"kmc/site1/ward-a/S1/{leaf}", data[1:]


def sink_payload(data: bytes) -> None:
    topic, body = _topic(data)
    try:
        lines = to_lines(topic, body)
    except MessageError as exc:
        _named(exc)
        return
    for line in lines:
        if "\n" in line:
            raise AssertionError("a line-protocol point spans lines")


def ward_payload(data: bytes) -> None:
    topic, body = _topic(data)
    model = WardModel()
    try:
        model.on_message(topic, body, 0.0)
    except MessageIgnored as exc:
        _named(exc)
    json.dumps(model.snapshot(1.0))
    for strap in model.beds:
        json.dumps(model.detail(strap))


def samples_csv(data: bytes) -> None:
    path = _DIR / "samples.csv"
    path.write_bytes(b"time,device,infant_c,outer_c,contact,worn\n" + data)
    try:
        load_straps(path)
    except SamplesFileError as exc:
        _named(exc)


def config(data: bytes) -> None:
    path = _DIR / "config.toml"
    path.write_bytes(data)
    for load in (load_config, load_sink_config, load_ward_config):
        try:
            load(path)
        except ConfigError as exc:
            _named(exc)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "packet": packet,
    "sink_payload": sink_payload,
    "ward_payload": ward_payload,
    "samples_csv": samples_csv,
    "config": config,
}
