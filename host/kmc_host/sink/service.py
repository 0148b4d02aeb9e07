"""`kmc sink`: the gateway's MQTT messages -> InfluxDB, losing nothing on either side.

    broker --QoS 1, persistent session--> on_message --> inbox (memory, not acknowledged)
    inbox --spooler: lines of every message taken, one transaction--> spool (SQLite) --> PUBACK
    spool --writer: batches of batch_lines points--> InfluxDB --> delete

Why this order: a message is acknowledged to the broker only once it is on the sink's disk, so a
sink killed at any instant gets the unacknowledged messages again from the broker (the session is
persistent: fixed client id, clean_session false). The spool then drains to InfluxDB in batches,
oldest first, and a batch leaves the spool only when InfluxDB has accepted it; while InfluxDB is
away the spool grows on disk and the writer retries with exponential backoff and jitter. Points
carry deterministic timestamps and tags (`schema`), so the replays that at-least-once delivery
implies overwrite instead of duplicating.

Batching, where it pays (benchmarks/bench_sink.py): paho's thread only queues what arrives; the
spooler thread takes everything queued so far (up to the broker's in-flight window), builds the
line protocol of all of it in one vectorised pass (`schema.to_lines_many`), puts it in the spool
in one SQLite transaction and only then acknowledges each message. A message whose connection
ended before it was acknowledged is not acknowledged on the next one (its packet id was the old
connection's); the broker sends it again, and it overwrites the same points.

A message that can never be stored (not JSON, wrong schema, a point InfluxDB refuses) is not
dropped silently: it goes with the reason to `rejected.jsonl` beside the spool and is counted.

A spool that cannot take a message (its disk full) does not wedge the sink. The message is held
in memory, unacknowledged, and so is every message after it, in order; the broker stops sending
once its in-flight window is full (`max_inflight_messages`, 200 in deploy/mosquitto/kmc.conf)
and queues the rest. The writer thread tries the held messages again every second. Space comes
back when InfluxDB takes the spool's batches (SQLite reuses the freed pages) or when the disk is
freed. Each held message is then spooled and acknowledged, oldest first, and the broker goes
on. A sink killed meanwhile loses nothing: the broker resends what was not acknowledged. The
condition is logged and published: `<prefix>/sink/<client id>/status`, retained, is `stalled`
with the count held, `online` again after, and `offline` as the last will.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from ..mqtt import OutboxFull, SinkStatusMessage, mqtt_client, sink_status_topic
from ..mqtt.outbox import Message
from ..mqtt.topics import SAMPLES
from .config import SinkConfig
from .influx import InfluxError, InfluxQL, Writer, make_writer, quote_ident
from .schema import MessageError, to_lines_many
from .spool import Spool

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    received: int = 0  # messages from the broker
    spooled: int = 0  # messages put on disk (and acknowledged)
    rejected: int = 0  # messages in rejected.jsonl
    written_points: int = 0  # points InfluxDB accepted
    write_failures: int = 0  # failed write attempts (each retried)
    store_failures: int = 0  # messages held unacknowledged because the spool could not take them
    stalls: int = 0  # times the spool could not take a message (each ends by itself)


@dataclass
class Received:
    """A message from the broker, not yet looked at (the spooler's inbox)."""

    mid: int
    qos: int
    topic: str
    body: bytes
    connection: int  # Sink._connection when it arrived: its mid is that connection's


@dataclass
class Held:
    """A message received but not yet on disk: acknowledged once it is."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    connection: int = 0


WRITES_IN_FLIGHT = 2  # batches sent to InfluxDB before the first has been answered
SPOOL_BATCH = 500  # messages the spooler takes at most at once (the broker's window is smaller)
INBOX_LIMIT = 2000  # messages received and not yet taken by the spooler, at most


# a line's measurement and tags: up to the first space that is not escaped
_SERIES = re.compile(rb"(?:[^\\ ]|\\.)*")


def subscription(cfg: SinkConfig) -> str:
    """What the sink subscribes to: every gateway message (`<prefix>/site/ward/strap/leaf`), or,
    with `share_group`, its share of them: the broker gives each message to one sink of the
    group (MQTT shared subscription). A message in flight to a sink that dies stays queued for
    that sink's persistent session (Mosquitto 2) and arrives when it comes back."""
    topic = f"{cfg.prefix}/+/+/+/+"
    return f"$share/{cfg.share_group}/{topic}" if cfg.share_group else topic


def _changing_points(batch: list[Message]) -> set[tuple[bytes, bytes]]:
    """The (series, timestamp) of the batch's points that a later message may write with other
    fields: every point but the samples' (a replayed sample is the same point with the same
    fields). An alert's `active` and `ended` are one point, so is a strap-day's `kmc_daily`:
    two batches that share one must reach InfluxDB in order, not both in flight, where the
    older could be applied last and win."""
    keys: set[tuple[bytes, bytes]] = set()
    for m in batch:
        if m.topic.rpartition("/")[2] == SAMPLES:
            continue
        for ln in m.payload.split(b"\n"):
            series = _SERIES.match(ln)
            keys.add((series.group() if series else ln, ln.rpartition(b" ")[2]))
    return keys


class Sink:
    def __init__(self, cfg: SinkConfig, writer: Writer | None = None) -> None:
        self.cfg = cfg
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(cfg.data_dir / "spool.db", cfg.spool_reserve_mb)
        self.rejected_path = cfg.data_dir / "rejected.jsonl"
        self.writer = writer or make_writer(cfg.influx)
        self.stats = SinkStats()
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker queues for this session from here on
        self.influx_ok = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reject_lock = threading.Lock()
        self._held: list[Held] = []  # in arrival order; while any is held, all later ones are
        self._held_lock = threading.Lock()
        self.stalled_since: float | None = None
        self.status_topic = sink_status_topic(cfg.prefix, cfg.broker.client_id)
        self._inbox: list[Received] = []  # paho's thread appends, the spooler takes
        self._inbox_ready = threading.Condition()
        self._connection = 0  # counts connections: an ack goes only on the one it came on
        self._ack_lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain_loop, name="sink-writer", daemon=True)
        self._pool = ThreadPoolExecutor(WRITES_IN_FLIGHT, thread_name_prefix="sink-http")
        self._spooler = threading.Thread(target=self._spool_loop, name="sink-spooler", daemon=True)
        self._client = self._make_client()

    # -- lifecycle

    def start(self) -> None:
        if self.cfg.create_database and self.cfg.influx.api == "v1":
            self._create_database()
        self._thread.start()
        self._spooler.start()
        b = self.cfg.broker
        self._client.connect_async(b.host, b.port, keepalive=b.keepalive_s)
        self._client.loop_start()

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Say offline, disconnect from the broker; optionally wait for the spool to reach
        InfluxDB."""
        if self.connected.is_set():
            body = SinkStatusMessage(state="offline", time=round(time.time(), 3)).encode()
            info = self._client.publish(self.status_topic, body, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()
        with self._inbox_ready:  # not acknowledged: the broker sends them again
            self._inbox.clear()
            self._inbox_ready.notify()
        deadline = time.monotonic() + drain_timeout_s
        while len(self.spool) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        with self._inbox_ready:
            self._inbox_ready.notify()
        if self._spooler.is_alive():
            self._spooler.join(timeout=10)
        if self._thread.is_alive():
            self._thread.join(timeout=self.cfg.influx.timeout_s + 5)
        self._pool.shutdown(wait=False)
        self.writer.close()
        self.spool.close()

    def pending(self) -> int:
        return len(self.spool)

    def held(self) -> int:
        """Messages received that the spool could not take yet (unacknowledged)."""
        with self._held_lock:
            return len(self._held)

    def _status(self, state: str, reason: str | None = None) -> SinkStatusMessage:
        return SinkStatusMessage(
            state=state,
            time=round(time.time(), 3),
            spool=len(self.spool),
            held=len(self._held),
            reason=reason,
        )

    def _publish_status(self, state: str, reason: str | None = None) -> None:
        body = self._status(state, reason).encode()
        self._client.publish(self.status_topic, body, qos=1, retain=True)

    # -- MQTT side (paho's thread)

    def _make_client(self) -> mqtt.Client:
        client = mqtt_client(self.cfg.broker, clean_session=False)  # the broker queues for us
        client.manual_ack_set(True)  # PUBACK only once the message is on disk
        offline = SinkStatusMessage(state="offline").encode()
        client.will_set(
            sink_status_topic(self.cfg.prefix, self.cfg.broker.client_id), offline, 1, True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self.subscribed.set()
        return client

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("broker refused the sink: %s", reason)
            return
        client.subscribe(subscription(self.cfg), qos=1)
        self.connected.set()
        stalled = self.stalled_since is not None
        self._publish_status("stalled" if stalled else "online", "spool full" if stalled else None)
        log.info("sink connected to %s:%d", self.cfg.broker.host, self.cfg.broker.port)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self.connected.clear()
        with self._ack_lock:  # ids from here on are the next connection's
            self._connection += 1
        with self._inbox_ready:
            self._inbox.clear()
        with self._held_lock:  # their ids were this connection's: the broker sends them again
            self._held.clear()
        log.warning("sink lost the broker (%s); paho reconnects", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """paho's thread: queue the message for the spooler, unacknowledged. Nothing may escape:
        paho 2 re-raises a callback's error and its network loop ends with it."""
        try:
            self.stats.received += 1
            m = Received(msg.mid, msg.qos, msg.topic, bytes(msg.payload), self._connection)
            with self._inbox_ready:
                # QoS 1 messages stop at the broker's in-flight window (unacknowledged until
                # spooled); this bounds the rest (QoS 0 from a stray publisher): paho's thread
                # waits, and the socket pushes back, as when it did the work itself
                while len(self._inbox) >= INBOX_LIMIT and not self._stop.is_set():
                    self._inbox_ready.wait(timeout=1.0)
                self._inbox.append(m)
                self._inbox_ready.notify_all()
        except Exception:  # noqa: BLE001 - logged with its traceback, the loop goes on
            log.exception("sink: a message from %s was not taken; not acknowledged", msg.topic)

    # -- the spooler thread: inbox -> spool, then PUBACK

    def _spool_loop(self) -> None:
        """Take what the inbox holds and spool it; an unexpected error is logged, the messages
        stay unacknowledged (the broker sends them again) and the loop goes on."""
        while not self._stop.is_set():
            with self._inbox_ready:
                while not self._inbox and not self._stop.is_set():
                    self._inbox_ready.wait(timeout=1.0)
                batch = self._inbox[:SPOOL_BATCH]
                del self._inbox[:SPOOL_BATCH]
                self._inbox_ready.notify_all()  # room for paho's thread, if it waits
            if not batch:
                continue
            try:
                self._receive(batch)
            except Exception:  # noqa: BLE001 - logged with its traceback, the loop goes on
                log.exception("sink: %d messages were not stored; not acknowledged", len(batch))

    def _receive(self, batch: list[Received]) -> None:
        """Lines for every message of the batch; rejects to rejected.jsonl; the rest into the
        spool in one transaction (or held, in order, when the spool cannot take it); then the
        acknowledgements."""
        try:
            built = self._lines(batch)
        except Exception:  # noqa: BLE001 - one message must not keep the others off the disk
            log.exception("sink: the lines of %d messages at once failed; one by one", len(batch))
            built = []
            for m in batch:
                try:
                    built.extend(self._lines([m]))
                except Exception:  # noqa: BLE001 - logged; the broker sends it again
                    log.exception(
                        "sink: a message from %s was not stored; not acknowledged", m.topic
                    )
                    built.append(None)
        acks: list[Received | Held] = []
        store: list[Held] = []
        for m, lines in zip(batch, built, strict=True):
            if lines is None:
                continue
            if isinstance(lines, MessageError):
                if self._reject(m.topic, m.body, str(lines)):
                    acks.append(m)
            elif lines:
                store.append(Held(m.mid, m.qos, m.topic, lines, m.connection))
            else:  # nothing to store (the gateway's status)
                acks.append(m)
        if store:
            with self._held_lock:
                if self._held or not self._store_many(store):
                    for h in store:
                        self._hold(h)
                else:
                    acks.extend(store)
            self._wake.set()
        for done in acks:
            self._ack(done.mid, done.qos, done.connection)

    def _lines(self, batch: list[Received]) -> list[bytes | MessageError | None]:
        """Each message's line protocol, UTF-8 (b"" for nothing to store), or why it cannot be
        stored."""
        built = to_lines_many(
            [(m.topic, m.body) for m in batch], self.cfg.prefix, samples=self.cfg.samples_lines
        )
        out: list[bytes | MessageError | None] = []
        for m, lines in zip(batch, built, strict=True):
            if isinstance(lines, MessageError):
                out.append(lines)
                continue
            try:
                out.append("\n".join(lines).encode())
            except UnicodeEncodeError as exc:  # the reader refuses these; should one get by
                out.append(MessageError(f"{m.topic}: its points are not UTF-8 text ({exc})"))
        return out

    def _ack(self, mid: int, qos: int, connection: int) -> None:
        """PUBACK, on the connection the message came on only: after a reconnect the broker
        sends it again (with the persistent session) and this copy's id means nothing."""
        with self._ack_lock:
            if connection == self._connection:
                self._client.ack(mid, qos)

    def _store_many(self, batch: list[Held]) -> bool:
        """Put messages in the spool, all or none; False if it cannot take them (a full disk)."""
        try:
            self.spool.ensure_room()  # the reserve: room left to delete what InfluxDB takes
            self.spool.put_many([(m.topic, m.payload) for m in batch])
        except (OutboxFull, sqlite3.Error) as exc:
            if self.stalled_since is None:
                log.error(
                    "spool cannot take messages (%s): holding them unacknowledged (the broker "
                    "queues the rest) until there is room",
                    exc,
                )
            return False
        self.stats.spooled += len(batch)
        return True

    def _store(self, m: Held) -> bool:
        """Put a message in the spool; False if it cannot take it (a full disk)."""
        return self._store_many([m])

    def _hold(self, m: Held) -> None:
        """Keep a message that is not on disk (the held lock is taken)."""
        self._held.append(m)
        self.stats.store_failures += 1
        if self.stalled_since is None:
            self.stalled_since = time.monotonic()
            self.stats.stalls += 1
            self._publish_status("stalled", "spool full")

    def _store_held(self) -> None:
        """The writer thread, every pass: spool the held messages, oldest first, acknowledging
        each; when none is left, the stall is over."""
        with self._held_lock:
            while self._held and self._store(self._held[0]):
                m = self._held.pop(0)
                self._ack(m.mid, m.qos, m.connection)
            if self._held or self.stalled_since is None:
                return
            took = time.monotonic() - self.stalled_since
            self.stalled_since = None
        log.warning("spool takes messages again after %.0f s; nothing was lost", took)
        self._publish_status("online")

    # -- InfluxDB side (the writer thread)

    def _drain_loop(self) -> None:
        """The writer thread; an unexpected error is logged and the loop goes on after a
        second (a thread that ended would leave the spool to grow, unnoticed)."""
        while not self._stop.is_set():
            try:
                self._drain()
            except Exception:  # noqa: BLE001 - logged with its traceback, the loop goes on
                log.exception("sink writer")
                self._stop.wait(1.0)

    def _drain(self) -> None:
        """Batches from the spool to InfluxDB, WRITES_IN_FLIGHT at a time (the next is sent
        while InfluxDB stores the one before: it has cores the sink does not use meanwhile),
        each deleted from the spool once InfluxDB has answered it, oldest first. On a failure
        the other writes are waited for and their batches left in the spool: written again,
        they overwrite the same points."""
        failures = 0
        flying: deque[tuple[list[Message], Future[None]]] = deque()
        try:
            while not self._stop.is_set():
                if self.stalled_since is not None:
                    self._store_held()
                after = flying[-1][0][-1].id if flying else 0
                while len(flying) < WRITES_IN_FLIGHT:
                    batch = self._next_batch(after)
                    if not batch:
                        break
                    if flying and _changing_points(batch) & set().union(
                        *(_changing_points(b) for b, _ in flying)
                    ):
                        break  # sent once the write before it is answered: applied in order
                    body = b"\n".join(m.payload for m in batch).decode()
                    flying.append((batch, self._pool.submit(self.writer.write, [body])))
                    after = batch[-1].id
                if not flying:
                    self._wake.wait(timeout=1.0)
                    self._wake.clear()
                    continue
                batch, done = flying.popleft()
                try:
                    done.result()
                    self._written(batch)
                except sqlite3.Error as exc:  # InfluxDB has the batch; the spool kept it
                    self._settle(flying)
                    log.error("spool cannot delete what InfluxDB took (%s); retrying", exc)
                    self._pause(1.0)  # written again then: the same points, overwritten
                    continue
                except InfluxError as exc:
                    self._settle(flying)
                    self.stats.write_failures += 1
                    if (
                        exc.status == 404
                        and self.cfg.create_database
                        and self.cfg.influx.api == "v1"
                    ):
                        self._create_database()  # not created at start (InfluxDB was away)
                    if not exc.retriable:
                        self._isolate(batch)
                        continue
                    self.influx_ok.clear()
                    failures += 1
                    delay = min(self.cfg.max_backoff_s, 0.5 * 2 ** min(failures, 10))
                    delay *= random.uniform(0.5, 1.0)
                    if failures == 1 or failures % 10 == 0:
                        log.warning(
                            "%s; %d messages wait on disk, retry in %.1f s",
                            exc,
                            len(self.spool),
                            delay,
                        )
                    self._pause(delay)
                    continue
                if failures:
                    log.info("InfluxDB writes again after %d failed attempts", failures)
                failures = 0
                self.influx_ok.set()
        finally:
            self._settle(flying)

    @staticmethod
    def _settle(flying: deque[tuple[list[Message], Future[None]]]) -> None:
        """Wait for the writes in flight and forget them: their batches stay in the spool."""
        for _, done in flying:
            with contextlib.suppress(Exception):
                done.result()
        flying.clear()

    def _pause(self, delay_s: float) -> None:
        """Wait out a retry delay, trying the held messages every second meanwhile: a disk
        freed while InfluxDB is away ends the stall without waiting for InfluxDB."""
        end = time.monotonic() + delay_s
        while not self._stop.is_set() and (left := end - time.monotonic()) > 0:
            if self.stalled_since is not None:
                self._store_held()
            self._stop.wait(min(1.0, left))

    def _next_batch(self, after: int = 0) -> list[Message]:
        """The oldest messages after id `after`, up to batch_lines points (at least one
        message), read from the spool a few dozen at a time: a batch is usually some 80
        messages of 60 samples, and reading hundreds to use a few would copy megabytes for
        nothing."""
        batch: list[Message] = []
        lines = 0
        while True:
            chunk = self.spool.oldest(64, after)
            for m in chunk:
                n = m.payload.count(b"\n") + 1
                if batch and lines + n > self.cfg.batch_lines:
                    return batch
                batch.append(m)
                lines += n
            if len(chunk) < 64:
                return batch
            after = chunk[-1].id

    def _write(self, batch: list[Message]) -> None:
        """One write of the batch's points: the spooled payloads are line protocol already,
        joined as they are (a one-item list: both writers send its text as the body)."""
        self.writer.write([b"\n".join(m.payload for m in batch).decode()])
        self._written(batch)

    def _written(self, batch: list[Message]) -> None:
        """InfluxDB has the batch: out of the spool."""
        self.spool.remove_many([m.id for m in batch])
        self.stats.written_points += sum(m.payload.count(b"\n") + 1 for m in batch)

    def _isolate(self, batch: list[Message]) -> None:
        """InfluxDB refused the batch's data: write message by message, reject the bad ones."""
        for m in batch:
            try:
                self._write([m])
            except InfluxError as exc:
                if exc.retriable:
                    return  # the server went away meanwhile: the rest stays in the spool
                if not self._reject(m.topic, m.payload, f"InfluxDB refused the points: {exc}"):
                    return  # kept in the spool until rejected.jsonl can take it
                self.spool.remove(m.id)

    def _reject(self, topic: str, body: bytes, reason: str) -> bool:
        """Keep a message that can never be stored, with the reason, in rejected.jsonl; False
        if even that file cannot take it."""
        try:
            text: dict[str, str] = {"payload": body.decode()}
        except UnicodeDecodeError:
            text = {"payload_base64": base64.b64encode(body).decode()}
        record = {"time": time.time(), "topic": topic, "reason": reason} | text
        try:
            with self._reject_lock:  # the spooler and the writer both reject
                with self.rejected_path.open("a") as f:  # on the disk before it is acked
                    f.write(json.dumps(record) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                self.stats.rejected += 1
        except OSError as exc:  # the disk full too: keep it at the broker, unacknowledged
            log.error("cannot keep a rejected message in %s (%s)", self.rejected_path, exc)
            return False
        log.warning("rejected a message: %s (kept in %s)", reason, self.rejected_path)
        return True

    def _create_database(self) -> None:
        try:
            InfluxQL(self.cfg.influx).run(
                f"CREATE DATABASE {quote_ident(self.cfg.influx.database)}"
            )
        except InfluxError as exc:
            log.warning(
                "could not create the database (%s); tried again when InfluxDB says it is missing",
                exc,
            )
