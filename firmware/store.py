# The sample store: every sample gets the next 32-bit sequence number and is kept until the
# gateway can fetch it, through BLE outages of hours and through reboots.
#
# The newest records live in a RAM ring; every `flush_every` records they are appended to a
# flash segment file (littlefs: appends are atomic per write, wear-levelled). Segments hold
# `segment_samples` records each and are named by their first sequence number; the oldest is
# deleted when there are more than `max_segments`. After a reboot the store continues after the
# last record in flash, skipping `flush_every` numbers so a number is never given twice even if
# the last unflushed records (at most `flush_every`) were lost with the power.
#
# Flash alone cannot say where a boot that never flushed began (a new strap switched off in its
# first minute, or two power cuts inside one minute), so each boot also writes its first number
# to a small `boot` file: the next boot starts `flush_every` after the later of the two.
import os

from protocol import RECORD_SIZE


class SampleStore:
    def __init__(
        self, root, ram_records=600, segment_samples=3600, max_segments=40, flush_every=60
    ):
        if ram_records < 2 * flush_every:
            raise ValueError("ram_records must be at least 2 * flush_every")
        self.root = root
        self.ram_records = ram_records
        self.segment_samples = segment_samples
        self.max_segments = max_segments
        self.flush_every = flush_every
        self.ram = bytearray(ram_records * RECORD_SIZE)
        self.flash_ok = True
        self.segments = []  # type: list[list[int]]  # [first_seq, count] oldest first
        self._mkdir()
        self._scan()
        last_boot = self._read_boot()
        if self.segments or last_boot is not None:
            self.next_seq = max(self.flash_end(), last_boot or 0) + flush_every
        else:
            self.next_seq = 0  # a new strap
        self._write_boot(self.next_seq)
        self.ram_first = self.next_seq  # oldest seq held in RAM
        self.flushed = self.next_seq  # first seq not yet in flash
        self.lost = 0  # records overwritten in RAM before flash took them (flash failing)

    # -- writing

    def append(self, record):
        """Store one 12-byte record; return its sequence number."""
        seq = self.next_seq
        pos = (seq % self.ram_records) * RECORD_SIZE
        self.ram[pos : pos + RECORD_SIZE] = record
        self.next_seq = seq + 1
        if self.next_seq - self.ram_first > self.ram_records:
            self.ram_first = self.next_seq - self.ram_records
        if self.ram_first > self.flushed:  # flash has failed for a whole RAM ring
            self.lost += self.ram_first - self.flushed
            self.flushed = self.ram_first
        if self.next_seq - self.flushed >= self.flush_every:
            self.flush()
        return seq

    def flush(self):
        """Append the unflushed RAM records to flash (called every `flush_every` samples)."""
        while self.flushed < self.next_seq:
            if (
                not self.segments
                or self.segments[-1][1] >= self.segment_samples
                or (self.segments[-1][0] + self.segments[-1][1] != self.flushed)
            ):
                self.segments.append([self.flushed, 0])
            seg = self.segments[-1]
            room = self.segment_samples - seg[1]
            n = min(room, self.next_seq - self.flushed)
            n = min(n, self.ram_records - (self.flushed % self.ram_records))  # contiguous in RAM
            pos = (self.flushed % self.ram_records) * RECORD_SIZE
            try:
                with open(self._path(seg[0]), "ab") as f:
                    f.write(memoryview(self.ram)[pos : pos + n * RECORD_SIZE])
                self.flash_ok = True
            except OSError:
                self.flash_ok = False  # flash full or failing: keep the data in RAM, retry later
                if not seg[1]:
                    self.segments.pop()
                return
            seg[1] += n
            self.flushed += n
        while len(self.segments) > self.max_segments:
            first, _ = self.segments.pop(0)
            try:
                os.remove(self._path(first))
            except OSError:
                pass

    # -- reading

    def oldest(self):
        """Oldest sequence number still held (flash or RAM)."""
        if self.segments:
            return self.segments[0][0]
        return self.ram_first

    def newest(self):
        """Newest sequence number held, or oldest() - 1 when empty."""
        return self.next_seq - 1

    def read_into(self, seq, max_count, buf, offset=0):
        """Copy up to max_count records from `seq` (or the oldest after it) into buf.

        Returns (first_seq, count); count 0 when nothing at or after seq is held yet.
        """
        seq = max(seq, self.oldest())
        if seq >= self.next_seq or max_count <= 0:
            return seq, 0
        if seq >= self.ram_first:
            n = min(max_count, self.next_seq - seq, self.ram_records - (seq % self.ram_records))
            pos = (seq % self.ram_records) * RECORD_SIZE
            buf[offset : offset + n * RECORD_SIZE] = memoryview(self.ram)[
                pos : pos + n * RECORD_SIZE
            ]
            return seq, n
        for first, count in self.segments:
            if first + count <= seq:
                continue
            if seq < first:  # a hole (records lost at a reboot): skip to what exists
                seq = first
            n = (
                min(max_count, first + count - seq, self.ram_first - seq)
                if seq < self.ram_first
                else 0
            )
            if n <= 0:
                break
            try:
                with open(self._path(first), "rb") as f:
                    f.seek((seq - first) * RECORD_SIZE)
                    f.readinto(memoryview(buf)[offset : offset + n * RECORD_SIZE])
            except OSError:
                return seq, 0
            return seq, n
        return (
            self.read_into(self.ram_first, max_count, buf, offset)
            if seq < self.ram_first
            else (seq, 0)
        )

    def flash_end(self):
        if not self.segments:
            return 0
        first, count = self.segments[-1]
        return first + count

    def fill_percent(self):
        held = self.next_seq - self.oldest()
        return min(100, held * 100 // (self.segment_samples * self.max_segments))

    # -- files

    def _path(self, first):
        return "%s/%08x.seg" % (self.root, first)

    def _read_boot(self):
        try:
            with open(self.root + "/boot", "rb") as f:
                return int(f.read(8), 16)
        except (OSError, ValueError):
            return None  # none yet (a new strap), or unreadable: flash decides alone

    def _write_boot(self, seq):
        try:
            with open(self.root + "/boot", "wb") as f:
                f.write(b"%08x" % seq)
        except OSError:
            self.flash_ok = False  # as for a failed flush: the store still runs from RAM

    def _mkdir(self):
        try:
            os.mkdir(self.root)
        except OSError:
            pass  # exists

    def _scan(self):
        found = []  # type: list[list[int]]
        try:
            names = os.listdir(self.root)
        except OSError:
            names = []
        for name in names:
            if not name.endswith(".seg") or len(name) != 12:
                continue
            try:
                first = int(name[:8], 16)
                size = os.stat("%s/%s" % (self.root, name))[6]
            except (ValueError, OSError):
                continue
            if size >= RECORD_SIZE:
                found.append([first, size // RECORD_SIZE])
        found.sort()
        self.segments = found
