"""What a power cut may take from the gateway and the sink (docs/operations.md, "Power cuts").

A power cut loses what the kernel had not yet written; no test here cuts the power. What is
tested is the order the guarantees rest on: `Outbox.sync` fsyncs the outbox's write-ahead log
(also while another connection reads); the gateway's cursor file moves only after that sync,
in the running gateway too; the sink's spool syncs every commit; the small state files reach
the disk before they replace the old ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest
from test_gateway import write_config

from kmc_host import protocol as P
from kmc_host.ble.bumble_backend import central_access
from kmc_host.gateway import jsonfile
from kmc_host.gateway import link as link_module
from kmc_host.gateway.config import load_config
from kmc_host.gateway.link import CursorStore
from kmc_host.gateway.service import Gateway
from kmc_host.mqtt import Outbox
from kmc_host.mqtt import outbox as outbox_module
from kmc_host.sink.spool import Spool
from kmc_testbed.radio import VirtualRadio
from packets import emulated_strap
from servers import Mosquitto


class Fsyncs:
    """os.fsync, recording the name of each file or folder synced (the real fsync still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *modules) -> None:
        self.names: list[str] = []
        real = os.fsync

        def fsync(fd: int) -> None:
            self.names.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
            real(fd)

        for module in modules:
            monkeypatch.setattr(module.os, "fsync", fsync)


def test_outbox_sync_fsyncs_the_log_even_while_another_connection_reads(tmp_path, monkeypatch):
    """synchronous=NORMAL leaves a commit in the write-ahead log unsynced; sync() fsyncs the
    log itself. A checkpoint would not do: a PASSIVE one skips the sync while a reader holds a
    snapshot (here an operator's shell, left in a transaction)."""
    fsyncs = Fsyncs(monkeypatch, outbox_module)
    box = Outbox(tmp_path / "outbox.db")
    box.put("kmc/site1/ward-a/S1/samples", b"samples 0..59")
    shell = sqlite3.connect(tmp_path / "outbox.db", isolation_level=None)
    shell.execute("BEGIN")
    assert shell.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
    box.put("kmc/site1/ward-a/S1/samples", b"samples 60..119")
    box.sync()
    assert fsyncs.names == ["outbox.db-wal", tmp_path.name]  # the log, and its folder once
    box.put("kmc/site1/ward-a/S1/samples", b"samples 120..179")
    box.sync()
    assert fsyncs.names[2:] == ["outbox.db-wal"]
    shell.execute("COMMIT")
    shell.close()
    box.close()


def test_the_cursor_file_moves_only_after_the_outbox_is_synced(tmp_path: Path):
    box = Outbox(tmp_path / "outbox.db")
    path = tmp_path / "cursors.json"
    seen: list[tuple[dict, int]] = []  # at each barrier: the cursor file, the messages put

    def barrier() -> None:
        on_disk = json.loads(path.read_text()) if path.exists() else {}
        box.sync()
        seen.append((on_disk, len(box.oldest(100))))

    cursors = CursorStore(path, barrier, every_s=3600.0)
    box.put("t", b"samples 0..9")
    cursors.set("S1", 10)  # the first move is written at once, behind a sync
    assert seen == [({}, 1)] and json.loads(path.read_text()) == {"S1": 10}
    box.put("t", b"samples 10..19")
    cursors.set("S1", 20)  # within every_s: in memory only, no sync, the file as it was
    box.put("t", b"samples 0..4 of S2")
    cursors.set("S2", 5)
    assert len(seen) == 1 and json.loads(path.read_text()) == {"S1": 10}
    assert cursors.get("S1") == 20 and cursors.get("S2") == 5
    cursors.flush()  # the end of a visit, or the stop: the sync first, then the file
    assert seen[1] == ({"S1": 10}, 3)
    assert json.loads(path.read_text()) == {"S1": 20, "S2": 5}
    cursors.flush()  # nothing moved: neither a sync nor a write
    assert len(seen) == 2
    assert CursorStore(path).get("S1") == 20  # what a restart reads
    box.close()


def test_a_cursor_not_saved_stays_to_be_saved(tmp_path: Path):
    """A sync the disk refuses leaves the file as it was and the move still to be written
    (logged, not raised: the samples themselves are in the outbox); the next flush writes it."""
    path = tmp_path / "cursors.json"
    failing = [True]

    def barrier() -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")

    cursors = CursorStore(path, barrier)
    cursors.set("S1", 10)
    assert not path.exists() and cursors.get("S1") == 10
    assert cursors.flush() is False and not path.exists()
    failing[0] = False
    assert cursors.flush() is True
    assert json.loads(path.read_text()) == {"S1": 10}


@pytest.mark.usefixtures("mqtt_contract")
def test_the_running_gateway_writes_its_cursors_only_behind_the_outbox_sync(tmp_path, monkeypatch):
    """The gateway as a ward runs it (its outbox, a real Mosquitto, an emulated strap): every
    write of cursors.json comes right after a sync of the outbox's log, and after the stop the
    file names the strap's next sample."""
    events: list[str] = []
    real_sync, real_write = Outbox.sync, link_module.write_map

    def sync(self: Outbox) -> None:
        real_sync(self)
        events.append("sync")

    def write_map(path: Path, mapping: dict) -> None:
        real_write(path, mapping)
        events.append(f"write {path.name}")

    monkeypatch.setattr(Outbox, "sync", sync)
    monkeypatch.setattr(link_module, "write_map", write_map)
    broker = Mosquitto(tmp_path).start()
    try:
        cfg = load_config(write_config(tmp_path, broker.port))

        async def main():
            radio = VirtualRadio()
            central = await radio.device("gateway")
            strap = await emulated_strap(radio, tmp_path / "strap")
            gw = Gateway(
                cfg, central_access(central), now=lambda: strap.clock.t + P.EPOCH_2000_UNIX
            )
            stop = asyncio.Event()
            task = asyncio.create_task(gw.run(stop))
            await asyncio.wait_for(gw.straps["KMC-0001"].link.connected.wait(), 20)
            for _ in range(3):  # three bursts a second apart: the file follows each
                await strap.run(50, 0.002)
                await asyncio.sleep(1.1)
            link = gw.straps["KMC-0001"].link
            for _ in range(400):  # every sample taken, before the stop
                if link.stats.samples == 150:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            await task
            assert link.stats.samples == 150
            return strap.strap.store.next_seq

        next_seq = asyncio.run(main())
    finally:
        broker.stop()
    writes = [k for k, e in enumerate(events) if e == "write cursors.json"]
    assert len(writes) >= 2, events  # a second's moves, and the visit's end at the stop
    assert all(k > 0 and events[k - 1] == "sync" for k in writes), events
    assert json.loads((cfg.data_dir / "cursors.json").read_text()) == {"KMC-0001": next_seq}


def test_the_spool_syncs_each_commit_and_the_gateway_outbox_does_not(tmp_path: Path):
    """The sink acknowledges a message to the broker once spooled, and the broker forgets it:
    synchronous=FULL (2). The gateway's outbox is synced by its cursor store instead: NORMAL (1)."""
    spool = Spool(tmp_path / "spool.db")
    box = Outbox(tmp_path / "outbox.db")
    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 1
    spool.close()
    box.close()


def test_a_state_file_is_on_the_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    """write_map: the new text fsync'd, then the rename, then the folder fsync'd."""
    fsyncs = Fsyncs(monkeypatch, jsonfile)
    real_replace = os.replace

    def replace(src, dst) -> None:
        fsyncs.names.append(f"replace {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(jsonfile.os, "replace", replace)
    path = tmp_path / "cursors.json"
    jsonfile.write_map(path, {"S1": 7})
    assert fsyncs.names == [
        "cursors.tmp",
        "replace cursors.tmp -> cursors.json",
        tmp_path.name,
    ]
    assert json.loads(path.read_text()) == {"S1": 7}
