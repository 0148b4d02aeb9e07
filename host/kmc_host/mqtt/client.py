"""How every KMC Sense service connects to the ward's broker: `BrokerConfig` (address, login,
TLS, client id, keepalive; read from a TOML `[mqtt]` section by `kmc_host.tomlconf`) and
`mqtt_client`, the one way the gateway, the sink and the ward screen open a paho client."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import paho.mqtt.client as mqtt

__all__ = ["BrokerConfig", "mqtt_client"]


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    client_id: str = "kmc-gateway"
    keepalive_s: int = 30


def mqtt_client(broker: BrokerConfig, *, clean_session: bool) -> mqtt.Client:
    """A paho client with the broker's login, TLS and reconnect settings: the one way the
    gateway, the sink and the ward screen open their connections."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=broker.client_id, clean_session=clean_session
    )
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=broker.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
