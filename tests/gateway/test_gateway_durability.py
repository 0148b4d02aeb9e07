"""What a power cut may take from the gateway and the sink (docs/operations.md, "Power cuts").

A power cut loses what the kernel had not yet written; no test here cuts the power. What is
tested is the order the guarantees rest on: the gateway's cursor file moves only after the
outbox's `sync`, which puts the messages into the database file itself (a copy of that file
alone, without its write-ahead log, holds them); the sink's spool syncs every commit before the
broker is told; the small state files reach the disk before they replace the old ones.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from kmc_host.gateway import jsonfile
from kmc_host.gateway.link import CursorStore
from kmc_host.mqtt import Outbox
from kmc_host.sink.spool import Spool


def rows_in_the_database_file_alone(db: Path, scratch: Path) -> int:
    """The messages a copy of the database file holds without its write-ahead log: what is
    on the disk once the log's unsynced pages are gone."""
    copy = scratch / "copy.db"
    shutil.copyfile(db, copy)
    con = sqlite3.connect(copy)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        return con.execute("SELECT count(*) FROM outbox").fetchone()[0] if "outbox" in tables else 0
    finally:
        con.close()


def test_outbox_sync_puts_every_message_in_the_database_file(tmp_path: Path):
    box = Outbox(tmp_path / "outbox.db")
    for k in range(3):
        box.put("kmc/site1/ward-a/S1/samples", b"x" * 200 + bytes([k]))
    (tmp_path / "scratch").mkdir()
    # committed, but only in the write-ahead log, which synchronous=NORMAL has not synced
    assert rows_in_the_database_file_alone(box.path, tmp_path / "scratch") == 0
    box.sync()
    assert rows_in_the_database_file_alone(box.path, tmp_path / "scratch") == 3
    box.put("kmc/site1/ward-a/S1/samples", b"later")
    box.sync()
    assert rows_in_the_database_file_alone(box.path, tmp_path / "scratch") == 4
    box.close()


def test_the_cursor_file_moves_only_after_the_outbox_is_synced(tmp_path: Path):
    box = Outbox(tmp_path / "outbox.db")
    path = tmp_path / "cursors.json"
    (tmp_path / "scratch").mkdir()
    seen: list[tuple[dict, int]] = []  # at each barrier: the cursor file, the messages synced

    def barrier() -> None:
        on_disk = json.loads(path.read_text()) if path.exists() else {}
        box.sync()
        seen.append((on_disk, rows_in_the_database_file_alone(box.path, tmp_path / "scratch")))

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
    """A barrier that fails (the disk refuses the sync) leaves the file as it was and the
    move still to be written: the next flush writes it."""
    path = tmp_path / "cursors.json"
    failing = [True]

    def barrier() -> None:
        if failing[0]:
            raise OSError(28, "No space left on device")

    cursors = CursorStore(path, barrier)
    with pytest.raises(OSError, match="No space left"):
        cursors.set("S1", 10)
    assert not path.exists()
    failing[0] = False
    cursors.flush()
    assert json.loads(path.read_text()) == {"S1": 10}


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
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(f"replace {Path(src).name} -> {Path(dst).name}")
        real_replace(src, dst)

    monkeypatch.setattr(jsonfile.os, "fsync", fsync)
    monkeypatch.setattr(jsonfile.os, "replace", replace)
    path = tmp_path / "cursors.json"
    jsonfile.write_map(path, {"S1": 7})
    assert events == [
        "fsync cursors.tmp",
        "replace cursors.tmp -> cursors.json",
        f"fsync {tmp_path.name}",
    ]
    assert json.loads(path.read_text()) == {"S1": 7}
