"""On-disk layout, segment rolling, reads across segments, and long-poll fetch."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

import kafka_wire as kw
from helpers import QUIET, consume, create_topic, produce, unique

SEGMENT_BYTES = 64 * 1024


def test_segments_roll_and_reads_cross_them(broker_factory):
    b = broker_factory(**{"log-segment-bytes": SEGMENT_BYTES})
    topic = create_topic(b.bootstrap, unique("seg"), partitions=1)
    n = 6000
    value = lambda i: (f"{i:06d}:" + "s" * 200).encode()  # noqa: E731  ~1.3 MB in all
    # several produce calls so that there are many batches to split across segments
    for start in range(0, n, 500):
        produce(b.bootstrap, topic, [(0, None, value(i)) for i in range(start, start + 500)],
                conf={"compression.type": "none"})

    pdir = Path(b.data_dir) / f"{topic}-0"
    assert pdir.is_dir(), f"expected partition directory {pdir}: {sorted(p.name for p in Path(b.data_dir).iterdir())}"
    logs = sorted(pdir.glob("*.log"))
    assert len(logs) >= 5, f"~1.3 MB with segment.bytes={SEGMENT_BYTES} should roll: {[p.name for p in logs]}"
    expect_base = 0
    for seg in logs:
        assert re.fullmatch(r"\d{20}\.log", seg.name), seg.name
        assert int(seg.stem) == expect_base, f"{seg.name} should start at offset {expect_base}"
        if seg != logs[-1]:  # the active segment's sparse index may not be written yet
            assert seg.with_suffix(".index").exists(), f"no index for rolled segment {seg.name}"
            assert seg.with_suffix(".timeindex").exists(), f"no time index for rolled segment {seg.name}"
        data = seg.read_bytes()
        batches = kw.split_batches(data)
        whole = sum(s for _, s, _, _ in batches)
        assert kw.is_block_padding(data[whole:]), f"{seg.name} is not whole batches"
        assert batches[0][2] == int(seg.stem)
        for pos, size, base, lod in batches:
            assert base == expect_base and kw.batch_crc_ok(data[pos:pos + size]), (seg.name, pos)
            expect_base = base + lod + 1
        # a segment may overshoot segment.bytes by at most one batch
        assert whole <= SEGMENT_BYTES + max(s for _, s, _, _ in batches), (seg.name, whole)
    assert expect_base == n

    def check(from_offset):
        got = consume(b.bootstrap, topic, [0], offsets={0: from_offset}, expect={0: n - from_offset})
        assert [o for o, _, _ in got[0]] == list(range(from_offset, n))
        assert [v for _, _, v in got[0]] == [value(i) for i in range(from_offset, n)]

    middle_of_third = int(logs[2].stem) + 7
    check(0)
    check(middle_of_third)  # a fetch that starts inside a later segment (index lookup)
    b.stop()
    b.start()
    check(0)
    check(middle_of_third)


def test_broker_wide_durable_flag_and_restart(broker_factory):
    b = broker_factory(**{"log-flush-interval-messages": 1})
    topic = create_topic(b.bootstrap, unique("dur"), partitions=2)
    delivered = produce(b.bootstrap, topic, [(i % 2, None, f"d{i}".encode()) for i in range(2000)])
    assert len(delivered) == 2000
    b.kill()
    b.start()
    got = consume(b.bootstrap, topic, [0, 1], expect={0: 1000, 1: 1000})
    for part in (0, 1):
        assert [v for _, _, v in got[part]] == [f"d{i}".encode() for i in range(part, 2000, 2)]


def test_long_poll_wakes_on_append(broker):
    """A consumer waiting at the end gets a new record promptly, not after fetch.wait.max.ms."""
    b = broker
    topic = create_topic(b.bootstrap, unique("lp"), partitions=1)
    produce(b.bootstrap, topic, [(0, None, b"first")])
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("lp"), "enable.auto.commit": False,
                  "fetch.wait.max.ms": 5000, "fetch.min.bytes": 1, "enable.partition.eof": True, **QUIET})
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        # drain up to the end
        deadline = time.monotonic() + 20
        seen_first = at_end = False
        while not (seen_first and at_end):
            assert time.monotonic() < deadline, "did not reach the end of the partition"
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end = True
                    continue
                raise KafkaException(m.error())
            assert m.value() == b"first"
            seen_first = True
        time.sleep(1.0)  # the consumer now sits in a long-poll Fetch on the broker
        sent_at = {}

        def later():
            sent_at["t"] = time.monotonic()
            produce(b.bootstrap, topic, [(0, None, b"second")])
            sent_at["acked"] = time.monotonic()

        t = threading.Thread(target=later)
        t.start()
        got = None
        deadline = time.monotonic() + 15
        while got is None and time.monotonic() < deadline:
            m = c.poll(0.1)
            if m is not None and not m.error():
                got = (m.value(), time.monotonic())
        t.join(15)
        assert got is not None and got[0] == b"second", got
        # produce() includes the producer's own start-up; measure from its ack
        lag = got[1] - sent_at["acked"]
        print(f"long-poll: produce took {sent_at['acked'] - sent_at['t']:.3f}s, record seen {lag:.3f}s after its ack")
        assert lag < 2.0, f"record arrived {lag:.2f}s after its ack: long poll not woken by the append"
    finally:
        c.close()
