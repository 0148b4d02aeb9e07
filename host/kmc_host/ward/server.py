"""`kmc ward`: the ward screen's web service (aiohttp) fed by the gateway's MQTT topics.

    browser <--SSE /events (whole snapshot on every change)-- WardService <--MQTT-- broker
    browser --POST /api/login (PIN) -> session cookie + CSRF token
    browser --POST /api/ack (cookie + X-CSRF-Token, initials)--> re-checked, audit log
    browser --POST /api/pause (cookie + X-CSRF-Token, initials, pause|resume)--> audit log

Server-sent events rather than WebSocket: one direction is all the screen needs, and the
browser's EventSource reconnects by itself after the service restarts. The page then gets a
full snapshot, so nothing depends on what it saw before. A snapshot comes at least every
STREAM_EVERY_S; a page that has had none for SERVICE_LOST_AFTER_S raises its own alarm
(`service_lost`): a frozen page must never look live. aiohttp is the well-kept asyncio web
server; the MQTT client (paho) runs in its own thread and hands messages to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from aiohttp import web

from ..clinical import SIGNALS
from ..mqtt import mqtt_client
from .audit import AuditLog
from .auth import TooManyAttempts, WardAuth
from .config import STATIC, WardConfig
from .model import Alert, Event, MessageIgnored, WardModel

log = logging.getLogger(__name__)
STREAM_EVERY_S = 5.0  # a snapshot at least this often, changed or not
SERVICE_LOST_AFTER_S = 2 * STREAM_EVERY_S + 2.0  # two missed, and some slack: the page alarms
COOKIE = "kmc_ward_session"
INITIALS = re.compile(r"[A-Za-z]{1,4}")
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def signals_css() -> str:
    """The stylesheet of the alarm priorities' lamps (clinical.SIGNALS, docs/alarms.md): each
    priority's colour, flashing at its `flash_hz` with `duty` of each period on, or steady.
    Served as a file, not injected by the page: the page's CSP allows no inline style."""
    out = []
    for sig in SIGNALS:
        out.append(f".prio-{sig.priority} {{ --prio: {sig.colour}; }}")
        out.append(
            f".prio-{sig.priority} .lamp {{ border-color: {sig.colour};"
            f" background-color: {sig.colour}; }}"
        )
        if sig.flash_hz > 0:
            out.append(
                f"@keyframes flash-{sig.priority} {{ 0% {{ background-color: {sig.colour}; }}"
                f" {sig.duty * 100:.0f}% {{ background-color: transparent; }} }}"
            )
            out.append(
                f".prio-{sig.priority} .lamp {{ animation: flash-{sig.priority}"
                f" {1 / sig.flash_hz:.3f}s step-end infinite; }}"
            )
    return "\n".join(out) + "\n"


SIGNALS_CSS = signals_css()


class WardService:
    def __init__(self, cfg: WardConfig) -> None:
        self.cfg = cfg
        self.model = WardModel(
            cfg.prefix,
            cfg.escalate_after_s,
            cfg.target_hours,
            silent_after_s=cfg.gateway_silent_after_s,
            pause_s=cfg.audio_pause_s,
            started=time.time(),
        )
        self.audit = AuditLog(cfg.data_dir / "audit.db")
        for alert in self.audit.alerts():  # open alerts and who acknowledged them survive a restart
            self.model.alerts[alert.id] = alert
        self.auth = WardAuth(cfg.pin)
        self.ignored = 0
        self._warned_every = False
        self._changed = asyncio.Event()  # replaced on every change: each stream waits on its own
        self._closing = False  # set on shutdown: the open event streams end at once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self.strings = json.loads((STATIC / "strings.json").read_text(encoding="utf-8"))

    # -- MQTT

    def _start_mqtt(self) -> None:
        b = self.cfg.broker
        client = mqtt_client(b, clean_session=False)  # alerts sent while it was down still come
        topic = f"{self.cfg.prefix}/{self.cfg.site}/{self.cfg.ward}/#"

        def connected(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
            if getattr(reason, "is_failure", False):
                log.warning("broker refused the connection: %s", reason)
                self._from_paho(self.model.broker_lost)
                return
            c.subscribe(topic, qos=1)
            self._from_paho(self.model.broker_connected)

        def lost(c: mqtt.Client, u: Any, f: Any, reason: Any, p: Any) -> None:
            log.warning("broker connection lost (%s)", reason)
            self._from_paho(self.model.broker_lost)

        client.on_connect = connected
        client.on_disconnect = lost
        client.on_message = self._on_mqtt
        client.connect_async(b.host, b.port, keepalive=b.keepalive_s)
        client.loop_start()
        self._client = client

    def _from_paho(self, change: Callable[[float], list[Event]]) -> None:
        """Run a change of the model on the event loop (paho calls from its own thread)."""
        assert self._loop is not None
        if self._closing:  # the disconnect at shutdown: the audit log is closing
            return
        self._loop.call_soon_threadsafe(lambda: self._log(change(time.time())))

    def _on_mqtt(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(
            self.handle, msg.topic, bytes(msg.payload), time.time(), bool(msg.retain)
        )

    def handle(self, topic: str, body: bytes, now: float, retained: bool = False) -> None:
        try:
            events = self.model.on_message(topic, body, now, retained)
        except MessageIgnored as exc:
            self.ignored += 1
            log.warning("ignored: %s", exc)
            return
        self._log(events, now)

    def _log(self, events: list[Event], now: float | None = None) -> None:
        """Events into the audit log (and the log for the chain's), and a fresh snapshot."""
        at = time.time() if now is None else now
        for what, subject in events:
            self.audit.record(what, subject, at)
            if isinstance(subject, Alert) and subject.chain:
                log.warning("%s %s: %s", subject.kind, subject.source, what)
        self._wake()

    def _wake(self) -> None:
        """Every event stream sends a snapshot: the one event they wait on is set, and a new one
        takes its place (so no stream clears another's wake-up, and a change made while a
        snapshot is being written is not lost)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _ticker(self) -> None:
        """Once a second: escalations, the chain's alarms, the audio pause's end. An error is
        logged and the next tick goes on: a stopped ticker would stop every alarm of the chain
        while the page still looked live."""
        while True:
            try:
                events = self.model.tick(time.time())
                if events:
                    self._log(events)
                self._check_heartbeat()
            except Exception:  # noqa: BLE001 - logged with its traceback; the ticker goes on
                log.exception("ward ticker")
            await asyncio.sleep(1.0)

    def _check_heartbeat(self) -> None:
        """Say once when the gateway's heartbeat is too slow for gateway_silent_after_min: a
        quiet ward would get false gateway_silent alarms."""
        every = self.model.gateway.every_s
        if every and 2 * every > self.cfg.gateway_silent_after_s and not self._warned_every:
            self._warned_every = True
            log.warning(
                "the gateway's status comes every %g s: gateway_silent_after_min (%g min) "
                "should be at least twice that",
                every,
                self.cfg.gateway_silent_after_s / 60,
            )

    # -- HTTP

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_security_headers])
        app.router.add_get("/", self.index)
        app.router.add_get("/events", self.events)
        app.router.add_get("/api/config", self.config)
        app.router.add_get("/signals.css", self.signals_css)
        app.router.add_get("/api/ward", self.ward)
        app.router.add_get("/api/bed/{strap}", self.bed)
        app.router.add_post("/api/login", self.login)
        app.router.add_post("/api/logout", self.logout)
        app.router.add_post("/api/ack", self.ack)
        app.router.add_post("/api/pause", self.pause)
        app.router.add_get("/api/audit.csv", self.audit_csv)
        app.router.add_static("/static/", STATIC)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._start_mqtt()
        app["ticker"] = asyncio.create_task(self._ticker())

    async def _on_shutdown(self, app: web.Application) -> None:
        """Before the server waits for its handlers: end the screens' event streams (each
        browser reconnects by itself to the next start)."""
        self._closing = True
        self._wake()

    async def _on_cleanup(self, app: web.Application) -> None:
        app["ticker"].cancel()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
        self.audit.close()

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "site": self.cfg.site,
                "ward": self.cfg.ward,
                "language": self.cfg.language,
                "strings": self.strings[self.cfg.language],
                "target_h": self.cfg.target_hours,
                "escalate_after_s": self.cfg.escalate_after_s,
                "audio_pause_s": self.cfg.audio_pause_s,
                "gateway_silent_after_s": self.cfg.gateway_silent_after_s,
                "service_lost_after_s": SERVICE_LOST_AFTER_S,
                # how each alarm priority looks and sounds (clinical.SIGNALS, docs/alarms.md)
                "signals": {sig.priority: sig._asdict() for sig in SIGNALS},
                "logged_in": self._session(request) is not None,
            }
        )

    async def signals_css(self, request: web.Request) -> web.Response:
        return web.Response(text=SIGNALS_CSS, content_type="text/css")

    async def ward(self, request: web.Request) -> web.Response:
        return web.json_response(self.model.snapshot(time.time()))

    async def bed(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(self.model.detail(request.match_info["strap"]))
        except KeyError:
            raise web.HTTPNotFound(text="no such bed") from None

    async def events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await resp.prepare(request)
        await resp.write(b"retry: 1000\n\n")
        with contextlib.suppress(ConnectionResetError):  # the browser went away
            while not self._closing:  # a snapshot on every change, and every 5 s
                changed = self._changed  # taken before the snapshot: a change meanwhile wakes it
                snap = self.model.snapshot(time.time())
                await resp.write(f"data: {json.dumps(snap)}\n\n".encode())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=STREAM_EVERY_S)
                await asyncio.sleep(0.1)  # coalesce bursts of messages into one snapshot
        return resp

    def _session(self, request: web.Request) -> str | None:
        token = request.cookies.get(COOKIE)
        return token if self.auth.valid(token) else None

    async def login(self, request: web.Request) -> web.Response:
        _same_origin(request)
        body = await _json(request)
        pin = str(body.get("pin", ""))
        client = request.remote or "?"
        try:
            session = self.auth.login(pin, client)
        except TooManyAttempts as exc:
            raise web.HTTPTooManyRequests(
                text=str(exc), headers={"Retry-After": str(int(exc.retry_after_s) + 1)}
            ) from None
        if session is None:
            raise web.HTTPForbidden(text="wrong PIN")
        resp = web.json_response({"csrf": session.csrf})
        resp.set_cookie(COOKIE, session.token, httponly=True, samesite="Strict", path="/")
        return resp

    async def logout(self, request: web.Request) -> web.Response:
        self.auth.logout(request.cookies.get(COOKIE))
        resp = web.json_response({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def _nurse(self, request: web.Request, doing: str) -> tuple[dict[str, Any], str]:
        """A nurse's request: same origin, a session with its CSRF token, and her initials."""
        _same_origin(request)
        token = request.cookies.get(COOKIE)
        if not self.auth.check(token, request.headers.get("X-CSRF-Token")):
            raise web.HTTPForbidden(text=f"log in with the ward PIN to {doing}")
        body = await _json(request)
        initials = str(body.get("initials", "")).strip().upper()
        if not INITIALS.fullmatch(initials):
            raise web.HTTPBadRequest(text="initials: 1-4 letters")
        return body, initials

    async def pause(self, request: web.Request) -> web.Response:
        """Pause the alarm sound ward-wide (`action` "pause", for `audio_pause_min`) or end
        the pause ("resume"); audited with the nurse's initials."""
        body, initials = await self._nurse(request, "pause the alarm sound")
        action = body.get("action", "pause")
        now = time.time()
        if action == "pause":
            events = self.model.pause_audio(initials, now)
        elif action == "resume":
            events = self.model.resume_audio(initials, now)
        else:
            raise web.HTTPBadRequest(text=f"action {action!r}: pause or resume")
        self._log(events, now)
        pause = self.model.pause
        return web.json_response(pause.public() if pause is not None else {"paused": False})

    async def ack(self, request: web.Request) -> web.Response:
        body, initials = await self._nurse(request, "acknowledge")
        try:
            alert = self.model.acknowledge(str(body.get("alert", "")), initials, time.time())
        except KeyError:
            raise web.HTTPNotFound(text="no such alert") from None
        if alert.acked_by == initials:
            self.audit.record("acknowledged", alert, alert.acked_at or time.time(), initials)
        self._wake()
        return web.json_response(alert.public())

    async def audit_csv(self, request: web.Request) -> web.Response:
        if self._session(request) is None:  # a GET: the session cookie is enough
            raise web.HTTPForbidden(text="log in with the ward PIN to export the audit log")
        return web.Response(
            text=self.audit.csv(),
            content_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="ward-audit.csv"'},
        )


@web.middleware
async def _security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    resp: web.StreamResponse = await handler(request)
    for k, v in HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


def _same_origin(request: web.Request) -> None:
    """A POST from another site's page carries its Origin: refuse it (CSRF, with the token)."""
    origin = request.headers.get("Origin")
    if origin and origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="cross-origin request refused")


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


SHUTDOWN_S = 2.0  # how long a stop waits for requests in flight before cancelling them


async def serve_ward(cfg: WardConfig, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then end the event streams, close the MQTT client and the
    audit log (within SHUTDOWN_S and a little)."""
    runner = web.AppRunner(WardService(cfg).app(), shutdown_timeout=SHUTDOWN_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.listen, cfg.port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


class WardThread:
    """The ward screen in a thread of its own (for `kmc demo`): start(), then stop()."""

    def __init__(self, cfg: WardConfig) -> None:
        self.cfg = cfg
        self.url = f"http://{cfg.listen}:{cfg.port}/"
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> WardThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(15)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(WardService(self.cfg).app(), shutdown_timeout=SHUTDOWN_S)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.cfg.listen, self.cfg.port).start()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
