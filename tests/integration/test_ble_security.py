"""BLE security end to end: the firmware's bond store and pairing policy (emulated strap) against
the gateway's link (bleak on bumble), over real SMP: LE Secure Connections, passkey entry.

What must hold: a strap is commissioned once with its label passkey and then talks only to that
gateway; the gateway talks to each strap only at its bonded address and only over a link
encrypted with the bond, so a foreign central gets no data and a foreign peripheral (a copied
name, a copied address, a Just Works imitation) cannot inject any.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError
from bumble.device import Device
from bumble.pairing import PairingConfig, PairingDelegate

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import (
    BumbleBleakClient,
    BumbleBleakScanner,
    central_access,
)
from kmc_host.gateway.link import AddressBook, CursorStore, StrapLink
from kmc_testbed.firmware import load_firmware
from kmc_testbed.radio import VirtualRadio
from packets import PASSKEY, T2000, emulated_strap


class Sink:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    async def __call__(self, strap: str, batch: P.Measurement) -> None:
        self.seqs += [int(s) for s in batch.seq]


async def until(predicate, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def link_for(central: Device, tmp: Path, sink: Sink, passkey: int = PASSKEY, clock=None):
    return StrapLink(
        "KMC-0001",
        CursorStore(tmp / "cursors.json"),
        sink,
        central_access(central),
        now=(lambda: clock.t + P.EPOCH_2000_UNIX) if clock else (lambda: T2000 + 946684800.0),
        scan_timeout=1.0,
        backoff_s=(0.05, 0.1),
        passkey=passkey,
        addresses=AddressBook(tmp / "strap_addresses.json"),
    )


async def run_link(link: StrapLink, until_done) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        await until_done()
    finally:
        stop.set()
        await task


async def commissioned(tmp: Path, samples: int):
    """A strap that took `samples` samples, commissioned to a gateway that has fetched them."""
    radio = VirtualRadio()
    central = await radio.device("gateway")
    strap = await emulated_strap(radio, tmp / "strap")
    await strap.run(samples)
    sink = Sink()
    link = link_for(central, tmp, sink, clock=strap.clock)
    await run_link(link, lambda: until(lambda: len(sink.seqs) == samples))
    await until(lambda: strap.ble.device.is_advertising)  # let go: the strap advertises again
    return radio, central, strap, sink, link


def test_commissioning_bonds_once_pins_the_address_and_data_flows(tmp_path):
    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await emulated_strap(radio, tmp_path / "strap")
        await strap.run(50)
        assert strap.strap.ble.bonds.is_open()
        sink = Sink()
        link = link_for(central, tmp_path, sink, clock=strap.clock)
        await run_link(link, lambda: until(lambda: len(sink.seqs) == 50))
        assert not strap.strap.ble.bonds.is_open()  # bonded to this gateway, closed to others
        keys = await central.keystore.get(strap.address)
        assert keys is not None and keys.ltk is not None and keys.ltk.authenticated
        assert link.addresses is not None and link.addresses.get("KMC-0001") == strap.address
        # the next connection encrypts with the bond: no pairing, the same data path
        await strap.run(20)
        await run_link(link, lambda: until(lambda: len(sink.seqs) == 70))
        assert sink.seqs == list(range(70))
        assert link.stats.connections == 2 and link.stats.auth_failures == 0

    asyncio.run(main())


def test_a_wrong_passkey_bonds_nothing_and_the_gateway_keeps_trying(tmp_path):
    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await emulated_strap(radio, tmp_path / "strap")
        await strap.run(30)
        sink = Sink()
        link = link_for(central, tmp_path, sink, passkey=(PASSKEY + 1) % 1_000_000)
        await run_link(link, lambda: until(lambda: link.stats.auth_failures >= 2))
        assert sink.seqs == [] and strap.strap.ble.bonds.is_open()
        assert "CONFIRM_VALUE_FAILED" in link.stats.last_error
        assert await central.keystore.get(strap.address) is None

    asyncio.run(main())


def test_a_copied_address_without_the_bond_cannot_inject_data(tmp_path):
    """The real strap is gone; an impostor with its name, its address and the strap firmware
    (but not its keys) advertises: the gateway's encryption with the bond fails."""

    async def main():
        radio, central, strap, sink, link = await commissioned(tmp_path, 10)
        strap.close()
        impostor = await emulated_strap(radio, tmp_path / "impostor", address=strap.address)
        await impostor.run(500)  # samples 0..499 it would like the gateway to take
        await run_link(link, lambda: until(lambda: link.stats.auth_failures >= 2))
        assert sink.seqs == list(range(10))
        assert "could not encrypt with our bond" in link.stats.last_error
        assert impostor.strap.ble.sent_packets == 0

    asyncio.run(main())


def test_a_name_alone_at_another_address_is_not_even_connected(tmp_path):
    async def main():
        radio, central, strap, sink, link = await commissioned(tmp_path, 10)
        strap.close()
        await strap.ble.device.stop_advertising()
        impostor = await emulated_strap(radio, tmp_path / "impostor")  # a new address
        connections = []
        impostor.ble.device.on("connection", connections.append)
        await impostor.run(100)
        await run_link(link, lambda: until(lambda: link.stats.connect_failures >= 2))
        assert sink.seqs == list(range(10)) and connections == []
        assert "not found" in link.stats.last_error

    asyncio.run(main())


def test_a_just_works_imitation_is_refused_at_commissioning(tmp_path):
    """A device that advertises like a fresh strap but pairs without a passkey (Just Works):
    the gateway refuses the unauthenticated bond and forgets it."""

    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        fake = await radio.device("fake")
        fake.pairing_config_factory = lambda c: PairingConfig(
            delegate=PairingDelegate(PairingDelegate.NO_OUTPUT_NO_INPUT),
            identity_address_type=PairingConfig.AddressType.RANDOM,
        )
        fw = load_firmware()["protocol"]  # advertise exactly as a strap does
        adv = fw.advertising_payload("KMC-0001", fw.uuid_le(fw.KMC_SERVICE_UUID))
        await fake.start_advertising(advertising_data=bytes(adv), auto_restart=True)
        sink = Sink()
        link = link_for(central, tmp_path, sink)
        await run_link(link, lambda: until(lambda: link.stats.auth_failures >= 2))
        assert sink.seqs == []
        assert "not authenticated" in link.stats.last_error
        assert await central.keystore.get(str(fake.random_address)) is None
        assert link.addresses is not None and link.addresses.get("KMC-0001") is None

    asyncio.run(main())


def test_a_foreign_central_gets_nothing_from_a_bonded_strap_even_with_its_passkey(tmp_path):
    async def main():
        radio, central, strap, sink, link = await commissioned(tmp_path, 20)
        sent = strap.strap.ble.sent_packets

        # a bonded strap does not show its passkey: the link ends during pairing, even with
        # the passkey read off the label: still not the bonded gateway
        got = await central_pairs(radio, "stranger", PASSKEY)
        await asyncio.sleep(0.2)
        assert got == [] and strap.strap.ble.sent_packets == sent
        assert strap.strap.ble.refused >= 1  # dropped at pairing: not the bonded gateway
        peers = [e for e in strap.strap.ble.bonds.entries if e[0] == 2]
        assert len(peers) == 1  # the stranger's keys were not kept
        # and the bonded gateway still gets in
        await strap.run(5)
        await run_link(link, lambda: until(lambda: len(sink.seqs) == 25))

    asyncio.run(main())


async def central_pairs(radio, name: str, passkey: int, address: str | None = None) -> list[bytes]:
    """A central with no keys pairs with the strap, subscribes and asks for every sample; what
    it got. At `address` (the gateway's, copied off the air, while the gateway is off the air)
    the strap's stack sees a Pairing Request from a bonded peer (repeat pairing). The strap
    ends the link during pairing (bumble's SMP then raises CancelledError through the client)."""
    kw = {} if address is None else {"address": address}
    central = await radio.device(name, **kw)
    device = await BleakScanner.find_device_by_filter(
        lambda d, a: a.local_name == "KMC-0001",
        timeout=5.0,
        backend=BumbleBleakScanner,
        central=central,
    )
    assert device is not None
    got: list[bytes] = []
    with pytest.raises((BleakError, asyncio.CancelledError)):
        async with BleakClient(
            device, backend=BumbleBleakClient, central=central, pair=True, passkey=passkey
        ) as client:
            await client.start_notify(P.MEASUREMENT_UUID, lambda c, d: got.append(bytes(d)))
            await client.write_gatt_char(P.CONTROL_UUID, P.resume_from(0), response=True)
            await asyncio.sleep(0.5)
    radio.power_off(radio.controller(central))
    return got


@pytest.mark.parametrize("label", [False, True], ids=["without-passkey", "with-label-passkey"])
def test_a_repeat_pairing_at_the_gateways_address_keeps_the_bond_and_the_gateway_drains(
    tmp_path, label
):
    """Issue 16 item 1: NimBLE deletes a bonded peer's keys on a repeat pairing and retries;
    the strap keeps the bond (flash and in use), the host does not hang, the impostor gets
    nothing, and the real gateway, back with its keys, reconnects and drains."""

    async def main():
        radio, central, strap, sink, link = await commissioned(tmp_path, 20)
        ble = strap.strap.ble
        bond = list(ble.bonds.entries)
        sent = ble.sent_packets
        address = str(central.random_address)
        assert ble.bonds.knows(1, bytes(reversed(bytes(central.random_address))))  # random
        passkey = PASSKEY if label else (PASSKEY + 1) % 1_000_000
        got = await central_pairs(radio, "impostor", passkey, address)
        await until(lambda: ble.conn is None)
        assert strap.ble.hangs == [] and strap.ble.repeat_pairings == 1
        assert got == [] and ble.sent_packets == sent and ble.refused >= 1
        assert ble.bonds.entries == bond  # in RAM
        assert type(ble.bonds)(ble.bonds.path).entries == bond  # and on flash (the firmware's)
        # the gateway comes back (its keys kept) and encrypts with the bond
        gateway = await radio.device("gateway", address=address)
        gateway.keystore = central.keystore
        await strap.run(5)
        back = link_for(gateway, tmp_path, sink, clock=strap.clock)
        await run_link(back, lambda: until(lambda: len(sink.seqs) == 25))
        assert sink.seqs == list(range(25)) and back.stats.auth_failures == 0
        assert strap.ble.hangs == []

    asyncio.run(main())


def test_the_address_book_survives_a_restart_and_a_corrupt_one_is_named(tmp_path):
    book = AddressBook(tmp_path / "strap_addresses.json")
    book.set("KMC-0001", "f0:00:00:00:00:02")
    assert AddressBook(tmp_path / "strap_addresses.json").get("KMC-0001") == "F0:00:00:00:00:02"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad.json: strap address file is corrupt"):
        AddressBook(tmp_path / "bad.json")
