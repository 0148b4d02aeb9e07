"""The chain fails safe, on the ward screen in a real browser (Debian's Chromium via Playwright),
with the real processes stopped and killed (docs/alarms.md, "Technical alarms of the chain"):

    radio.py (2 emulated straps, 1 Hz) --HCI over TCP--> kmc gateway --MQTT--> Mosquitto
    --> kmc ward --SSE--> Chromium

One after the other, each time back to a live ward before the next:
  1. the gateway hangs (SIGSTOP): `gateway_silent` after gateway_silent_after_min, every tile
     "No signal"; SIGCONT ends it;
  2. the gateway dies (SIGKILL): the broker publishes its last will, `gateway_offline`; a nurse
     acknowledges it and the line stays, silent; the restarted gateway ends it;
  3. the gateway's radio is pulled out: `adapter_down` naming it, and (its only radio) every
     tile "No signal"; plugged back, it ends;
  4. the broker dies (SIGKILL): `broker_unreachable`; restarted, it ends;
  5. the ward service dies (SIGKILL): the page's own `service_lost`, tiles greyed, the high
     burst; restarted, it ends.
Each alarm is high priority and sounds its burst; each is in the audit log, raised and ended,
with its source. Screenshots go to test-artifacts/ward/chain-*.png (look at them).
"""

from __future__ import annotations

import csv
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromium import ARTIFACTS, PIN, launch, need_chromium

from kmc_testbed.servers import free_port, stop_process, wait_port
from packets import PASSKEY
from servers import Mosquitto, Radio

playwright = pytest.importorskip("playwright.sync_api")

KMC = [sys.executable, "-m", "kmc_host"]
STRAPS = ("KMC-0001", "KMC-0002")
SILENT_S = 30  # gateway_silent_after_min = 0.5


def service(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([*KMC, *args], stdout=out, stderr=subprocess.STDOUT)


def test_each_broken_link_of_the_chain_raises_its_alarm_on_the_screen(tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    need_chromium()
    (tmp_path / "mq").mkdir()
    broker = Mosquitto(tmp_path / "mq", persistence=True).start()
    radio = Radio(tmp_path, len(STRAPS))
    adapter = f"tcp-client:127.0.0.1:{radio.hci}"
    gw_cfg = tmp_path / "gateway.toml"
    gw_cfg.write_text(
        f'[gateway]\nsite = "site1"\nward = "nicu"\ndata_dir = "{tmp_path / "gw"}"\n'
        f"status_every_s = 5\n[mqtt]\nport = {broker.port}\nkeepalive_s = 120\n"
        f'[ble]\nhci = "{adapter}"\n'
        + "".join(
            f'[[straps]]\nid = "{s}"\nbed = "{k + 1}"\npasskey = {PASSKEY}\n'
            for k, s in enumerate(STRAPS)
        )
    )
    port = free_port()
    (tmp_path / "pin").write_text(PIN)
    ward_cfg = tmp_path / "ward.toml"
    ward_cfg.write_text(
        f'[ward]\nsite = "site1"\nward = "nicu"\nport = {port}\ndata_dir = "{tmp_path / "ward"}"\n'
        f'pin_file = "{tmp_path / "pin"}"\ngateway_silent_after_min = {SILENT_S / 60}\n'
        f"[mqtt]\nport = {broker.port}\n"
    )
    gateway = service(["gateway", "--config", str(gw_cfg)], tmp_path / "gateway.log")
    ward = service(["ward", "--config", str(ward_cfg)], tmp_path / "ward.log")
    wait_port(port, timeout=30)
    url = f"http://127.0.0.1:{port}/"
    seen: dict[str, float] = {}  # kind -> seconds from the fault to the alarm on the screen
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)

            def live() -> None:
                """Both beds live, the gateway online, no alarm of the chain on the banner."""
                for strap in STRAPS:
                    tile = page.locator(f'article.tile[data-strap="{strap}"]')
                    expect(tile.locator(".temp")).to_contain_text("°C", timeout=90_000)
                expect(page.locator("#gw")).to_have_text("Gateway: online", timeout=60_000)
                expect(page.locator("#banner .item")).to_have_count(0, timeout=60_000)

            def alarm(kind: str, since: float, timeout_s: float) -> object:
                """The banner line of `kind`: high priority, in words; the time it took; and
                a high burst played after the line appeared (not an earlier alarm's)."""
                item = page.locator(f'#banner .item[data-alert*="{kind}"]').first
                item.wait_for(timeout=timeout_s * 1000)
                seen[kind] = round(time.monotonic() - since, 1)
                assert item.get_attribute("data-priority") == "high"
                expect(item.locator(".prio")).to_have_text("!!! HIGH")
                key = item.get_attribute("data-alert")
                shown = page.evaluate("id => window.kmc.firstSeen[id] || 0", key)
                page.wait_for_function(
                    f"() => window.kmc.cueLog.some(c => c.priority === 'high' && c.at >= {shown - 0.5})",
                    timeout=15_000,
                )
                return item

            def no_tile_live() -> None:
                for strap in STRAPS:
                    tile = page.locator(f'article.tile[data-strap="{strap}"]')
                    expect(tile).to_have_attribute("data-state", "no_signal", timeout=10_000)
                    expect(tile.locator(".temp")).to_have_text("--.-")

            live()
            page.screenshot(path=str(ARTIFACTS / "chain-0-live.png"))

            # 1. the gateway hangs: nothing from it; its connection stays open
            gateway.send_signal(signal.SIGSTOP)
            t = time.monotonic()
            item = alarm("gateway_silent", t, SILENT_S + 15)
            expect(item).to_contain_text("Gateway silent")
            assert seen["gateway_silent"] >= SILENT_S - 6  # silence counted from its last word
            expect(page.locator("#gw")).to_have_text("Gateway: silent")
            no_tile_live()
            page.screenshot(path=str(ARTIFACTS / "chain-1-gateway-silent.png"))
            gateway.send_signal(signal.SIGCONT)  # long before its keepalive (120 s) runs out
            live()

            # 2. the gateway dies: its connection closes, the broker says its last will
            gateway.send_signal(signal.SIGKILL)
            gateway.wait()
            t = time.monotonic()
            item = alarm("gateway_offline", t, 15)
            expect(item).to_contain_text("Gateway offline")
            expect(page.locator("#gw")).to_have_text("Gateway: offline")
            no_tile_live()
            item.locator("button.ack").click()  # a nurse acknowledges: the line stays, silent
            page.fill("#pin", PIN)
            page.fill("#initials", "JN")
            page.click("#ackok")
            expect(item).to_contain_text("acknowledged by JN")
            expect(item.locator("button.ack")).to_be_hidden()
            page.screenshot(path=str(ARTIFACTS / "chain-2-gateway-offline-acknowledged.png"))
            quiet_from = time.time()
            page.wait_for_timeout(9_000)  # longer than the high burst's 8 s repeat
            repeats = page.evaluate(f"window.kmc.cueLog.filter(c => c.at > {quiet_from}).length")
            assert repeats == 0  # acknowledged: no more sound
            gateway = service(["gateway", "--config", str(gw_cfg)], tmp_path / "gateway.log")
            live()

            # 3. the gateway's radio is pulled out (its HCI transport ends)
            radio.ask(cmd="unplug")
            t = time.monotonic()
            item = alarm("adapter_down", t, 45)
            expect(item).to_contain_text(f"Radio down: {adapter}")
            expect(page.locator("#gw")).to_have_text("Gateway: radio down")
            no_tile_live()  # its only radio: no bed is live
            page.screenshot(path=str(ARTIFACTS / "chain-3-adapter-down.png"))
            radio.ask(cmd="plug")
            live()

            # 4. the broker dies, and comes back on the same port
            broker.proc.send_signal(signal.SIGKILL)
            broker.proc.wait()
            broker.proc = None
            t = time.monotonic()
            item = alarm("broker_unreachable", t, 25)
            expect(item).to_contain_text("Ward service cannot reach the broker")
            no_tile_live()
            page.screenshot(path=str(ARTIFACTS / "chain-4-broker-unreachable.png"))
            broker.start()
            live()

            # 5. the ward service dies: the page raises its own alarm
            ward.send_signal(signal.SIGKILL)
            ward.wait()
            t = time.monotonic()
            item = alarm("service_lost", t, 25)
            expect(item).to_contain_text("Screen not live")
            expect(page.locator("body")).to_have_class("lost")
            hidden = page.locator("article.tile .temp").first.evaluate(
                "e => getComputedStyle(e).visibility"
            )
            assert hidden == "hidden"  # no reading shown as if live
            assert page.evaluate("window.kmc.cueLog.some(c => c.why === 'service_lost')")
            expect(page.locator("#gw")).to_have_text("Gateway: ?")  # it cannot know
            page.screenshot(path=str(ARTIFACTS / "chain-5-service-lost.png"))
            ward = service(["ward", "--config", str(ward_cfg)], tmp_path / "ward.log")
            expect(page.locator("body")).not_to_have_class("lost", timeout=30_000)
            live()
            page.screenshot(path=str(ARTIFACTS / "chain-6-live-again.png"))

            # the audit log: each alarm of the chain raised and ended, with its source
            assert page.request.post(url + "api/login", data={"pin": PIN}).status == 200
            audit = page.request.get(url + "api/audit.csv").text()
            rows = list(csv.reader(io.StringIO(audit)))
            browser.close()
    finally:
        for proc in (gateway, ward):
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
            stop_process(proc, timeout=15)
        radio.close()
        broker.stop()
    events = {(r[1], r[3], r[7]) for r in rows[1:]}
    for kind, source in (
        ("gateway_silent", "gateway"),
        ("gateway_offline", "gateway"),
        ("adapter_down", f"adapter {adapter}"),
        ("broker_unreachable", "broker"),
    ):
        assert ("raised", kind, source) in events and ("ended", kind, source) in events, kind
    assert ("acknowledged", "gateway_offline", "gateway") in events
    print(f"fault to alarm on the screen, seconds: {seen}")
    assert seen["gateway_offline"] < 10 and seen["broker_unreachable"] < 20
    assert seen["service_lost"] < 20 and seen["adapter_down"] < 40
    for log in ("ward.log", "gateway.log"):
        assert "Traceback" not in (tmp_path / log).read_text(), log
