"""A ward's broker bridged to a site broker with deploy/mosquitto/bridge.conf as it is (only its
address put in), both real Mosquittos, the network between them a link the test cuts.

Through an outage of the link, during which the ward's broker is also restarted, a gateway
keeps publishing at QoS 1 to the ward's broker; when the link is mended, the site's subscriber
(a sink's persistent session) has every message, in order, and the bridge's state went
1 -> 0 -> 1 on its notification topic. QoS 1 may deliver a message twice across a reconnect;
the sink's points overwrite (docs/influxdb.md), so only loss counts here, and the duplicates
are printed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from kmc_testbed.recorder import TopicRecorder
from servers import CuttableLink, Mosquitto

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "kmc/site1/nicu/KMC-0001/samples"
N = 300  # messages: the first third before the outage, the rest while the link is down


def publisher(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def publish(client: mqtt.Client, numbers: range) -> None:
    """As the gateway does: QoS 1, each one acknowledged by the ward's broker."""
    for n in numbers:
        client.publish(TOPIC, json.dumps({"n": n}), qos=1).wait_for_publish(5.0)
        time.sleep(0.005)


def until(condition, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_bridged_ward_broker_hands_the_site_everything_after_an_outage(tmp_path: Path):
    (tmp_path / "site").mkdir()
    (tmp_path / "ward").mkdir()
    site = Mosquitto(tmp_path / "site").start()
    link = CuttableLink(site.port).start()
    conf = (ROOT / "deploy" / "mosquitto" / "bridge.conf").read_text()
    assert "address site-broker.example.org:8883" in conf
    bridge = "\n" + conf.replace("site-broker.example.org:8883", f"127.0.0.1:{link.port}")
    ward_port = Mosquitto(tmp_path / "ward").port
    states: list[str] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bridge-watcher")
    watcher.on_connect = lambda c, u, f, r, p: c.subscribe("bridges/#", qos=1)
    watcher.on_message = lambda c, u, m: states.append(m.payload.decode())
    ward = sink = gateway = None
    try:
        ward = Mosquitto(tmp_path / "ward", ward_port, persistence=True, extra=bridge).start()
        sink = TopicRecorder(site.port, "kmc/#", client_id="site-sink")
        watcher.connect("127.0.0.1", site.port)
        watcher.loop_start()
        until(lambda: states[-1:] == ["1"], 30, f"the bridge never came up: {states}")

        gateway = publisher(ward.port, "gateway")
        publish(gateway, range(0, 100))
        until(lambda: len(sink.bodies()) >= 100, 20, "the first messages did not cross")

        link.cut()  # the WAN goes down
        publish(gateway, range(100, 200))
        gateway.disconnect()
        gateway.loop_stop()
        ward.stop()  # and the ward's broker restarts meanwhile (a power cut, an upgrade)
        ward = Mosquitto(tmp_path / "ward", ward_port, persistence=True, extra=bridge).start()
        gateway = publisher(ward.port, "gateway")
        publish(gateway, range(200, N))
        assert len(sink.bodies()) < 200  # nothing crossed while the link was down
        down = list(states)

        link.mend()
        took = until(lambda: len({b["n"] for b in sink.bodies()}) == N, 90, "messages lost")
        numbers = [b["n"] for b in sink.bodies()]
        first_seen = list(dict.fromkeys(numbers))
        print(
            f"\nall {N} at the site {took:.1f} s after the link was mended; "
            f"{len(numbers) - N} delivered twice; bridge states {states}; "
            f"link connections {link.connections}"
        )
        assert first_seen == list(range(N))  # every message, in the order published
        assert "0" in down and states[-1] == "1"  # the state said down, then up again
    finally:
        watcher.loop_stop()
        for client in (gateway,):
            if client is not None:
                client.disconnect()
                client.loop_stop()
        if sink is not None:
            sink.close()
        link.close()
        if ward is not None:
            ward.stop()
        site.stop()
