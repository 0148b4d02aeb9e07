"""Talking to InfluxDB: writes through the v2 API (influxdb-client) or the 1.x HTTP API, and
InfluxQL queries through `/query`, which 1.x, 2.x (v1 compatibility) and 3.x all serve.

Why two write paths: a ward server may run InfluxDB 2.x/3.x (token, org, bucket; influxdb-client
is the maintained client) or an older 1.x (`/write?db=`; Debian still ships 1.6, which has no
`/api/v2/write`). The line protocol is the same bytes for both, so the sink builds it once
(`schema.to_lines`) and either writer sends it. Both writers raise `InfluxError` with
`retriable` set when waiting and trying again can help (server down, 5xx, timeouts, auth not yet
configured), and unset when the data itself was refused (400: a malformed or conflicting point).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigError, KmcError


@dataclass(frozen=True)
class InfluxConfig:
    """Where and how to write; `api` is "v1" (database, optional username/password or token)
    or "v2" (org, bucket, token). `database` is also the name InfluxQL queries use (on 2.x/3.x
    the bucket's v1 mapping, DBRP)."""

    url: str = "http://127.0.0.1:8086"
    api: str = "v1"
    database: str = "kmc"
    retention_policy: str = ""
    username: str | None = None
    password: str | None = None
    token: str | None = None
    org: str = ""
    bucket: str = ""
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.api not in ("v1", "v2"):
            raise ConfigError(f"api {self.api!r} must be v1 or v2")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"url {self.url!r} must start with http:// or https://")
        if self.api == "v2" and not (self.bucket and self.org):
            raise ConfigError("api v2 needs org and bucket")

    def __repr__(self) -> str:  # secrets never reach a log line through a repr
        return (
            f"InfluxConfig(url={self.url!r}, api={self.api!r}, database={self.database!r},"
            f" bucket={self.bucket!r}, org={self.org!r})"
        )


class InfluxError(KmcError):
    def __init__(self, message: str, retriable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retriable = retriable
        self.status = status


def _retriable(status: int) -> bool:
    """400 (bad point), 413 (too large) and 422 are the data's fault; anything else may pass."""
    return status not in (400, 413, 422)


class Writer(Protocol):
    def write(self, lines: list[str]) -> None: ...
    def close(self) -> None: ...


class _Http:
    """urllib with the configured authentication: Basic for 1.x users, Token for 2.x/3.x."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        self.headers: dict[str, str] = {}
        if cfg.token:
            self.headers["Authorization"] = f"Token {cfg.token}"
        elif cfg.username:
            pair = f"{cfg.username}:{cfg.password or ''}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()

    def request(
        self,
        path: str,
        params: dict[str, str],
        body: bytes | None = None,
        accept: str | None = None,
    ) -> bytes:
        url = f"{self.cfg.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        headers = self.headers if accept is None else {**self.headers, "Accept": accept}
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace").strip()
            raise InfluxError(
                f"InfluxDB {path} answered {exc.code}: {detail}", _retriable(exc.code), exc.code
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InfluxError(f"InfluxDB at {self.cfg.url} unreachable: {reason}", True) from None


class V1Writer:
    """`POST /write?db=...&precision=ns` (InfluxDB 1.x, and 1.8+/2.x compatibility)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        self.http = _Http(cfg)

    def write(self, lines: list[str]) -> None:
        params = {"db": self.cfg.database, "precision": "ns"}
        if self.cfg.retention_policy:
            params["rp"] = self.cfg.retention_policy
        self.http.request("/write", params, "\n".join(lines).encode())

    def close(self) -> None:
        pass


class V2Writer:
    """influxdb-client's synchronous write API (`/api/v2/write`, InfluxDB 2.x and 3.x).

    Synchronous on purpose: the sink's spool is the buffer and its loop does the retrying, so a
    batch is removed from disk only once the server has answered 204."""

    def __init__(self, cfg: InfluxConfig) -> None:
        from influxdb_client import InfluxDBClient, WritePrecision
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.cfg = cfg
        self._precision: Any = WritePrecision.NS
        self._client = InfluxDBClient(
            url=cfg.url, token=cfg.token or "", org=cfg.org, timeout=int(cfg.timeout_s * 1000)
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, lines: list[str]) -> None:
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                self.cfg.bucket, self.cfg.org, record=lines, write_precision=self._precision
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            detail = str(exc.body or exc.reason or "")[:300].strip()
            raise InfluxError(
                f"InfluxDB /api/v2/write answered {status}: {detail}", _retriable(status), status
            ) from None
        except Exception as exc:  # urllib3 connection errors, timeouts: the server is away
            raise InfluxError(f"InfluxDB at {self.cfg.url} unreachable: {exc}", True) from None

    def close(self) -> None:
        self._client.close()


def make_writer(cfg: InfluxConfig) -> Writer:
    return V2Writer(cfg) if cfg.api == "v2" else V1Writer(cfg)


class InfluxQL:
    """InfluxQL over `/query` (GET semantics via POST form), results as plain rows."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        self.http = _Http(cfg)

    def run(self, query: str, epoch: str = "ms") -> list[dict[str, Any]]:
        """Every series of every statement: {"name", "tags", "columns", "values"}."""
        params = {"db": self.cfg.database, "q": query, "epoch": epoch}
        if self.cfg.retention_policy:
            params["rp"] = self.cfg.retention_policy
        body = json.loads(self.http.request("/query", params))
        series: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxQL error: {result['error']} in {query!r}", False)
            for s in result.get("series", []):
                series.append({"tags": {}, "values": []} | s)
        return series

    def csv(self, query: str, epoch: str = "ms") -> bytes:
        """One statement's rows as InfluxDB writes CSV (`name,tags,time,<columns>`; empty for
        no rows): a tenth of the JSON's size for samples, and parsed by arrow, not by Python."""
        params = {"db": self.cfg.database, "q": query, "epoch": epoch}
        if self.cfg.retention_policy:
            params["rp"] = self.cfg.retention_policy
        body = self.http.request("/query", params, accept="application/csv")
        if body.startswith(b"error"):  # a statement's error, as InfluxDB's CSV says it
            detail = body.split(b"\n", 1)[-1].strip().decode(errors="replace")[:300]
            raise InfluxError(f"InfluxQL error: {detail} in {query!r}", False)
        return body

    def ping(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.cfg.url.rstrip('/')}/ping", timeout=2).close()
            return True
        except OSError:
            return False


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """An InfluxQL string literal in single quotes (tag values in WHERE clauses)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
