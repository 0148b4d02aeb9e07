"""The sink's disk full: its spool on a small tmpfs, mostly taken by a ballast file, InfluxDB
away (and its database not yet created) so the spool can only grow to its reserve
(`spool_reserve_mb`, here 1 MB). The sink must not wedge: it holds what it cannot spool,
unacknowledged (the broker queues the rest), says `stalled` on its status topic, and when
InfluxDB is back and the spool drains (SQLite reuses the freed pages) it spools the held
messages, acknowledges them, says `online` again and every sample reaches InfluxDB. A real `kmc sink` process, a real Mosquitto and a real InfluxDB; the production gateway
publishes (without BLE: tests/sink/test_sink.py's WardGateway)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_sink import STRAPS, WardGateway, samples_in_db, start_sink, wait_for

from kmc_testbed.servers import stop_process
from servers import InfluxDB, Listener, Mosquitto

pytestmark = pytest.mark.usefixtures("mqtt_contract")

SAMPLES = 1800  # per strap (WardGateway's 30 min at 1 Hz)


@pytest.fixture
def small_disk(tmp_path: Path):
    """An 8 MB tmpfs with all but 1.6 MB taken by a ballast file."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        reason = f"cannot mount a small tmpfs here: {r.stderr.strip() or r.returncode}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run this test: .ci/run runs as root)")
        pytest.skip(reason)
    try:
        free = shutil.disk_usage(mnt).free
        (mnt / "ballast").write_bytes(b"\0" * (free - 1_600_000))
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_spool_disk_holds_messages_and_recovers_by_itself(small_disk: Path, tmp_path):
    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq", persistence=True).start()
    influx = InfluxDB(tmp_path)  # not started: the spool can only grow
    sink_dir = small_disk / "sink"
    config = tmp_path / "sink.toml"
    config.write_text(
        f'[sink]\ndata_dir = "{sink_dir}"\nmax_backoff_s = 2\nspool_reserve_mb = 1\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "disk-sink"\n'
        f'[influx]\napi = "v1"\nurl = "{influx.url}"\ndatabase = "kmc"\ncreate_database = true\n'
    )
    status = Listener(broker.port, "kmc/sink/disk-sink/status")
    sink = start_sink(config, tmp_path / "sink.log")
    gateway = WardGateway(tmp_path, broker.port)
    try:
        wait_for(lambda: status.bodies("kmc/sink/disk-sink/status") != [], 30, "the sink online")
        assert status.bodies("kmc/sink/disk-sink/status")[-1]["state"] == "online"
        gateway.publish(0, SAMPLES // 10)  # every message to the broker
        wait_for(
            lambda: any(
                b["state"] == "stalled" for b in status.bodies("kmc/sink/disk-sink/status")
            ),
            60,
            "the sink to say it is stalled",
        )
        stalled = next(
            b for b in status.bodies("kmc/sink/disk-sink/status") if b["state"] == "stalled"
        )
        assert stalled["held"] >= 1 and stalled["spool"] > 0 and stalled["reason"] == "spool full"
        assert sink.poll() is None  # still running
        influx.start()  # the spool drains; its pages are free for the held messages
        wait_for(
            lambda: status.bodies("kmc/sink/disk-sink/status")[-1]["state"] == "online",
            120,
            "the sink to recover",
        )
        want = {s: list(range(SAMPLES)) for s in STRAPS}
        wait_for(
            lambda: {s: sorted(v) for s, v in samples_in_db(influx).items()} == want,
            120,
            "every sample in InfluxDB",
        )
        stored = samples_in_db(influx)
        # one point per sample (InfluxDB keeps one point per key: replays overwrite, so this
        # shows nothing was lost, not that nothing was sent twice)
        assert all(len(v) == len(set(v)) == SAMPLES for v in stored.values())
    finally:
        gateway.close()
        stop_process(sink, timeout=15)
        status.close()
        influx.stop()
        broker.stop()
    log = (tmp_path / "sink.log").read_text()
    assert "holding them unacknowledged" in log and "nothing was lost" in log
    assert "Traceback" not in log
    offline = status.bodies("kmc/sink/disk-sink/status")[-1]
    assert offline["state"] == "offline"  # a clean stop says so
