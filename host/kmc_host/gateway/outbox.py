"""The gateway's outbox: every message is on disk before anyone waits for the broker.

A broker outage of hours must lose nothing and replay in order. Messages go into a SQLite table
(stdlib, crash-safe with WAL) with increasing ids; the publisher sends them oldest first and
deletes each one only when the broker has acknowledged it (QoS 1 PUBACK). After a crash or a
restart the remaining rows are simply sent again: delivery is at least once, and every consumer
of our topics is idempotent (a sample is keyed by strap and sequence number).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Message:
    id: int
    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """A durable FIFO of MQTT messages (thread-safe: paho's callbacks run in its thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            "id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,"
            " retain INTEGER NOT NULL)"
        )

    def put(self, topic: str, payload: bytes, retain: bool = False) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)",
                (topic, payload, int(retain)),
            )
            return int(cur.lastrowid or 0)

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
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def remove_many(self, message_ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in message_ids])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
