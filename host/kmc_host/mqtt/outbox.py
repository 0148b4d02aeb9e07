"""An outbox of MQTT messages: every message is on disk before anyone waits for the broker.

A broker outage of hours must lose nothing and replay in order. Messages go into a SQLite table
(stdlib, crash-safe with WAL) with increasing ids; the publisher sends them oldest first and
deletes each one only when the broker has acknowledged it (QoS 1 PUBACK). After a crash or a
restart the remaining rows are simply sent again: delivery is at least once, and every consumer
of our topics is idempotent (a sample is keyed by strap and sequence number). The gateway's
publisher sends from one; the sink keeps what it received in another (its spool) until InfluxDB
has it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import KmcError

__all__ = ["Message", "Outbox", "OutboxFull"]


class OutboxFull(KmcError):
    """The disk under the outbox is nearly full: take no more samples from the straps for now
    (they keep them, 36 h) rather than fill the disk until nothing, not even a delete, works."""


@dataclass(frozen=True)
class Message:
    id: int
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """A durable FIFO of MQTT messages (thread-safe: paho's callbacks run in its thread)."""

    def __init__(
        self, path: Path, reserve_mb: float = 0.0, *, sync_each_commit: bool = False
    ) -> None:
        """`sync_each_commit`: every put reaches the disk before it returns (SQLite's
        synchronous=FULL), for a caller that lets the sender forget the message at once (the
        sink acknowledges to the broker). Otherwise (NORMAL) a put survives a crash of the
        process but a power cut only once `sync` has run: the gateway syncs before its cursor
        file moves past the samples (`CursorStore`), once a second rather than at every put."""
        self.path = path
        self.reserve_bytes = int(reserve_mb * 1024 * 1024)
        self._checked_at = 0.0
        self._folder_synced = False  # sync(): the folder's entry for the log, once
        self._room_bytes = 0  # free disk + freed outbox pages at the last check, minus writes since
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync_each_commit else 'NORMAL'}")
        # a small write-ahead log: checkpointed every 100 pages and cut back to 256 kB, so it
        # cannot eat the disk's last megabytes while the broker is away
        self._db.execute("PRAGMA wal_autocheckpoint=100")
        self._db.execute("PRAGMA journal_size_limit=262144")
        self._page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
            " retain INTEGER NOT NULL)"
        )

    def ensure_room(self) -> None:
        """Raise OutboxFull when the disk is down to the reserve: called before a strap's batch
        is taken, so a batch is either taken whole or left on the strap (the reserve leaves room
        for the few messages a batch makes)."""
        with self._lock:
            if not self._has_room():
                raise OutboxFull(
                    f"{self.path.parent}: less than {self.reserve_bytes / 2**20:g} MB left "
                    "for the outbox"
                )

    def put(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Queue a message on disk; OutboxFull only if the disk is really full."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)",
                    (topic, payload, int(retain)),
                )
            except sqlite3.OperationalError as exc:  # "database or disk is full"
                self._room_bytes = 0
                self._checked_at = time.monotonic()
                raise OutboxFull(f"{self.path}: {exc}") from None
            # what the insert may take: the row in the table, and page frames in the WAL
            self._room_bytes -= len(payload) + len(topic) + 2 * self._page
            return int(cur.lastrowid or 0)

    def sync(self) -> None:
        """Make every message put so far survive a power cut: fsync the write-ahead log, where
        synchronous=NORMAL leaves each commit unsynced (what FULL does at every commit, done
        once for all of them). Not a checkpoint: a checkpoint syncs the log only when it copies
        pages, which a PASSIVE one skips, without a word, while another connection reads (an
        operator's sqlite3 shell). The folder is synced once too, for the log's own entry.
        OSError when the disk refuses it."""
        wal = self.path.with_name(self.path.name + "-wal")
        with self._lock:
            if wal.exists():  # (none yet: nothing has been put)
                fd = os.open(wal, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if not self._folder_synced:
                fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._folder_synced = True

    def _has_room(self, every_s: float = 1.0) -> bool:
        """Free disk plus the pages the outbox has freed (SQLite reuses them), minus what was
        written since, above the reserve; the disk itself is asked at most once a second."""
        if self.reserve_bytes <= 0:
            return True
        now = time.monotonic()
        if now - self._checked_at >= every_s:
            free = shutil.disk_usage(self.path.parent).free
            pages = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            size = self._db.execute("PRAGMA page_size").fetchone()[0]
            self._room_bytes = free + pages * size
            self._checked_at = now
        return self._room_bytes > self.reserve_bytes

    def oldest(self, limit: int, after: int = 0) -> list[Message]:
        """Up to `limit` messages with id > after, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [Message(int(i), str(t), bytes(p), bool(r)) for i, t, p, r in rows]

    def remove(self, message_id: int) -> None:
        with self._lock:
            try:
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
            except sqlite3.OperationalError:  # a full disk: empty the WAL into the table, retry
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def remove_many(self, message_ids: list[int]) -> None:
        """Delete in one transaction: each page the rows are on goes to the WAL once, not once
        per row (which on a nearly full disk is the difference between fitting and not)."""
        rows = [(i,) for i in message_ids]
        with self._lock:
            try:
                self._delete(rows)
            except sqlite3.OperationalError:  # a full disk: empty the WAL into the table, retry
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._delete(rows)

    def _delete(self, rows: list[tuple[int]]) -> None:
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
