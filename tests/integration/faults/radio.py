"""A ward's air in a process of its own, for the fault suite.

Emulated straps (the firmware's own code, on bumble) sample at 1 Hz in real time on a bumble
LocalLink; the gateway's controller sits on the same link and its HCI is served on a TCP port,
so the gateway runs in another process (`kmc gateway` with `[ble] hci = "tcp-client:..."`,
as it would drive a USB dongle) and can be killed with SIGKILL while the straps keep sampling.

    python tests/integration/faults/radio.py --hci-port P --control-port C --dir D --straps 3

Control: one JSON command per line on the control port, one JSON answer per line:
  {"cmd": "status"}                 -> {"straps": {id: {"produced": n, "erased": [[a, b]],
                                        "skipped": [[a, b]], "clock_set": bool,
                                        "clock_unix": t}}}
        erased: taken but only in RAM at a power cut (stored only if sent before it);
        skipped: numbers the store jumps over on boot (never samples);
        clock_set, clock_unix: whether a gateway has set the strap's clock, and what it reads
  {"cmd": "drop"}                   -> every BLE link is dropped (out of range, interference)
  {"cmd": "reboot", "strap": id}    -> power cut and boot on the same flash (RAM samples lost);
                                       the clock restarts at 2000-01-01T00:00:00Z, unset, as
                                       an ESP32's RTC does without power
  {"cmd": "unplug"}                 -> the gateway's dongle pulled out: its controller leaves
                                       the air (the straps' links time out) and its HCI
                                       connection closes; no new one is taken
  {"cmd": "plug"}                   -> the dongle back: a controller just powered, with the
                                       same public address, served on the same port again
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "analysis"))
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "testbed"))
sys.path.insert(0, str(ROOT / "tests"))

from kmc_host import protocol as P  # noqa: E402
from kmc_testbed.radio import TcpDongle, VirtualRadio  # noqa: E402
from kmc_testbed.strap import EmulatedStrap, SensorFeed  # noqa: E402
from packets import emulated_strap  # noqa: E402

COLD = (170, 250)  # KMC-0002 is cold (35.6 C) over these seconds of the run


def feed(index: int) -> SensorFeed:
    """KMC-0001 in KMC, KMC-0002 cooling for a while, the others quietly in the cot."""
    if index == 0:
        return SensorFeed(contact=lambda k: int(k >= 10))
    if index == 1:
        return SensorFeed(infant_c=lambda k: 35.6 if COLD[0] <= k < COLD[1] else 36.8)
    return SensorFeed()


class Ward:
    def __init__(self, radio: VirtualRadio, root: Path, n: int, hci_port: int) -> None:
        self.radio = radio
        self.dongle = TcpDongle(radio, hci_port)  # the gateway's controller, served over TCP
        self.root = root
        self.n = n
        self.straps: dict[str, EmulatedStrap] = {}
        self.feeds = {}
        self.lost: dict[str, list[list[int]]] = {}
        self.boots: dict[str, int] = {}
        self.skipped: dict[str, list[list[int]]] = {}

    async def start(self) -> None:
        import time

        t2000 = int(time.time()) - P.EPOCH_2000_UNIX
        for k in range(self.n):
            sid = f"KMC-{k + 1:04d}"
            self.feeds[sid] = feed(k)
            self.lost[sid] = []
            self.boots[sid] = 0
            self.skipped[sid] = []
            self.straps[sid] = await emulated_strap(
                self.radio, self.root / sid, self.feeds[sid], strap_id=sid, t2000=t2000, name=sid
            )

    def produced(self, sid: str) -> int:
        return int(self.straps[sid].strap.store.next_seq)

    async def drop(self) -> None:
        for strap in self.straps.values():
            for conn in list(strap.ble._connections.values()):
                await conn.disconnect()

    async def reboot(self, sid: str) -> None:
        old = self.straps[sid]
        flushed = int(old.strap.store.flushed)  # samples after this were only in RAM
        taken = int(old.strap.store.next_seq)
        old.close()
        for conn in list(old.ble._connections.values()):
            await conn.disconnect()
        await old.ble.device.stop_advertising()
        self.boots[sid] += 1
        self.straps[sid] = await emulated_strap(
            self.radio,
            self.root / sid,
            self.feeds[sid],
            strap_id=sid,
            t2000=0,  # the RTC lost power: 2000-01-01, until a gateway sets the clock
            name=f"{sid}-boot{self.boots[sid]}",
            address=old.address,
        )
        # [flushed, taken): only in RAM, gone with the power unless already sent to the gateway;
        # [taken, first): numbers the store skips on boot (never reused, never samples)
        first = int(self.straps[sid].strap.store.next_seq)
        self.lost[sid].append([flushed, taken])
        self.skipped[sid].append([taken, first])
        # the firmware samples from power-on, before any gateway can have set its clock: the
        # first sample is on 2000-01-01 (else a gateway reconnecting within the second would
        # set the clock before the first tick, and the test would show nothing of 2000)
        self.straps[sid].tick()

    async def tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            for strap in self.straps.values():
                strap.tick()
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "drop":
                await self.drop()
                answer: dict = {"ok": True}
            elif cmd["cmd"] == "unplug":
                await self.dongle.unplug()
                answer = {"ok": True}
            elif cmd["cmd"] == "plug":
                await self.dongle.plug()
                answer = {"ok": True}
            elif cmd["cmd"] == "reboot":
                await self.reboot(cmd["strap"])
                answer = {"ok": True}
            else:
                answer = {
                    "straps": {
                        sid: {
                            "produced": self.produced(sid),
                            "erased": self.lost[sid],
                            "skipped": self.skipped[sid],
                            "clock_set": bool(strap.clock.is_set),
                            "clock_unix": strap.clock.now() + P.EPOCH_2000_UNIX,
                        }
                        for sid, strap in self.straps.items()
                    }
                }
            writer.write((json.dumps(answer) + "\n").encode())
            await writer.drain()
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hci-port", type=int, required=True)
    ap.add_argument("--control-port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--straps", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    radio = VirtualRadio()
    ward = Ward(radio, Path(args.dir), args.straps, args.hci_port)
    await ward.dongle.plug()
    await ward.start()
    server = await asyncio.start_server(ward.control, "127.0.0.1", args.control_port)
    print("radio ready", flush=True)
    async with server:
        await ward.tick_forever()


if __name__ == "__main__":
    asyncio.run(main())
