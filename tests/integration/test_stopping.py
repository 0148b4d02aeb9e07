"""Ctrl-C and SIGTERM stop `kmc demo`, `kmc gateway`, `kmc sink` and `kmc ward` as processes.

Ctrl-C in a terminal is SIGINT to the whole foreground process group, so the demo is started in
a process group of its own and the group is signalled; SIGTERM (systemd, `kill`) goes to the
process alone. Each must exit within 5 s with 130 / 143, flush what it holds, stop what it
started and leave no process behind (the servers a demo starts are found by their command lines,
which name the demo's folder).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from conftest import signal as make_signal
from kmc_testbed.servers import free_port, wait_port
from packets import PASSKEY, samples_messages
from servers import InfluxDB, Listener, Mosquitto, Radio

KMC = [sys.executable, "-m", "kmc_host"]
STOP_WITHIN_S = 5.0
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def processes_naming(text: str) -> list[str]:
    """Command lines of the processes that mention `text`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd}")
    return found


def start(args: list[str], log: Path, group: bool = False) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*KMC, *args],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=group,
    )


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, f"exited {proc.returncode} early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in {timeout} s:\n{log.read_text()}"
        time.sleep(0.1)


def stop_and_time(proc: subprocess.Popen[bytes], sig: signal.Signals, group: bool) -> float:
    """Send `sig` (to the process group: a terminal's Ctrl-C) and return how long it took."""
    t0 = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running 30 s after {sig.name}")
    return time.monotonic() - t0


@pytest.mark.parametrize(
    ("sig", "group", "when"),
    [
        (signal.SIGINT, True, "all straps reached"),  # Ctrl-C while the ward is simulated
        (signal.SIGTERM, False, "all straps reached"),
        (signal.SIGINT, True, "broker: "),  # while the straps are being found and bonded
        (signal.SIGTERM, False, "broker: "),
    ],
    ids=["ctrl-c-running", "sigterm-running", "ctrl-c-connecting", "sigterm-connecting"],
)
def test_demo_stops_with_everything_it_started(tmp_path, sig, group, when):
    out = tmp_path / "demo"
    log = tmp_path / "demo.log"
    demo = start(
        ["demo", "--straps", "3", "--minutes", "60", "--speed", "30", "--out", str(out)],
        log,
        group=group,
    )
    wait_for_line(log, when, demo, timeout=120)
    took = stop_and_time(demo, sig, group)
    text = log.read_text()
    assert demo.returncode == STATUS[sig], text[-3000:]
    assert took < STOP_WITHIN_S, f"took {took:.1f} s to stop"
    assert f"stopped by {sig.name}" in text
    assert "Traceback" not in text
    time.sleep(0.5)  # the kernel reaps what PR_SET_PDEATHSIG stopped
    assert processes_naming(str(out)) == []  # no Mosquitto, InfluxDB or demo left


@pytest.fixture
def broker(tmp_path):
    (tmp_path / "mq").mkdir()
    b = Mosquitto(tmp_path / "mq", persistence=True).start()
    yield b
    b.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_gateway_stops_and_says_offline(tmp_path, broker, sig):
    """`kmc gateway` with straps streaming: it stops within 5 s, with the retained status
    `offline` published as it goes (a clean stop, not the broker's last will), and nothing
    left in its outbox (with the broker up, everything taken from the straps reached it)."""
    radio = Radio(tmp_path, 2)
    try:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(
            f'[gateway]\nsite = "s"\nward = "w"\ndata_dir = "{tmp_path / "gw"}"\n'
            f'[mqtt]\nport = {broker.port}\n[ble]\nhci = "tcp-client:127.0.0.1:{radio.hci}"\n'
            + "".join(f'[[straps]]\nid = "KMC-000{k}"\npasskey = {PASSKEY}\n' for k in (1, 2))
        )
        listener = Listener(broker.port, "kmc/s/w/#")
        log = tmp_path / "gateway.log"
        gateway = start(["gateway", "--config", str(cfg)], log)
        deadline = time.monotonic() + 90
        while len({b["strap"] for b in listener.bodies(leaf="samples")}) < 2:
            assert gateway.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        took = stop_and_time(gateway, sig, group=False)
        assert gateway.returncode == STATUS[sig], log.read_text()[-3000:]
        assert took < STOP_WITHIN_S, (f"took {took:.1f} s", log.read_text()[-3000:])
        statuses = [b["state"] for b in listener.bodies(leaf="status")]
        assert statuses[-1] == "offline", (statuses, log.read_text()[-3000:])
        listener.close()
        # the outbox is flushed: every sample the gateway took from a strap is at the broker
        import sqlite3

        with sqlite3.connect(tmp_path / "gw" / "outbox.db") as db:
            (left,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        assert left == 0, (f"{left} messages left in the outbox", log.read_text()[-3000:])
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        radio.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_sink_stops_and_loses_nothing(tmp_path, broker, sig):
    """`kmc sink` in the middle of a stream: it stops within 5 s; what it acknowledged and had
    not yet written stays in its spool, and after the next start every sample is in InfluxDB
    (a replay overwrites the same point: seq-keyed timestamps, so no duplicate can show)."""
    influx = InfluxDB(tmp_path).start()
    cfg = tmp_path / "sink.toml"
    cfg.write_text(
        f'[sink]\ndata_dir = "{tmp_path / "sink"}"\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "stop-sink"\n'
        f'[influx]\nurl = "{influx.url}"\ncreate_database = true\n'
    )
    log = tmp_path / "sink.log"
    try:
        sink = start(["sink", "--config", str(cfg)], log)
        wait_for_line(log, "sink connected", sink, timeout=30)
        s = make_signal((7200, 1, 1, 36.8), t0=1772431200.0)
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stop-test-pub")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        infos = [
            pub.publish("kmc/s/w/KMC-0001/samples", json.dumps(m), qos=1)
            for m in samples_messages("KMC-0001", "1", "INF-1", s, 60, digits=2)
        ]
        for info in infos[: len(infos) // 2]:
            info.wait_for_publish(10)
        took = stop_and_time(sink, sig, group=False)  # with half the stream still arriving
        for info in infos:
            info.wait_for_publish(10)
        pub.disconnect()
        pub.loop_stop()
        assert sink.returncode == STATUS[sig], log.read_text()[-3000:]
        assert took < STOP_WITHIN_S, f"took {took:.1f} s"
        sink = start(["sink", "--config", str(cfg)], log)  # the broker kept the rest for it
        deadline = time.monotonic() + 60
        while influx.count("kmc_sample", "seq") < len(s):
            assert time.monotonic() < deadline, f"{influx.count('kmc_sample', 'seq')} stored"
            time.sleep(0.3)
        stop_and_time(sink, signal.SIGTERM, group=False)
        seqs = [
            int(v[1])
            for series in influx.query('SELECT seq FROM "kmc_sample"')
            for v in series["values"]
        ]
        assert sorted(seqs) == list(range(len(s)))  # none missing
        assert "Traceback" not in log.read_text()
    finally:
        influx.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_ward_stops_with_screens_connected(tmp_path, broker, sig):
    """`kmc ward` with two screens holding their live event streams open: it ends the streams
    and stops within 5 s (aiohttp waits up to a minute for open requests by default)."""
    port = free_port()
    (tmp_path / "pin").write_text("2580\n")
    cfg = tmp_path / "ward.toml"
    cfg.write_text(
        f'[ward]\nsite = "s"\nward = "w"\nport = {port}\ndata_dir = "{tmp_path / "ward"}"\n'
        f'pin_file = "{tmp_path / "pin"}"\n[mqtt]\nport = {broker.port}\n'
    )
    log = tmp_path / "ward.log"
    ward = start(["ward", "--config", str(cfg)], log)
    wait_port(port, timeout=30)
    streams = [urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=10) for _ in "ab"]
    for st in streams:
        assert st.readline().startswith(b"retry:")
    took = stop_and_time(ward, sig, group=False)
    assert ward.returncode == STATUS[sig], log.read_text()[-3000:]
    assert took < STOP_WITHIN_S, f"took {took:.1f} s"
    for st in streams:  # each stream was ended by the server (a cut one: IncompleteRead)
        rest = st.read().strip()
        assert rest == b"" or rest.startswith(b"data:")
        st.close()
    assert "Traceback" not in log.read_text()


def test_kmc_exits_on_sigterm_during_a_long_analysis(tmp_path):
    """A batch command (here `kmc simulate`, a long one) also stops on SIGTERM with 143."""
    proc = start(
        ["simulate", "--devices", "40", "--days", "7", "--out", str(tmp_path / "s.csv")],
        tmp_path / "sim.log",
    )
    time.sleep(3)
    took = stop_and_time(proc, signal.SIGTERM, group=False)
    assert proc.returncode == 143, (tmp_path / "sim.log").read_text()
    assert took < STOP_WITHIN_S
    assert "stopped by SIGTERM" in (tmp_path / "sim.log").read_text()
