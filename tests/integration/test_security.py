"""Security against a real Mosquitto configured as a ward's (deploy/mosquitto): TLS, logins, and
the example ACL; and secrets that never reach a log line.

The broker here uses the repository's own `deploy/mosquitto/kmc.acl`, so what is tested is what a
ward installs: only the gateway may write strap topics; the sink and the ward screen only read.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from kmc_host.mqtt import BrokerConfig, MqttPublisher, TopicTree
from kmc_host.mqtt.messages import payload
from kmc_host.sink.config import load_sink_config
from kmc_host.sink.service import subscription
from servers import InfluxDB, Mosquitto

ROOT = Path(__file__).resolve().parents[2]
USERS = {"gateway": "gw-secret-1", "sink": "sink-secret-2", "wardscreen": "ward-secret-3"}
TOPIC = "kmc/site1/ward-a/KMC-0001/samples"


def make_ca(d: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 (openssl), and a second, unrelated CA."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    for ca in ("ca", "other-ca"):
        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN=KMC test {ca}",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
        )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    make_ca(d)
    passwd = d / "passwd"
    for k, (user, pw) in enumerate(USERS.items()):
        flags = ["-c"] if k == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *flags, str(passwd), user, pw], check=True)
    mq = Mosquitto(d)
    mq.config.write_text(
        "per_listener_settings false\nallow_anonymous false\n"
        f"password_file {passwd}\nacl_file {ROOT / 'deploy/mosquitto/kmc.acl'}\n"
        f"listener {mq.port} 127.0.0.1\ncafile {d / 'ca.crt'}\ncertfile {d / 'server.crt'}\n"
        f"keyfile {d / 'server.key'}\ntls_version tlsv1.2\nuser root\npersistence false\n"
    )
    mq.start()
    yield mq, d
    mq.stop()


def client(
    port: int,
    d: Path,
    user: str | None,
    pw: str | None,
    ca: str = "ca.crt",
    tls: bool = True,
    topic: str = "kmc/#",
) -> tuple[mqtt.Client, list, threading.Event, list]:
    got: list = []
    ready = threading.Event()
    codes: list = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}")
    if user:
        c.username_pw_set(user, pw)
    if tls:
        c.tls_set(ca_certs=str(d / ca), cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(cl, u, f, reason, p):
        codes.append(reason)
        if not reason.is_failure:
            cl.subscribe(topic, qos=1)

    c.on_connect = on_connect
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, u, m: got.append((m.topic, m.payload))
    return c, got, ready, codes


def connect(c: mqtt.Client, port: int) -> None:
    c.connect("127.0.0.1", port)
    c.loop_start()


def test_tls_logins_and_the_ward_acl(broker, tmp_path):
    mq, d = broker
    sink, got, ready, _ = client(mq.port, d, "sink", USERS["sink"])
    connect(sink, mq.port)
    assert ready.wait(10)

    # the gateway's own publisher, over TLS with its login: delivered
    pub = MqttPublisher(
        BrokerConfig(
            port=mq.port,
            username="gateway",
            password=USERS["gateway"],
            tls=True,
            ca_file=str(d / "ca.crt"),
            client_id="kmc-gateway-test",
        ),
        TopicTree("kmc", "site1", "ward-a"),
        tmp_path / "outbox.db",
    )
    pub.start()
    assert pub.connected.wait(10)
    import asyncio

    async def send():
        stop = asyncio.Event()
        pump = asyncio.create_task(pub.run(stop))
        pub.publish(TOPIC, payload(strap="KMC-0001", seq=[1]))
        for _ in range(200):
            if pub.pending() == 0:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await pump

    asyncio.run(send())
    pub.stop()

    # a reader forging a strap's samples: the broker drops it (the ACL), nobody receives it
    for user in ("sink", "wardscreen"):
        forger, _, fready, _ = client(mq.port, d, user, USERS[user])
        connect(forger, mq.port)
        assert fready.wait(10)
        forger.publish(
            TOPIC, json.dumps({"v": 1, "strap": "KMC-0001", "seq": [999]}), qos=1
        ).wait_for_publish(5)
        forger.publish("kmc/site1/ward-a/gateway/status", b'{"v":1,"state":"offline"}', qos=1)
        forger.disconnect()
        forger.loop_stop()
    time.sleep(1.0)
    sink.disconnect()
    sink.loop_stop()
    bodies = [json.loads(b) for t, b in got if t == TOPIC]
    assert [b["seq"] for b in bodies] == [[1]]
    status = [json.loads(b)["state"] for t, b in got if t.endswith("gateway/status")]
    assert status == ["online", "offline"]  # the gateway's own; not the forgers' "offline"

    # refused: no login, a wrong password, the wrong CA, and plain TCP on the TLS port
    for user, pw in ((None, None), ("sink", "wrong")):
        c, _, _, codes = client(mq.port, d, user, pw)
        c.connect("127.0.0.1", mq.port)
        c.loop_start()
        for _ in range(100):
            if codes:
                break
            time.sleep(0.05)
        c.loop_stop()
        assert codes and codes[0].is_failure, (user, codes)
    bad_ca, _, _, _ = client(mq.port, d, "sink", USERS["sink"], ca="other-ca.crt")
    with pytest.raises(ssl.SSLError):
        bad_ca.connect("127.0.0.1", mq.port)
    plain, _, _, codes = client(mq.port, d, "sink", USERS["sink"], tls=False)
    try:
        plain.connect("127.0.0.1", mq.port)
        plain.loop_start()
        time.sleep(1.0)
        plain.loop_stop()
    except OSError:
        pass
    assert not any(not c.is_failure for c in codes)


def test_secrets_never_reach_the_logs(tmp_path):
    """The sink with a password and an InfluxDB token from files, both servers refusing or away
    so that it logs its troubles: neither secret appears in its output."""
    (tmp_path / "mq").mkdir()
    mq = Mosquitto(tmp_path / "mq").start()
    influx = InfluxDB(tmp_path).start()
    influx.stop()  # away: the sink logs write failures
    (tmp_path / "token").write_text("tok-VERY-SECRET-42\n")
    (tmp_path / "mqtt.pw").write_text("mqtt-VERY-SECRET-43\n")
    cfg = tmp_path / "sink.toml"
    cfg.write_text(
        f'[sink]\ndata_dir = "{tmp_path / "sink"}"\nmax_backoff_s = 1\n'
        f'[mqtt]\nport = {mq.port}\nusername = "sink"\npassword_file = "{tmp_path / "mqtt.pw"}"\n'
        f'[influx]\napi = "v1"\nurl = "{influx.url}"\ntoken_file = "{tmp_path / "token"}"\n'
    )
    check = subprocess.run(
        [sys.executable, "-m", "kmc_host", "sink", "--config", str(cfg), "--check"],
        capture_output=True,
        text=True,
    )
    log = tmp_path / "sink.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kmc_host", "sink", "--config", str(cfg)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        time.sleep(1.5)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-pub")
        pub.connect("127.0.0.1", mq.port)
        pub.loop_start()
        pub.publish(
            "kmc/site1/ward-a/S1/daily",
            json.dumps(
                {
                    "v": 1,
                    "strap": "S1",
                    "date": "2026-07-10",
                    "kmc_hours": 1.0,
                    "monitored_hours": 2.0,
                }
            ),
            qos=1,
        ).wait_for_publish(5)
        time.sleep(3.0)
        pub.loop_stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    mq.stop()
    text = log.read_text() + check.stdout + check.stderr
    assert "InfluxDB" in text  # it did log the outage
    assert "VERY-SECRET" not in text


def test_ward_screen_listens_where_configured(tmp_path):
    """Loopback by default: a ward screen is not on every interface unless configured so."""
    from kmc_host.ward.config import load_ward_config

    (tmp_path / "pin").write_text("1234")
    f = tmp_path / "ward.toml"
    f.write_text(
        f'[ward]\nsite = "s"\nward = "w"\ndata_dir = "{tmp_path}"\n'
        f'pin_file = "{tmp_path / "pin"}"\n'
    )
    assert load_ward_config(f).listen == "127.0.0.1"


def test_two_sinks_share_the_messages_under_the_ward_acl(broker, tmp_path):
    """`[sink] share_group` on a ward's broker as deploy/ configures it: two `sink` logins on
    `$share/<group>/kmc/+/+/+/+` (the subscription `kmc sink` makes) split the gateway's
    messages between them, each message to one of them, none lost, and the broker keeps the
    ACL: a forged strap message from a sink login reaches neither."""
    mq, d = broker
    cfg = tmp_path / "sink.toml"
    cfg.write_text(
        f'[sink]\ndata_dir = "{tmp_path}"\nshare_group = "sinks"\n[mqtt]\nport = {mq.port}\n'
        '[influx]\nurl = "http://127.0.0.1:9"\n'
    )
    topic = subscription(load_sink_config(cfg))
    assert topic == "$share/sinks/kmc/+/+/+/+"
    sinks = [client(mq.port, d, "sink", USERS["sink"], topic=topic) for _ in range(2)]
    for c, _, ready, _ in sinks:
        connect(c, mq.port)
        assert ready.wait(10)
    gw, _, gready, _ = client(mq.port, d, "gateway", USERS["gateway"], topic="kmc/none")
    connect(gw, mq.port)
    assert gready.wait(10)
    for k in range(60):
        body = json.dumps({"v": 1, "strap": "KMC-0001", "seq": [k]})
        gw.publish(TOPIC, body, qos=1).wait_for_publish(5)
    forger = sinks[0][0]
    forger.publish(TOPIC, json.dumps({"v": 1, "strap": "KMC-0001", "seq": [999]}), qos=1)
    deadline = time.monotonic() + 10
    samples = lambda got: [b for t, b in got if t == TOPIC]  # noqa: E731  (not the retained status)
    while sum(len(samples(got)) for _, got, _, _ in sinks) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # (a duplicate or the forged message would have come by now)
    for c, _, _, _ in (*sinks, (gw, None, None, None)):
        c.disconnect()
        c.loop_stop()
    seqs = [[json.loads(b)["seq"][0] for b in samples(got)] for _, got, _, _ in sinks]
    assert sorted(seqs[0] + seqs[1]) == list(range(60))  # each once, none forged
    assert seqs[0] and seqs[1], [len(s) for s in seqs]  # shared, not all to one
