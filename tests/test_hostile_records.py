"""Hostile record contents (issue 13, defects 2 and 11), over the raw wire.

A batch whose CRC is right but whose records are random bytes used to be
stored, and a kafka-python consumer then stopped forever at its offset; a
65 KB zstd batch of RLE blocks decompressed to gigabytes in the broker. Now
the records of every produced batch are checked (INVALID_RECORD /
CORRUPT_MESSAGE, partition untouched) and decompression stops at a bound
(MESSAGE_TOO_LARGE), also for a bomb already on disk."""

from __future__ import annotations

import gzip
import os
import random
import struct
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition as KTopicPartition

import kafka_wire as kw
from helpers import consume, create_topic, leader_conn, produce, unique, wait_until, watermarks

MIB = 1 << 20
# What the broker may add to its peak RSS while refusing bombs: its bound on
# a decompressed batch is 32 MiB per shard (plus the codec's window); without
# it one bomb costs 2 GiB.
RSS_GROWTH_MAX = 160 * MIB

CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = 1, 2, 3, 4
CONTROL = 0x20


# ------------------------------------------------------------ batches ---

def raw_batch(payload: bytes, records_count: int, attributes=0, base_offset=0, timestamp_ms=None) -> bytes:
    """A RecordBatch v2 with ``payload`` as its records section, correct CRC."""
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    after_crc = (
        kw.i16(attributes)
        + kw.i32(records_count - 1)  # last_offset_delta
        + kw.i64(timestamp_ms) + kw.i64(timestamp_ms)
        + kw.i64(-1) + kw.i16(-1) + kw.i32(-1)  # no producer id, epoch, sequence
        + kw.i32(records_count)
        + payload
    )
    after_len = kw.i32(-1) + kw.i8(2) + kw.u32(kw.crc32c(after_crc)) + after_crc
    return kw.i64(base_offset) + kw.i32(len(after_len)) + after_len


def zstd_rle_bomb(blocks=16_000) -> bytes:
    """A zstd frame of RLE blocks of 128 KiB, 4 bytes each: 64 KB that make 2 GiB."""
    frame = bytearray(b"\x28\xb5\x2f\xfd")  # magic
    frame += b"\x00"  # no content size, no checksum
    frame += bytes([7 << 3])  # window 128 KiB
    for i in range(blocks):
        last = 1 if i + 1 == blocks else 0
        header = last | (1 << 1) | ((128 << 10) << 3)  # RLE block of 128 KiB
        frame += struct.pack("<I", header)[:3] + b"x"
    return bytes(frame)


def gzip_bomb(size=64 * MIB) -> bytes:
    return gzip.compress(b"\0" * size, compresslevel=9)


def noise(n, seed) -> bytes:
    return random.Random(seed).randbytes(n)


def recs(prefix, n):
    return [(f"k{i}".encode(), f"{prefix}-{i}".encode()) for i in range(n)]


# ------------------------------------------------------------ the broker ---

def status_kib(pid, field) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class PeakRss:
    """The broker's peak RSS growth over a block of the test (VmHWM, reset
    first through clear_refs where the kernel lets us)."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            pass  # VmHWM then also holds start-up's peak, which only loosens the check
        self.before = max(status_kib(self.pid, "VmRSS"), status_kib(self.pid, "VmHWM")) * 1024
        return self

    def __exit__(self, *exc):
        self.growth = status_kib(self.pid, "VmHWM") * 1024 - self.before


def kafka_python_read(bootstrap, topic, partition, expect):
    """Every record kafka-python reads from the partition's start (it raises on a corrupt record)."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        tp = KTopicPartition(topic, partition)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < expect and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got += [(r.offset, r.key, r.value) for r in records]
        # Nothing after the expected records either.
        for records in c.poll(timeout_ms=500).values():
            got += [(r.offset, r.key, r.value) for r in records]
        return got
    finally:
        c.close()


# ------------------------------------------------------------ the tests ---

def test_random_records_with_a_valid_crc_are_refused_and_nothing_is_stored(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("hostile-rec"), partitions=1)
    with leader_conn(b, topic, 0) as c:
        assert c.produce(topic, 0, kw.record_batch(recs("a", 5))) == (kw.NONE, 0)

        # Issue 13's trigger: records of random bytes, the CRC computed over them.
        for seed in range(20):
            bad = raw_batch(noise(40 + 17 * seed, seed), records_count=5)
            assert kw.batch_crc_ok(bad)
            err, _ = c.produce(topic, 0, bad)
            assert err == kw.INVALID_RECORD, f"seed {seed}: error {err}"
        # The same noise as every codec's payload does not decompress.
        for codec in (CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD):
            err, _ = c.produce(topic, 0, raw_batch(noise(300, codec), records_count=5, attributes=codec))
            assert err in (kw.CORRUPT_MESSAGE, kw.INVALID_RECORD), f"codec {codec}: error {err}"

        # Well-framed batches with one thing wrong, each refused as Kafka's LogValidator does.
        good = [kw.encode_record(i, k, v) for i, (k, v) in enumerate(recs("x", 3))]
        cases = {
            "offset deltas 0, 0, 1": b"".join(kw.encode_record(d, b"k", b"v") for d in (0, 0, 1)),
            "bytes after the last record": b"".join(good) + b"\0",
            "a key length past its record": good[0][:4] + kw.varint(50) + good[0][5:] + b"".join(good[1:]),
            "a record short of records_count": b"".join(good[:2]),
        }
        for what, payload in cases.items():
            err, _ = c.produce(topic, 0, raw_batch(payload, records_count=3))
            assert err == kw.INVALID_RECORD, f"{what}: error {err}"
        err, _ = c.produce(topic, 0, raw_batch(b"".join(good), records_count=3, attributes=CONTROL))
        assert err == kw.INVALID_RECORD, f"a client's control batch: error {err}"

        # The partition took none of it: the next batch gets offset 5.
        assert c.produce(topic, 0, kw.record_batch(recs("b", 5))) == (kw.NONE, 5)

    assert watermarks(b.bootstrap, topic, 0) == (0, 10)
    expected = [(i, f"k{i}".encode(), f"a-{i}".encode()) for i in range(5)] + \
        [(5 + i, f"k{i}".encode(), f"b-{i}".encode()) for i in range(5)]
    assert kafka_python_read(b.bootstrap, topic, 0, expect=10) == expected
    got = consume(b.bootstrap, topic, [0], expect={0: 10})
    assert got[0] == expected


def test_decompression_bombs_are_refused_with_bounded_memory(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("hostile-bomb"), partitions=4)
    zstd = zstd_rle_bomb()
    assert len(zstd) < 65_000
    gz = gzip_bomb()
    assert len(gz) < 100_000
    conns = {p: leader_conn(b, topic, p) for p in range(4)}
    try:
        for p, c in conns.items():
            assert c.produce(topic, p, kw.record_batch(recs("before", 2))) == (kw.NONE, 0)
        with PeakRss(b.proc.pid) as peak:
            for round_ in range(3):
                for p, c in conns.items():
                    for name, payload, codec in (("zstd", zstd, CODEC_ZSTD), ("gzip", gz, CODEC_GZIP)):
                        started = time.monotonic()
                        err, _ = c.produce(topic, p, raw_batch(payload, records_count=1, attributes=codec))
                        assert err == kw.MESSAGE_TOO_LARGE, f"{name} bomb {round_} to partition {p}: error {err}"
                        assert time.monotonic() - started < 5, f"{name} bomb took {time.monotonic() - started:.1f}s"
        assert peak.growth < RSS_GROWTH_MAX, f"peak RSS grew {peak.growth / MIB:.0f} MiB refusing 24 bombs"

        # The broker keeps serving, and stored nothing of the bombs.
        for p, c in conns.items():
            assert c.produce(topic, p, kw.record_batch(recs("after", 2))) == (kw.NONE, 2)
    finally:
        for c in conns.values():
            c.close()
    got = consume(b.bootstrap, topic, list(range(4)), expect={p: 4 for p in range(4)})
    for p in range(4):
        assert [v for _, _, v in got[p]] == [b"before-0", b"before-1", b"after-0", b"after-1"], p
    assert "panicked" not in b.log()


def test_a_bomb_already_on_disk_is_read_with_bounded_memory(broker_factory):
    """A bomb stored before this fix (or written by disk corruption): ListOffsets
    by timestamp and the cleaner read it with the bound, keep it, and go on."""
    b = broker_factory(**{"log_cleaner_backoff_ms": 200})
    compacted = {"cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "300",
                 "min.cleanable.dirty.ratio": "0.01"}
    topic = create_topic(b.bootstrap, unique("hostile-disk"), partitions=1, config=compacted)
    produce(b.bootstrap, topic, [(0, f"k{i % 5}".encode(), f"v{i}".encode()) for i in range(20)])
    b.stop()

    # Append the bomb at the end of the active segment, as a broker before the fix stored it.
    part = b.data_dir / f"{topic}-0"
    active = sorted(part.glob("*.log"))[-1]
    data = active.read_bytes()
    batches = kw.split_batches(data)
    pos, size, base, lod = batches[-1]
    assert kw.is_block_padding(data[pos + size:])
    bomb_offset = base + lod + 1
    bomb_time = int(time.time() * 1000) + 60_000  # later than every record: ListOffsets finds this batch
    bomb = raw_batch(zstd_rle_bomb(), records_count=1, attributes=CODEC_ZSTD, base_offset=bomb_offset,
                     timestamp_ms=bomb_time)
    with open(active, "r+b") as f:
        f.truncate(pos + size)
        f.seek(pos + size)
        f.write(bomb)
        os.fsync(f.fileno())

    b.start()
    assert watermarks(b.bootstrap, topic, 0)[1] == bomb_offset + 1, "recovery keeps the stored batch"
    with PeakRss(b.proc.pid) as peak:
        c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None)
        try:
            tp = KTopicPartition(topic, 0)
            found = c.offsets_for_times({tp: bomb_time - 1})[tp]
        finally:
            c.close()
        assert found is not None and found.offset == bomb_offset, found

        # Later records roll the bomb's segment: the cleaner meets it in a closed segment.
        time.sleep(0.4)
        produce(b.bootstrap, topic, [(0, f"k{i % 5}".encode(), f"w{i}".encode()) for i in range(20)])
        time.sleep(0.4)
        produce(b.bootstrap, topic, [(0, b"roll", b"roll")])
        wait_until(lambda: "cleaner kept batches it cannot read" in b.run_log(), timeout=20,
                   what="the cleaner's line about the bomb")
        time.sleep(1.0)  # more rounds meet it again
    assert peak.growth < RSS_GROWTH_MAX, f"peak RSS grew {peak.growth / MIB:.0f} MiB reading a stored bomb"
    log = b.run_log()
    assert log.count("cleaner kept batches it cannot read") == 1, "one line per 10 s, not one per round"
    assert "cleaning log failed" not in log

    # The partition keeps serving, the bomb kept where it was.
    lo, hi = watermarks(b.bootstrap, topic, 0)
    produce(b.bootstrap, topic, [(0, b"k0", b"last")])
    assert watermarks(b.bootstrap, topic, 0) == (lo, hi + 1)
    stored = b"".join(p.read_bytes() for p in sorted(part.glob("*.log")))
    assert bomb[8:] in stored, "the unreadable batch is kept byte for byte (base offset aside)"
