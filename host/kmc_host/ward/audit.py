"""The ward's audit log: every alert raised, ended, escalated and acknowledged, and every audio
pause, on disk.

SQLite (stdlib, crash-safe). Two tables: `events`, append-only, what happened when and who
acknowledged or paused (exportable as CSV for the unit's quality meetings); and `alerts`, the
current registry, so a restarted ward service still knows which alerts are open and who
acknowledged them (retained MQTT state brings back the beds, not the alert history). An audio
pause is not kept across a restart: the restarted service sounds every open alarm again.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
from dataclasses import asdict
from pathlib import Path

from ..timefmt import iso_utc
from .model import Alert, AudioPause

COLUMNS = ("at", "event", "strap", "kind", "start", "initials", "alert_id", "detail")


class AuditLog:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " at REAL NOT NULL, event TEXT NOT NULL, alert_id TEXT NOT NULL, strap TEXT,"
            " kind TEXT, start TEXT, initials TEXT)"
        )
        have = {row[1] for row in self._db.execute("PRAGMA table_info(events)")}
        if "detail" not in have:  # a log from before audio pauses: the column is added
            self._db.execute("ALTER TABLE events ADD COLUMN detail TEXT")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, body TEXT NOT NULL)"
        )

    def record(
        self, event: str, what: Alert | AudioPause, at: float, initials: str | None = None
    ) -> None:
        """One event: an alert's (and the alert's current state in the registry), or an audio
        pause's (who, and its length, highest priority or how it ended, in `detail`)."""
        if isinstance(what, AudioPause):
            self._pause(event, what, at)
        else:
            self._alert(event, what, at, initials)

    def _pause(self, event: str, pause: AudioPause, at: float) -> None:
        if event == "audio_paused":
            detail = f"{pause.until - pause.since:.0f} s; open: {pause.priority or 'none'}"
        else:
            detail = pause.ended
        with self._lock:
            self._db.execute(
                "INSERT INTO events (at, event, alert_id, strap, kind, start, initials, detail)"
                " VALUES (?, ?, '', '', '', ?, ?, ?)",
                (at, event, iso_utc(pause.since), pause.by, detail),
            )

    def _alert(self, event: str, alert: Alert, at: float, initials: str | None) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO events (at, event, alert_id, strap, kind, start, initials, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    at,
                    event,
                    alert.id,
                    alert.strap,
                    alert.kind,
                    alert.start,
                    initials,
                    alert.source or None,  # an alarm of the chain: what failed
                ),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO alerts (id, body) VALUES (?, ?)",
                (alert.id, json.dumps(asdict(alert))),
            )
            self._db.execute("COMMIT")

    def alerts(self) -> list[Alert]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM alerts").fetchall()
        return [Alert(**json.loads(body)) for (body,) in rows]

    def events(self) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, event, strap, kind, start, initials, alert_id, detail FROM events"
                " ORDER BY id"
            ).fetchall()
        return [dict(zip(COLUMNS, r, strict=True)) for r in rows]

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["time_utc", *COLUMNS[1:]])
        for e in self.events():
            at = iso_utc(float(e["at"]), truncate=True)  # type: ignore[arg-type]
            w.writerow([at, *(_cell(e[c]) for c in COLUMNS[1:])])
        return out.getvalue()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a value from outside (a strap id from a topic)
    that starts like a formula (= + - @, tab, CR) gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
