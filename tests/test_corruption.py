"""Corrupt batches on the wire are refused; a corrupt or torn tail on disk is cut on start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

import kafka_wire as kw
from helpers import QUIET, consume, create_topic, leader_conn, produce, unique, watermarks


def recs(prefix, n):
    return [(f"k{i}".encode(), f"{prefix}-{i}".encode()) for i in range(n)]


@pytest.mark.parametrize("where", ["last-record-byte", "first-record-byte", "crc-field", "attributes"])
def test_corrupt_batch_is_refused(broker, where):
    b = broker
    topic = create_topic(b.bootstrap, unique("cor-wire"), partitions=2)
    with leader_conn(b, topic, 0) as c:
        good = kw.record_batch(recs("a", 5))
        assert kw.batch_crc_ok(good)
        assert c.produce(topic, 0, good) == (kw.NONE, 0)

        bad = bytearray(kw.record_batch(recs("bad", 5)))
        pos = {"last-record-byte": len(bad) - 3, "first-record-byte": kw.BATCH_HEADER_BYTES,
               "crc-field": kw.CRC_OFFSET + 1, "attributes": kw.CRC_START + 1}[where]
        bad[pos] ^= 0x01
        assert not kw.batch_crc_ok(bytes(bad))
        err, _ = c.produce(topic, 0, bytes(bad))
        assert err == kw.CORRUPT_MESSAGE, f"flipped byte at {pos} ({where}): error {err}, expected 2"

        # the connection still works, and nothing of the bad batch took an offset
        assert c.produce(topic, 0, kw.record_batch(recs("b", 5))) == (kw.NONE, 5)

    got = consume(b.bootstrap, topic, [0], expect={0: 10})
    assert [(o, v) for o, _, v in got[0]] == \
        [(i, f"a-{i}".encode()) for i in range(5)] + [(5 + i, f"b-{i}".encode()) for i in range(5)]
    assert watermarks(b.bootstrap, topic, 0) == (0, 10)


def test_bad_batch_length_and_count_refused(broker):
    """records_count that disagrees with last_offset_delta, and a batch_length past the end."""
    b = broker
    topic = create_topic(b.bootstrap, unique("cor-len"), partitions=1)
    with leader_conn(b, topic, 0) as c:
        good = kw.record_batch(recs("x", 3))
        # batch_length claims more bytes than were sent
        longer = bytearray(good)
        longer[8:12] = kw.i32(len(good) - 12 + 100)
        err, _ = c.produce(topic, 0, bytes(longer))
        assert err in (kw.CORRUPT_MESSAGE, kw.INVALID_RECORD), f"overlong batch_length: error {err}"
    with leader_conn(b, topic, 0) as c:
        # records_count 4 with last_offset_delta 2, CRC recomputed so only the count check can catch it
        miscount = bytearray(good)
        miscount[57:61] = kw.i32(4)
        miscount[17:21] = kw.u32(kw.crc32c(bytes(miscount[21:])))
        assert kw.batch_crc_ok(bytes(miscount))
        err, _ = c.produce(topic, 0, bytes(miscount))
        assert err in (kw.CORRUPT_MESSAGE, kw.INVALID_RECORD), f"records_count mismatch: error {err}"
    # whatever the broker did with that connection, it still serves, and stored nothing
    with leader_conn(b, topic, 0) as c:
        assert c.produce(topic, 0, good) == (kw.NONE, 0)
    assert watermarks(b.bootstrap, topic, 0) == (0, 3)


def segment_files(data_dir: Path, topic: str, partition: int):
    files = sorted(p for p in Path(data_dir).rglob("*.log") if p.parent.name == f"{topic}-{partition}")
    assert files, f"no segment files for {topic}-{partition} under {data_dir}: " \
                  f"{sorted(str(p.relative_to(data_dir)) for p in Path(data_dir).rglob('*'))}"
    return files


@pytest.mark.parametrize("how", ["flip-sigterm", "flip-sigkill", "torn-sigkill"])
def test_corrupt_tail_on_disk_is_truncated(broker, how):
    b = broker
    topic = create_topic(b.bootstrap, unique("cor-disk"), partitions=1,
                         config={"flush.messages": "1"})
    # several separate batches: one flush per group
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0, **QUIET})
    n = 0
    for group in range(6):
        for _ in range(20):
            p.produce(topic, value=f"rec-{n}".encode(), partition=0)
            n += 1
        assert p.flush(30) == 0
    p = None
    assert watermarks(b.bootstrap, topic, 0) == (0, n)

    if how.endswith("sigterm"):
        b.stop()
    else:
        b.kill()

    seg = segment_files(b.data_dir, topic, 0)[-1]
    data = bytearray(seg.read_bytes())
    batches = kw.split_batches(bytes(data))
    assert batches, f"{seg} holds no batches ({len(data)} bytes)"
    whole = sum(size for _, size, _, _ in batches)
    assert kw.is_block_padding(data[whole:]), "segment is not a clean run of RecordBatches"
    del data[whole:]
    expect_next = batches[0][2]
    for pos, size, base, lod in batches:
        assert base == expect_next, f"batch at {pos}: base offset {base}, expected {expect_next}"
        assert kw.batch_crc_ok(bytes(data[pos:pos + size])), f"batch at {pos} stored with a bad CRC"
        expect_next = base + lod + 1
    assert expect_next == n and len(batches) >= 2, (expect_next, len(batches))

    last_pos, last_size, last_base, _ = batches[-1]
    if how.startswith("flip"):
        data[last_pos + last_size - 2] ^= 0x40  # inside the last record's value
        seg.write_bytes(bytes(data))
    else:
        seg.write_bytes(bytes(data[:last_pos + last_size // 2]))  # half a batch: a torn write

    b.start()
    assert watermarks(b.bootstrap, topic, 0) == (0, last_base), "corrupt tail should be cut at the last good batch"
    got = consume(b.bootstrap, topic, [0], expect={0: last_base})
    assert [(o, v) for o, _, v in got[0]] == [(i, f"rec-{i}".encode()) for i in range(last_base)]

    after = produce(b.bootstrap, topic, [(0, None, b"after-recovery")])
    assert after[0][1] == last_base
    got = consume(b.bootstrap, topic, [0], offsets={0: last_base}, expect={0: 1})
    assert [(o, v) for o, _, v in got[0]] == [(last_base, b"after-recovery")]
