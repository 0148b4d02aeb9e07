"""Gateway configuration: one TOML file, validated at start with errors that name the key.

[gateway]
site = "site1"                      # topic parts: no / + #, not empty
ward = "ward-a"
timezone = "Africa/Addis_Ababa"     # IANA name, for KMC hours "today"
data_dir = "/var/lib/kmc-gateway"   # cursors and the MQTT outbox
max_connections = 7                 # straps connected at once per adapter (1..32)
max_age_s = 30                      # the longest a strap's newest data waits on it (5..600)
outbox_reserve_mb = 64              # disk kept free: below it, samples stay on the straps
status_every_s = 30                 # the status heartbeat the ward screen watches (5..300)

[mqtt]
host = "127.0.0.1"
port = 1883
prefix = "kmc"
username = "gateway"                # optional; password from password_file or $KMC_MQTT_PASSWORD
password_file = "/etc/kmc/mqtt.pw"
tls = false
ca_file = "/etc/kmc/ca.pem"

[[straps]]                          # the allow-list: only these straps are connected
id = "KMC-0001"
bed = "3"
infant = "INF-7Q2X"                 # a pseudonym, never a name
passkey = 482913                    # the 6 digits on the strap's label: pairs it the first time
address = "24:0A:C4:12:34:56"       # optional: only this address; else the first bonded one

[ble]                               # optional; without it: bleak on BlueZ (the ward default)
hci = "usb:0"                       # bumble's own stack on an HCI transport instead of BlueZ:
                                    # a USB dongle ("usb:0"), a serial HCI ("serial:/dev/ttyUSB0"),
                                    # or a controller on TCP ("tcp-client:127.0.0.1:9000")

[[ble.adapters]]                    # or several adapters (instead of [ble] hci), each with
name = "hci1"                       # a BlueZ adapter by name
max_connections = 7                 # its own slots (default: [gateway] max_connections)
[[ble.adapters]]
hci = "usb:1"                       # or a bumble HCI transport

[detector]                          # optional overrides of DetectorConfig
bridge_s = 300
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..deploy import STRAP_ID
from ..detect import ConfigError, DetectorConfig, zone
from ..mqtt import BrokerConfig, TopicError, TopicTree, topic_part
from ..tomlconf import broker_config, detector_config, get, read_toml, section, unknown

BLE_ADDRESS = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


@dataclass(frozen=True)
class StrapEntry:
    id: str
    bed: str = ""
    infant: str = ""
    passkey: int | None = None  # the label passkey, for the first (commissioning) pairing
    address: str | None = None  # pinned BLE address; None: pinned at the first bond


@dataclass(frozen=True)
class AdapterEntry:
    """One radio of the gateway: a BlueZ adapter (`name`, e.g. hci1) or a bumble HCI
    transport (`hci`, e.g. usb:0); exactly one of the two. None of both: BlueZ's default."""

    name: str | None = None
    hci: str | None = None
    max_connections: int = 7

    @property
    def label(self) -> str:
        """How logs, status messages and strap_adapters.json name it."""
        return self.name or self.hci or "default"


@dataclass(frozen=True)
class GatewayConfig:
    topics: TopicTree
    timezone: str
    data_dir: Path
    broker: BrokerConfig
    straps: tuple[StrapEntry, ...]
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    max_connections: int = 7
    hci: str | None = None  # a bumble HCI transport; None: bleak's platform backend (BlueZ)
    outbox_reserve_mb: float = 64.0
    max_age_s: float = 30.0
    adapters: tuple[AdapterEntry, ...] = ()  # [[ble.adapters]]; empty: one, from hci above
    status_every_s: float = 30.0  # the retained status repeated this often (a heartbeat)

    def radios(self) -> tuple[AdapterEntry, ...]:
        """The adapters to drive: [[ble.adapters]], or the one [ble] hci / BlueZ names."""
        return self.adapters or (AdapterEntry(None, self.hci, self.max_connections),)


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate the gateway's TOML file; ConfigError names the file and key."""
    path = Path(path)
    raw = read_toml(path)
    unknown(raw, {"gateway", "mqtt", "straps", "detector", "ble"}, str(path))

    where = f"{path} [gateway]"
    g = section(raw, "gateway", str(path))
    unknown(
        g,
        {
            "site",
            "ward",
            "timezone",
            "data_dir",
            "max_connections",
            "max_age_s",
            "outbox_reserve_mb",
            "status_every_s",
        },
        where,
    )
    try:
        topics_site = topic_part("site", get(g, "site", str, where))
        topics_ward = topic_part("ward", get(g, "ward", str, where))
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    tz = get(g, "timezone", str, where, "UTC")
    try:
        zone(tz)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    data_dir = Path(get(g, "data_dir", str, where))
    max_conn = get(g, "max_connections", int, where, 7)
    if not 1 <= max_conn <= 32:
        raise ConfigError(f"{where}: max_connections must be 1..32")
    max_age = float(get(g, "max_age_s", (int, float), where, 30.0))
    if not 5 <= max_age <= 600:
        raise ConfigError(
            f"{where}: max_age_s must be 5..600 (seconds a strap's newest data may wait on it)"
        )
    status_every = float(get(g, "status_every_s", (int, float), where, 30.0))
    if not 5 <= status_every <= 300:
        raise ConfigError(
            f"{where}: status_every_s must be 5..300 (seconds between the gateway's status "
            "heartbeats; the ward screen's gateway_silent_after_min must be longer)"
        )

    where = f"{path} [mqtt]"
    m = section(raw, "mqtt", str(path), required=False)
    broker = broker_config(m, where, f"kmc-gateway-{topics_site}-{topics_ward}")
    try:
        topics = TopicTree(get(m, "prefix", str, where, "kmc"), topics_site, topics_ward)
    except TopicError as exc:
        raise ConfigError(f"{where}: {exc}") from None

    straps_raw = raw.get("straps", [])
    if not isinstance(straps_raw, list) or not straps_raw:
        raise ConfigError(f"{path}: at least one [[straps]] entry is required (the allow-list)")
    straps = []
    for k, s in enumerate(straps_raw, start=1):
        where = f"{path} [[straps]] #{k}"
        if not isinstance(s, dict):
            raise ConfigError(f"{where}: must be a table")
        unknown(s, {"id", "bed", "infant", "passkey", "address"}, where)
        sid = get(s, "id", str, where)
        if not STRAP_ID.fullmatch(sid):
            raise ConfigError(f"{where}: id {sid!r} must be 1-8 characters of A-Z a-z 0-9 - _")
        passkey = get(s, "passkey", int, where, None)
        if passkey is not None and not 0 <= passkey <= 999_999:
            raise ConfigError(f"{where}: passkey must be the 6 digits on the strap's label")
        address = get(s, "address", str, where, None)
        if address is not None and not BLE_ADDRESS.fullmatch(address):
            raise ConfigError(f"{where}: address {address!r} must look like 24:0A:C4:12:34:56")
        straps.append(
            StrapEntry(
                sid,
                str(get(s, "bed", (str, int), where, "")),
                get(s, "infant", str, where, ""),
                passkey,
                address.upper() if address else None,
            )
        )
    ids = [s.id for s in straps]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: a strap id is listed twice in [[straps]]")

    detector = detector_config(raw, path)
    reserve = float(get(g, "outbox_reserve_mb", (int, float), f"{path} [gateway]", 64.0))
    if not 0 <= reserve <= 100_000:
        raise ConfigError(f"{path} [gateway]: outbox_reserve_mb must be 0..100000")
    where = f"{path} [ble]"
    b = section(raw, "ble", str(path), required=False)
    unknown(b, {"hci", "adapters"}, where)
    hci = _transport(get(b, "hci", str, where, None), where)
    adapters = _adapters(b.get("adapters", []), max_conn, f"{path} [[ble.adapters]]")
    if adapters and hci is not None:
        raise ConfigError(f"{where}: give either hci or [[ble.adapters]] entries, not both")
    return GatewayConfig(
        topics,
        tz,
        data_dir,
        broker,
        tuple(straps),
        detector,
        max_conn,
        hci,
        reserve,
        max_age,
        adapters,
        status_every,
    )


def check_pairing(cfg: GatewayConfig, path: str | Path) -> None:
    """Refuse a `passkey` the gateway could not enter: on BlueZ (a radio without `hci`) bleak
    pairs through BlueZ's own agent, which this gateway does not provide, and bleak's BlueZ
    backend ignores a passkey argument. A strap with a label passkey is then paired once by
    hand with bluetoothctl (docs/operations.md, Install step 4) and listed without it; with
    `[ble] hci` (a dongle bumble drives) the gateway pairs by itself."""
    bluez = [r.label for r in cfg.radios() if r.hci is None]
    keyed = [k for k, s in enumerate(cfg.straps, start=1) if s.passkey is not None]
    if bluez and keyed:
        first = keyed[0]
        raise ConfigError(
            f"{path} [[straps]] #{first} ({cfg.straps[first - 1].id}): passkey cannot be used "
            f"with BlueZ (adapter {', '.join(bluez)}): the gateway cannot enter it there. Pair "
            "the strap once with bluetoothctl (docs/operations.md, Install step 4) and leave "
            'passkey out, or drive the adapter with bumble ([ble] hci = "usb:0")'
        )


def _transport(hci: str | None, where: str) -> str | None:
    if hci is not None and ":" not in hci:
        raise ConfigError(
            f"{where}: hci {hci!r} should be a transport like usb:0 or tcp-client:HOST:PORT"
        )
    return hci


def _adapters(raw: object, max_conn: int, where: str) -> tuple[AdapterEntry, ...]:
    """[[ble.adapters]]: each a BlueZ adapter name or an HCI transport, named once."""
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: must be an array of tables ([[ble.adapters]])")
    out: list[AdapterEntry] = []
    for k, a in enumerate(raw, start=1):
        here = f"{where} #{k}"
        if not isinstance(a, dict):
            raise ConfigError(f"{here}: must be a table")
        unknown(a, {"name", "hci", "max_connections"}, here)
        name = get(a, "name", str, here, None)
        hci = _transport(get(a, "hci", str, here, None), here)
        if (name is None) == (hci is None):
            raise ConfigError(
                f"{here}: give exactly one of name (a BlueZ adapter, e.g. hci1) "
                "or hci (a transport, e.g. usb:0)"
            )
        if name is not None and not re.fullmatch(r"hci[0-9]{1,3}", name):
            raise ConfigError(f"{here}: name {name!r} should be a BlueZ adapter like hci1")
        slots = get(a, "max_connections", int, here, max_conn)
        if not 1 <= slots <= 32:
            raise ConfigError(f"{here}: max_connections must be 1..32")
        out.append(AdapterEntry(name, hci, slots))
    if len(out) > 8:
        raise ConfigError(f"{where}: at most 8 adapters per gateway")
    labels = [e.label for e in out]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigError(f"{where}: adapter {', '.join(twice)} is listed twice")
    return tuple(out)
