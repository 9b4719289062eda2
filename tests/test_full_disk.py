"""A full disk: produce gets KAFKA_STORAGE_ERROR, nothing half-written stays,
fetch keeps working, and produce resumes by itself once space is freed.

The data directory is a tmpfs of a few MiB the test mounts (root only; the
test is skipped where mounting is not permitted). tmpfs has no real fsync,
which does not matter here: it is ENOSPC that is tested.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Producer

import kafka_wire as kw
from helpers import QUIET, consume, create_topic, produce, unique, wait_until, watermarks
from test_corruption import leader_conn, segment_files

KAFKA_STORAGE_ERROR = 56
FS_BYTES = 24 << 20


@pytest.fixture
def small_fs_broker(broker_factory):
    """A broker whose data directory is a fresh tmpfs of FS_BYTES."""
    b = broker_factory(start=False)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(b.data_dir)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {mount.stderr.strip() or mount.returncode}")
    try:
        b.start()
        yield b
    finally:
        b.kill()
        subprocess.run(["umount", "-l", str(b.data_dir)], check=False)


def fill(data_dir: Path) -> Path:
    """Writes a filler file until the file system is full."""
    filler = data_dir / "filler"
    chunk = b"\0" * (64 << 10)
    # Unbuffered: a chunk cut short by the full disk must not stay in a
    # buffer that closing the file would try, and fail, to write again.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    return filler


def records(prefix, n, size=200):
    return [(f"k{i}".encode(), f"{prefix}-{i}-".encode().ljust(size, b".")) for i in range(n)]


def assert_whole_batches(data_dir, topic, partition, end_offset):
    """The segment files hold whole, CRC-valid batches up to end_offset, then
    nothing but the zeros that pad the active segment's last 4 KiB block."""
    expect = 0
    for seg in segment_files(data_dir, topic, partition):
        data = seg.read_bytes()
        batches = kw.split_batches(data)
        whole = sum(size for _, size, _, _ in batches)
        assert kw.is_block_padding(data[whole:]), f"{seg}: bytes after the last whole batch"
        for pos, size, base, lod in batches:
            assert base == expect, f"{seg}: batch at {pos} has base offset {base}, expected {expect}"
            assert kw.batch_crc_ok(data[pos:pos + size]), f"{seg}: batch at {pos} fails its CRC"
            expect = base + lod + 1
    assert expect == end_offset


def test_full_disk_refuses_produce_and_resumes_when_space_is_freed(small_fs_broker):
    b = small_fs_broker
    topic = create_topic(b.bootstrap, unique("full"), partitions=2)
    other = create_topic(b.bootstrap, unique("other"), partitions=1)
    before = produce(b.bootstrap, topic, [(i % 2, k, v) for i, (k, v) in enumerate(records("before", 400))])
    produce(b.bootstrap, other, [(0, k, v) for k, v in records("other", 50)])
    filler = fill(b.data_dir)

    # Batches of ~20 KiB: no page of the segment file's tail has room for one.
    with leader_conn(b, topic, 0) as c:
        for attempt in range(20):
            err, _ = c.produce(topic, 0, kw.record_batch(records(f"full{attempt}", 100)))
            assert err == KAFKA_STORAGE_ERROR, f"attempt {attempt} on a full disk: error {err}"
    assert watermarks(b.bootstrap, topic, 0) == (0, 200), "a refused write moved the high watermark"
    assert_whole_batches(b.data_dir, topic, 0, 200)
    log = b.run_log()
    assert log.count("disk full") == 1, f"expected one 'disk full' line for 20 refused writes:\n{log[-3000:]}"

    # Fetch keeps working: this topic's existing records, and another topic's.
    got = consume(b.bootstrap, topic, [0, 1], expect={0: 200, 1: 200})
    assert {p: [v for _, _, v in r] for p, r in got.items()} == \
        {p: [v for pp, _, _, v in before if pp == p] for p in (0, 1)}
    got = consume(b.bootstrap, other, [0], expect={0: 50})
    assert [v for _, _, v in got[0]] == [v for _, v in records("other", 50)]

    # A client that keeps retrying (KAFKA_STORAGE_ERROR is retriable) gets through once space is back.
    delivered, failed = [], []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000,
                  "retry.backoff.ms": 100, **QUIET})
    for k, v in records("retried", 100):
        p.produce(topic, key=k, value=v, partition=0,
                  on_delivery=lambda err, msg: (failed if err else delivered).append(msg))
    p.poll(1.5)
    assert not delivered, "a record was acknowledged on a full disk"
    filler.unlink()
    assert p.flush(60) == 0
    assert not failed and len(delivered) == 100, (len(delivered), failed[:3])
    assert sorted(m.offset() for m in delivered) == list(range(200, 300)), "offsets continue without a gap"
    wait_until(lambda: "writes resume" in b.run_log(), timeout=5, what="a 'writes resume' log line")

    with leader_conn(b, topic, 0) as c:
        assert c.produce(topic, 0, kw.record_batch(records("after", 10))) == (kw.NONE, 300)
    assert_whole_batches(b.data_dir, topic, 0, 310)
    got = consume(b.bootstrap, topic, [0], offsets={0: 200}, expect={0: 110})
    assert [v for _, _, v in got[0]] == [v for _, v in records("retried", 100)] + [v for _, v in records("after", 10)]
    assert b.running()
