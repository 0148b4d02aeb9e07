# The sample store: RAM ring, flash spill, wrap, reboot, resume reads.
from mptest import raises, run, tmpdir
from protocol import RECORD_SIZE
from store import SampleStore


def rec(i):
    b = bytearray(RECORD_SIZE)
    b[0] = i & 0xFF
    b[1] = (i >> 8) & 0xFF
    b[2] = (i >> 16) & 0xFF
    return b


def val(buf, k):
    o = k * RECORD_SIZE
    return buf[o] | buf[o + 1] << 8 | buf[o + 2] << 16


def read_all(store, start, per_call=7):
    out = []
    buf = bytearray(per_call * RECORD_SIZE)
    seq = start
    while True:
        first, n = store.read_into(seq, per_call, buf)
        if n == 0:
            return out
        assert first >= seq
        for k in range(n):
            out.append((first + k, val(buf, k)))
        seq = first + n


def small(root, **kw):
    args = {"ram_records": 20, "segment_samples": 25, "max_segments": 4, "flush_every": 10}
    args.update(kw)
    return SampleStore(root, **args)


def test_sequence_numbers_and_ram_reads():
    s = small(tmpdir("ram"))
    for i in range(15):
        assert s.append(rec(i)) == i
    got = read_all(s, 0)
    assert got == [(i, i) for i in range(15)], got
    assert s.oldest() == 0 and s.newest() == 14


def test_ram_wraps_and_older_records_come_from_flash():
    s = small(tmpdir("wrap"))
    for i in range(90):  # RAM holds 20; 90 flushed in segments of 25
        s.append(rec(i))
    assert s.ram_first == 70
    assert [c for _, c in s.segments] == [25, 25, 25, 15]
    got = read_all(s, 0)
    assert got == [(i, i) for i in range(90)]
    got = read_all(s, 47)  # resume in the middle of a segment, across segments and RAM
    assert got == [(i, i) for i in range(47, 90)]


def test_capacity_drops_the_oldest_segment_and_resume_starts_at_oldest():
    s = small(tmpdir("cap"))
    for i in range(150):
        s.append(rec(i))
    assert len(s.segments) == 4 and s.oldest() == 50
    got = read_all(s, 3)  # asked for 3: gets everything from the oldest still held
    assert got[0] == (50, 50) and got[-1] == (149, 149) and len(got) == 100


def test_reboot_keeps_flash_and_never_reuses_a_number():
    root = tmpdir("reboot")
    s = small(root)
    for i in range(57):  # 50 flushed, 7 only in RAM: lost with the power
        s.append(rec(i))
    s2 = small(root)
    assert s2.oldest() == 0 and s2.flash_end() == 50
    assert s2.next_seq == 60  # 50 + flush_every: numbers 50-59 are never given twice
    for i in range(1000, 1030):
        s2.append(rec(i))
    got = read_all(s2, 0)
    assert got[:50] == [(i, i) for i in range(50)]
    assert got[50:] == [(60 + k, 1000 + k) for k in range(30)]  # the hole is skipped


def test_a_boot_that_never_flushed_still_never_reuses_a_number():
    # A new strap switched off in its first minute, then twice more before a flush: before the
    # boot file, each boot restarted at 0 and the gateway took the new samples for ones it had.
    root = tmpdir("newboot")
    s = small(root)
    given = [s.append(rec(i)) for i in range(7)]  # below flush_every: nothing in flash
    assert given == list(range(7)) and s.flash_end() == 0
    for boot in range(2):
        s = small(root)
        assert s.next_seq == 10 * (boot + 1), s.next_seq
        given += [s.append(rec(100 + i)) for i in range(3)]
    s = small(root)  # then a boot that lives: it flushes and the next boot follows flash
    given += [s.append(rec(200 + i)) for i in range(25)]
    assert len(set(given)) == len(given) and given[-25] == 30
    s = small(root)
    assert s.next_seq == 30 + 20 + 10 and read_all(s, 0)[0] == (30, 200)


def test_read_past_the_newest_gives_nothing():
    s = small(tmpdir("empty"))
    buf = bytearray(RECORD_SIZE * 4)
    assert s.read_into(0, 4, buf) == (0, 0)
    s.append(rec(1))
    assert s.read_into(1, 4, buf)[1] == 0
    assert s.read_into(0, 0, buf)[1] == 0


def test_flash_failure_keeps_data_in_ram():
    root = tmpdir("fail")
    s = small(root, flush_every=5, ram_records=20)
    s.root = "/nonexistent/dir"  # every flash write fails
    for i in range(12):
        s.append(rec(i))
    assert not s.flash_ok
    assert read_all(s, 0) == [(i, i) for i in range(12)]
    s.root = root  # flash back: the backlog is written
    s.flush()
    assert s.flash_ok and s.flash_end() == 12


def test_flash_down_for_a_whole_ring_counts_what_is_lost():
    root = tmpdir("lost")
    s = small(root, flush_every=5, ram_records=20)
    s.root = "/nonexistent/dir"
    for i in range(30):
        s.append(rec(i))
    assert s.lost == 10 and s.ram_first == 10
    s.root = root
    s.flush()
    assert read_all(s, 0) == [(i, i) for i in range(10, 30)]


def test_ram_must_hold_two_flushes():
    raises(ValueError, SampleStore, tmpdir("bad"), 10, 25, 4, 10)


run(globals())
