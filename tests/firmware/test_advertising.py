"""The gateway's reading of a strap's scan response (kmc_host.protocol.advert_status) on the
golden bytes the firmware's `protocol.scan_response` makes under MicroPython.

The gateway gets the scan response as bleak hands it over: `AdvertisementData.service_data`, a
dict keyed by lower-case 128-bit UUID string. `service_data()` here turns the raw AD structures
into that dict as a BLE stack does, independently of the firmware's and the host's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmc_host import protocol as P

GOLDEN = json.loads(
    (Path(__file__).resolve().parents[1] / "golden" / "protocol_v1.json").read_text()
)
OTHER_UUID = "0000180f-0000-1000-8000-00805f9b34fb"  # Battery service, 16-bit in 128


def service_data(ad: bytes) -> dict[str, bytes]:
    """Service Data - 128-bit UUID (0x21) structures of an advertising or scan response
    payload, as bleak's AdvertisementData.service_data."""
    out, k = {}, 0
    while k < len(ad):
        length = ad[k]
        kind, body = ad[k + 1], ad[k + 2 : k + 1 + length]
        if kind == 0x21:
            h = bytes(reversed(body[:16])).hex()
            out[f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"] = body[16:]
        k += 1 + length
    return out


def test_the_golden_scan_responses_are_one_service_data_structure():
    for name, status in (("scan_response_calm", 0), ("scan_response_visit_now", 1)):
        raw = bytes.fromhex(GOLDEN[name])
        assert len(raw) == 19 and raw[:2] == b"\x12\x21", name  # length 18, AD type 0x21
        assert service_data(raw) == {P.KMC_SERVICE_UUID: bytes([status])}, name


def test_the_host_reads_the_status_byte_of_the_golden_scan_responses():
    calm = P.advert_status(service_data(bytes.fromhex(GOLDEN["scan_response_calm"])))
    news = P.advert_status(service_data(bytes.fromhex(GOLDEN["scan_response_visit_now"])))
    assert (calm, news) == (0, P.VISIT_NOW) == (0, 1)
    assert not calm & P.VISIT_NOW and news & P.VISIT_NOW


def test_reserved_bits_are_passed_on_for_the_caller_to_ignore():
    status = P.advert_status({P.KMC_SERVICE_UUID: b"\xfe"})  # a later strap's other bits
    assert status == 0xFE and not status & P.VISIT_NOW


@pytest.mark.parametrize(
    "service_data",
    [
        {},  # no scan response heard (passive scan), or an older strap
        {P.KMC_SERVICE_UUID: b""},  # no status byte
        {P.KMC_SERVICE_UUID: b"\x01\x00"},  # two bytes: not this protocol version
        {OTHER_UUID: b"\x01"},  # another service's data
        {P.KMC_SERVICE_UUID: "\x01"},  # not bytes
        {P.KMC_SERVICE_UUID: None},
    ],
)
def test_malformed_or_absent_service_data_gives_none(service_data):
    assert P.advert_status(service_data) is None


def test_not_a_mapping_gives_none():
    assert P.advert_status(None) is None  # type: ignore[arg-type]
    assert P.advert_status([(P.KMC_SERVICE_UUID, b"\x01")]) is None  # type: ignore[arg-type]
