"""Who may acknowledge: a ward PIN, sessions, CSRF tokens and a limit on PIN attempts.

Viewing the ward screen needs nothing (it is on the ward's network, with pseudonyms only);
acknowledging an alert needs a session opened with the ward PIN, and every acknowledgement is
re-checked on the server: a valid session, its CSRF token in the `X-CSRF-Token` header, and the
alert itself. Wrong PINs are limited per client address (`max_failures` per `window_s`).
The PIN is kept only as a salted PBKDF2 hash in memory and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ..errors import BadInput, KmcError

SESSION_S = 12 * 3600.0  # a nursing shift


@dataclass
class Session:
    token: str
    csrf: str
    expires: float


class TooManyAttempts(KmcError):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"too many wrong PINs; try again in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class WardAuth:
    def __init__(self, pin: str, max_failures: int = 5, window_s: float = 300.0) -> None:
        if not (pin.isdigit() and 4 <= len(pin) <= 12):
            raise BadInput("the ward PIN must be 4-12 digits")
        self._salt = secrets.token_bytes(16)
        self._hash = self._derive(pin)
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._sessions: dict[str, Session] = {}

    def _derive(self, pin: str) -> bytes:
        return hashlib.pbkdf2_hmac("sha256", pin.encode(), self._salt, 100_000)

    def login(self, pin: str, client: str, now: float | None = None) -> Session | None:
        """A new session for the right PIN; None for a wrong one; TooManyAttempts when limited."""
        now = time.time() if now is None else now
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        self._failures[client] = recent
        if len(recent) >= self.max_failures:
            raise TooManyAttempts(self.window_s - (now - recent[0]))
        if not hmac.compare_digest(self._derive(pin[:32]), self._hash):
            recent.append(now)
            return None
        self._failures.pop(client, None)
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now + SESSION_S)
        self._sessions[session.token] = session
        return session

    def check(self, token: str | None, csrf: str | None, now: float | None = None) -> bool:
        """A live session and its CSRF token: both must match."""
        now = time.time() if now is None else now
        session = self._sessions.get(token or "")
        if session is None or session.expires < now:
            return False
        return hmac.compare_digest((csrf or "").encode(), session.csrf.encode())

    def valid(self, token: str | None, now: float | None = None) -> bool:
        """A live session (for reads such as the audit export; writes also need `check`)."""
        now = time.time() if now is None else now
        session = self._sessions.get(token or "")
        return session is not None and session.expires >= now

    def logout(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)
