"""InfluxSource's read-ahead: a consumer that stops (Ctrl-C, an error) is not held back by the
queries still in flight."""

from __future__ import annotations

import threading
import time

from kmc_analysis.sources import InfluxSource

ROWS = b"name,tags,time,infant_c,contact,worn,battery_v\nkmc_sample,,1780000000000,36.5,1,1,3.9\n"


class SlowInflux:
    """InfluxQL stand-in: four straps; the first strap-day is answered at once, every other
    query after `delay_s`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.asked = 0
        self.lock = threading.Lock()

    def run(self, query: str) -> list[dict]:
        return [{"tags": {"strap": s}, "values": [[0, 1]]} for s in "ABCD"]

    def csv(self, query: str) -> bytes:
        with self.lock:
            self.asked += 1
            first = self.asked == 1
        if not first:
            time.sleep(self.delay_s)
        return ROWS


def test_a_consumer_that_stops_is_not_held_by_the_queries_in_flight():
    source = object.__new__(InfluxSource)  # (no server: the queries are the stand-in's)
    source.query, source.site, source.ward = SlowInflux(3.0), "", ""
    chunks = source.chunks(1.78e9, 1.78e9 + 7 * 86400)
    strap, samples = next(chunks)  # the first answer, while the next ones are in flight
    assert strap == "A" and samples.time.tolist() == [1780000000.0]
    t0 = time.monotonic()
    chunks.close()  # the consumer leaves (Ctrl-C, an error): GeneratorExit in the read-ahead
    assert time.monotonic() - t0 < 1.0  # not the 3 s the queries in flight still take
    assert source.query.asked < 28  # the strap-days not started are not asked for
