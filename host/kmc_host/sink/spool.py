"""The sink's spool: the MQTT outbox's durable FIFO (`kmc_host.mqtt.Outbox`, SQLite in WAL mode)
holding line protocol, compressed, with one more operation, `put_many`: a batch of messages in
one transaction.

Why (benchmarks/bench_sink.py): a samples message of 60 samples is some 9 KB of line protocol,
and putting it in SQLite and deleting it again cost more than building it (~550 us a message
here, most of it WAL pages and checkpoints). zlib at level 1 makes it ~1 KB, and the spool's
round trip less than half. A transaction per batch, not per message, saves a WAL commit each.
All or none: a batch that does not fit (a full disk) is rolled back and held, unacknowledged,
as a single message would be.

Payloads are stored zlib-compressed; `oldest` gives them back as they were put. A row written
by a sink before compression (plain line protocol, which starts with a measurement name and so
never with zlib's header) is read as it is: a spool left by an older version drains unchanged.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from pathlib import Path

from ..mqtt import Outbox, OutboxFull
from ..mqtt.outbox import Message

_ZLIB = b"\x78\x01"  # the header of a zlib stream at level 1


def _pack(payload: bytes) -> bytes:
    return zlib.compress(payload, 1)


def _unpack(stored: bytes) -> bytes:
    return zlib.decompress(stored) if stored.startswith(_ZLIB) else stored


class Spool(Outbox):
    def __init__(self, path: Path, reserve_mb: float = 0.0) -> None:
        # each batch on the disk before its messages are acknowledged: the broker then
        # forgets them, so a power cut must not take a batch the spool said it had
        super().__init__(path, reserve_mb, sync_each_commit=True)

    def put(self, topic: str, payload: bytes, retain: bool = False) -> int:
        return super().put(topic, _pack(payload), retain)

    def oldest(self, limit: int, after: int = 0) -> list[Message]:
        return [
            Message(m.id, m.topic, _unpack(m.payload), m.retain)
            for m in super().oldest(limit, after)
        ]

    def put_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Queue (topic, payload) messages on disk in one transaction, in order; OutboxFull
        (and none of them queued) if the disk is really full."""
        rows = [(topic, _pack(payload), 0) for topic, payload in messages]
        with self._lock:
            try:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(
                        "INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)", rows
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may have rolled it back itself
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:  # "database or disk is full"
                self._room_bytes = 0
                self._checked_at = time.monotonic()
                raise OutboxFull(f"{self.path}: {exc}") from None
            # what the inserts may take: the rows in the table, and page frames in the WAL
            self._room_bytes -= sum(len(p) + len(t) + 2 * self._page for t, p, _ in rows)
