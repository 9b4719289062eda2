"""Retention running while a producer writes (issue 13, defect 1).

A retention deletion queued behind a pending write once made the next
append start from a stale segment tail and overwrite acknowledged bytes:
CRC mismatches in the segment, and at restart recovery cut acknowledged
offsets. Here retention checks every 10 ms with 1.5 s retention on small
segments while acks=1 produce is pipelined; every record acknowledged and
still above the log start must read back at its offset, before and after a
SIGKILL, and recovery must cut nothing."""

from __future__ import annotations

import re
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from helpers import QUIET, admin, consume, create_topic, delivery_recorder, unique, watermarks

PRODUCE_SECONDS = 8


def produce_pipelined(bootstrap, topic, seconds):
    """acks=1, linger 0, five requests in flight: {offset: value} acknowledged."""
    acked, failed, on_delivery = delivery_recorder()
    p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "linger.ms": 0,
                  "max.in.flight.requests.per.connection": 5, "enable.idempotence": False, **QUIET})
    deadline = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < deadline:
        try:
            p.produce(topic, value=b"r-%09d-" % seq + b"x" * 180, partition=0, on_delivery=on_delivery)
            seq += 1
        except BufferError:
            p.poll(0.005)
        if seq % 50 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert not failed, failed[:3]
    return acked


def check_against_acks(bootstrap, topic, acked):
    start, end = watermarks(bootstrap, topic, 0)
    got = consume(bootstrap, topic, [0], offsets={0: start}, expect={0: end - start}, conf={"check.crcs": True})[0]
    assert [o for o, _, _ in got] == list(range(start, end)), "offsets contiguous from the log start"
    for offset, _, value in got:
        if offset in acked:
            assert value == acked[offset], f"offset {offset}: acknowledged {acked[offset][:12]!r}, read {value[:12]!r}"
    return start, end


def test_retention_during_pipelined_produce_loses_nothing_acknowledged(broker_factory):
    b = broker_factory(shards=1, **{"log-retention-check-interval-ms": 10})
    topic = create_topic(b.bootstrap, unique("race"), partitions=1,
                         config={"segment.bytes": "65536", "retention.ms": "1500"})
    acked = produce_pipelined(b.bootstrap, topic, PRODUCE_SECONDS)
    assert len(acked) > 10_000, f"only {len(acked)} records acknowledged"
    # Stop deleting, so what is checked stays put.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)])
    a = admin(b.bootstrap)  # kept alive until the answer is in
    a.incremental_alter_configs([res])[res].result(10)
    start, end = check_against_acks(b.bootstrap, topic, acked)
    assert start > 0, "retention deleted segments while producing"
    assert end == max(acked) + 1

    b.kill()
    b.start()
    opened = [line for line in b.run_log().splitlines() if "partition log opened" in line and topic in line]
    assert opened, b.run_log()[-2000:]
    assert re.search(r"truncated_bytes: 0\b", opened[0]), opened[0]
    assert check_against_acks(b.bootstrap, topic, acked) == (start, end)
