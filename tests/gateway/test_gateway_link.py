"""The gateway's strap link over BLE (bleak on bumble) to the emulated firmware."""

import asyncio

import pytest
from bleak.exc import BleakDBusError, BleakError
from bumble import hci

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import (
    central_access,
)
from kmc_host.gateway.link import CursorStore, StrapLink, is_connection_limit
from kmc_testbed.radio import VirtualRadio
from packets import PASSKEY, T2000, emulated_strap


class Sink:
    """Downstream storage: every batch, in order (the MQTT outbox in the gateway)."""

    def __init__(self):
        self.seqs = []

    async def __call__(self, strap, batch):
        self.seqs += [int(s) for s in batch.seq]


async def until(predicate, timeout=20.0):
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def make_link(strap, central, cursors, sink):
    return StrapLink(
        "KMC-0001",
        cursors,
        sink,
        central_access(central),
        now=lambda: strap.clock.t + P.EPOCH_2000_UNIX,
        scan_timeout=2.0,
        backoff_s=(0.05, 0.2),
        passkey=PASSKEY,
    )


def test_disconnect_gateway_restart_and_strap_reboot_lose_and_repeat_nothing(tmp_path):
    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        strap = await emulated_strap(radio, tmp_path / "strap")
        await strap.run(200)
        cursors = CursorStore(tmp_path / "cursors.json")
        sink = Sink()
        stop = asyncio.Event()
        link = make_link(strap, central, cursors, sink)
        task = asyncio.create_task(link.run(stop))
        await until(lambda: len(sink.seqs) == 200)

        # the link drops (strap out of range): the gateway reconnects and resumes
        for conn in list(strap.ble._connections.values()):
            await conn.disconnect()
        await strap.run(100, 0.001)
        await until(lambda: link.stats.connections == 2 and len(sink.seqs) >= 300)

        # the gateway restarts: a new link, the cursor from disk
        stop.set()
        await task
        await strap.run(50)
        stop2 = asyncio.Event()
        link2 = make_link(strap, central, CursorStore(tmp_path / "cursors.json"), sink)
        task2 = asyncio.create_task(link2.run(stop2))
        await until(lambda: len(sink.seqs) >= 350)
        await strap.run(20, 0.001)
        await until(lambda: len(sink.seqs) >= 370)
        stop2.set()
        await task2
        return sink, link, link2, strap

    sink, link, link2, strap = asyncio.run(main())
    assert sink.seqs == list(range(strap.strap.store.next_seq))
    assert link.stats.duplicates == link2.stats.duplicates == 0 and link.stats.missing == 0
    assert link.stats.connections == 2 and link2.stats.connections == 1


def test_a_rebooted_strap_is_a_counted_gap_not_duplicates(tmp_path):
    async def main():
        radio = VirtualRadio()
        central = await radio.device("gateway")
        root = tmp_path / "strap"
        strap = await emulated_strap(radio, root)
        await strap.run(90)  # 60 flushed to flash, 30 only in RAM
        sink = Sink()
        stop = asyncio.Event()
        link = make_link(strap, central, CursorStore(tmp_path / "c.json"), sink)
        task = asyncio.create_task(link.run(stop))
        await until(lambda: len(sink.seqs) == 90)
        stop.set()
        await task
        strap.close()  # power cut: this strap is gone from the air...
        await asyncio.sleep(0.05)
        await strap.ble.device.stop_advertising()
        # ... and boots again on the same flash
        strap2 = await emulated_strap(
            radio, root, t2000=T2000 + 100, name="strap-rebooted", address=strap.address
        )
        await strap2.run(10)
        stop = asyncio.Event()
        link = make_link(strap2, central, CursorStore(tmp_path / "c.json"), sink)
        task = asyncio.create_task(link.run(stop))
        await until(lambda: len(sink.seqs) == 100)
        stop.set()
        await task
        return sink, link

    sink, link = asyncio.run(main())
    # 60..119 were never used again (flush_every), the RAM-only 60..89 were already fetched
    assert sink.seqs == list(range(90)) + list(range(120, 130))
    assert link.stats.missing == 30 and link.stats.duplicates == 0


def test_malformed_packets_are_counted_and_a_babbling_strap_isolated(tmp_path):
    sink = Sink()
    link = StrapLink("KMC-0001", CursorStore(tmp_path / "c.json"), sink, malformed_limit=3)

    async def main():
        assert await link._take(b"\x01\x01", client=None) == "skip"
        assert (
            await link._take(b"\x02\x01\x01\x00\x00\x00\x00\x00" + bytes(12), client=None) == "skip"
        )
        assert await link._take(b"junk", client=None) == "isolate"

    asyncio.run(main())
    assert link.stats.malformed == 3 and "shorter than its 8-byte header" in link.stats.errors[0]
    assert sink.seqs == []


def test_corrupt_cursor_file_is_a_clear_error(tmp_path):
    path = tmp_path / "cursors.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="cursor file is corrupt"):
        CursorStore(path)


@pytest.mark.parametrize(
    ("error", "no_room"),
    [
        (BleakError(f"could not connect to X: {hci.HCI_Error(0x09)}"), True),  # bumble, NimBLE
        (BleakError(f"could not connect to X: {hci.HCI_Error(0x07)}"), True),  # Zephyr's 0x07
        (
            BleakDBusError("org.bluez.Error.Failed", ["le-connection-concurrent-connection-limit"]),
            True,
        ),
        (BleakDBusError("org.bluez.Error.Failed", ["le-connection-memory-allocation"]), True),
        (BleakError(f"could not connect to X: {hci.HCI_Error(0x08)}"), False),  # timeout
        (BleakError(f"could not connect to X: {hci.HCI_Error(0x0B)}"), False),  # already there
        (BleakDBusError("org.bluez.Error.Failed", ["le-connection-abort-by-local"]), False),
        (TimeoutError("no connection within 10 s"), False),
    ],
)
def test_a_controller_without_room_is_told_apart_from_other_failures(error, no_room):
    """A refusal for want of room lowers the adapter's slots and is not the strap's fault; any
    other failure is. The words are those bumble and BlueZ (bluetoothd's src/error.c, from
    the kernel's EMLINK for 0x09 and ENOMEM for 0x07) use."""
    assert is_connection_limit(error) is no_room
