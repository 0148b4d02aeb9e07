"""MQTT publishing against a real Mosquitto: QoS 1, outbox on disk, outages, last will."""

import asyncio
import subprocess
import sys
import time

import pytest

from kmc_host.mqtt import BrokerConfig, MqttPublisher, StatusMessage, TopicError, TopicTree
from kmc_host.mqtt.messages import payload
from servers import Listener, Mosquitto

TOPICS = TopicTree("kmc", "site1", "ward-a")


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path).start()
    yield b
    b.stop()


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


async def pump_until(pub, predicate, timeout=15.0):
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    for _ in range(int(timeout / 0.02)):
        if predicate():
            break
        await asyncio.sleep(0.02)
    stop.set()
    await task
    assert predicate(), "timed out"


def numbered(n, start=0):
    return [payload(n=k) for k in range(start, start + n)]


def test_messages_arrive_in_order_with_the_schema_version(broker, tmp_path):
    listener = Listener(broker.port)
    time.sleep(0.2)
    pub = MqttPublisher(BrokerConfig(port=broker.port), TOPICS, tmp_path / "outbox.db")
    pub.start()
    topic = TOPICS.strap("KMC-0001", "samples")
    for body in numbered(500):
        pub.publish(topic, body)
    asyncio.run(pump_until(pub, lambda: pub.pending() == 0))
    wait_for(lambda: len(listener.bodies(topic)) == 500)
    got = listener.bodies(topic)
    assert [b["n"] for b in got] == list(range(500)) and all(b["v"] == 1 for b in got)
    online = listener.bodies(TOPICS.gateway_status)[-1]
    assert online["state"] == "online" and abs(online["time"] - time.time()) < 60
    pub.stop()
    wait_for(lambda: listener.bodies(TOPICS.gateway_status)[-1]["state"] == "offline")
    offline = listener.bodies(TOPICS.gateway_status)[-1]
    assert set(offline) == {"v", "state", "time"}  # a clean stop says when
    listener.close()


def test_the_status_heartbeat_goes_straight_to_the_broker_and_only_while_connected(
    tmp_path,
):
    """`publish_status()` sends the gateway's `status()` at once, retained, when connected, and
    nothing (False) when not: a heartbeat never waits in the outbox to be replayed stale."""
    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq")
    issued: list[float] = []  # the time of each status() made: on connect and per heartbeat

    def status() -> StatusMessage:
        issued.append(float(len(issued) + 1))
        return StatusMessage(state="online", time=issued[-1], every_s=5.0)

    pub = MqttPublisher(BrokerConfig(port=broker.port), TOPICS, tmp_path / "o.db", status=status)
    pub.start()
    assert pub.publish_status() is False  # no broker yet
    assert pub.pending() == 0  # and nothing queued for later
    broker.start()
    try:
        listener = Listener(broker.port)
        wait_for(pub.connected.is_set, timeout=20)

        def heard_last() -> bool:  # the listener has the newest status made so far
            return issued[-1] in [b["time"] for b in listener.bodies(TOPICS.gateway_status)]

        for _ in range(2):
            assert pub.publish_status() is True
            wait_for(heard_last)
        got = listener.bodies(TOPICS.gateway_status)
        assert len(got) >= 2
        assert [b["every_s"] for b in got] == [5.0] * len(got)
        assert [b["time"] for b in got] == sorted(b["time"] for b in got)  # each one fresh
        late = Listener(broker.port)  # retained: a reader arriving now gets the newest
        wait_for(lambda: late.bodies(TOPICS.gateway_status) != [])
        assert late.bodies(TOPICS.gateway_status)[-1]["time"] == issued[-1]
        late.close()
        listener.close()
    finally:
        pub.stop()
        broker.stop()


def test_broker_down_for_a_while_loses_nothing_even_across_a_gateway_restart(tmp_path):
    broker = Mosquitto(tmp_path)  # not started yet: the ward's broker is down
    topic = TOPICS.strap("KMC-0002", "samples")
    pub = MqttPublisher(BrokerConfig(port=broker.port), TOPICS, tmp_path / "outbox.db")
    pub.start()
    for body in numbered(200):
        pub.publish(topic, body)

    async def pump_a_bit():
        stop = asyncio.Event()
        task = asyncio.create_task(pub.run(stop))
        await asyncio.sleep(0.5)
        stop.set()
        await task

    asyncio.run(pump_a_bit())
    assert pub.pending() == 200  # all on disk
    pub.stop()  # the gateway restarts while the broker is still down
    broker.start()
    try:
        listener = Listener(broker.port)
        time.sleep(0.2)
        pub2 = MqttPublisher(BrokerConfig(port=broker.port), TOPICS, tmp_path / "outbox.db")
        pub2.start()
        for body in numbered(100, start=200):
            pub2.publish(topic, body)
        asyncio.run(pump_until(pub2, lambda: pub2.pending() == 0))
        wait_for(lambda: len({b["n"] for b in listener.bodies(topic)}) == 300)
        assert [b["n"] for b in listener.bodies(topic)] == list(range(300))  # in order
        pub2.stop()
        listener.close()
    finally:
        broker.stop()


def test_broker_restart_mid_stream_delivers_everything_in_order(broker, tmp_path):
    topic = TOPICS.strap("KMC-0003", "samples")
    pub = MqttPublisher(BrokerConfig(port=broker.port), TOPICS, tmp_path / "outbox.db")
    pub.start()
    seen = []

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(pub.run(stop))
        listener = Listener(broker.port)
        await asyncio.sleep(0.2)
        for k, body in enumerate(numbered(600)):
            pub.publish(topic, body)
            if k == 300:
                seen.extend(listener.bodies(topic))
                listener.close()
                broker.stop()  # the broker goes down with messages in flight
                await asyncio.sleep(1.0)
                broker.start()
                listener_holder.append(Listener(broker.port))
            await asyncio.sleep(0.002)
        for _ in range(1000):
            if pub.pending() == 0:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task

    listener_holder = []
    asyncio.run(main())
    assert pub.pending() == 0
    wait_for(lambda: any(b["n"] == 599 for b in listener_holder[0].bodies(topic)))
    after = [b["n"] for b in listener_holder[0].bodies(topic)]
    before = [b["n"] for b in seen]
    # at least once, in order: everything arrived; repeats only of what was in flight
    assert set(before) | set(after) == set(range(600))
    assert after == sorted(after) and before == sorted(before)
    pub.stop()
    listener_holder[0].close()


def test_the_last_will_says_offline_when_the_gateway_dies(broker, tmp_path):
    listener = Listener(broker.port)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from kmc_host.mqtt import BrokerConfig, MqttPublisher, TopicTree\n"
        f"pub = MqttPublisher(BrokerConfig(port={broker.port}, keepalive_s=1), TopicTree('kmc','site1','ward-a'), Path(sys.argv[1]))\n"
        "pub.start()\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "o.db")])
    try:
        wait_for(
            lambda: [b["state"] for b in listener.bodies(TOPICS.gateway_status)[-1:]] == ["online"]
        )
        proc.kill()  # no clean disconnect: the broker publishes the will
        wait_for(
            lambda: listener.bodies(TOPICS.gateway_status)[-1]["state"] == "offline", timeout=10
        )
        assert listener.bodies(TOPICS.gateway_status)[-1] == {"v": 1, "state": "offline"}
    finally:
        proc.kill()
        proc.wait()
        listener.close()


@pytest.mark.parametrize(
    ("site", "strap"), [("a/b", "S1"), ("ok", "S+1"), ("ok", ""), ("ok", "S#"), (" ok", "S1")]
)
def test_topic_parts_are_checked(site, strap):
    with pytest.raises(TopicError, match="cannot be an MQTT topic part"):
        TopicTree("kmc", site, "w").strap(strap, "samples")
