"""Retention and deletion (issue 6): retention.ms / retention.bytes delete old
segments in the background, DeleteRecords moves the log start offset, topic
configs change at run time (IncrementalAlterConfigs / AlterConfigs), and the
log start offset and altered configs survive a restart.

Every broker here checks retention every 100 ms, and topics use tiny
segments, so each test takes a few seconds."""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, ResourceType)
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import ConfigResource as KConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.errors import OffsetOutOfRangeError

from helpers import QUIET, admin, create_topic, leaders, produce, unique, wait_until, watermarks
import kafka_wire

CHECK_MS = 100
# Small segments: a few hundred-byte records fill one.
SEGMENT = {"segment.bytes": "1024"}
HOUR_MS = 3_600_000

INVALID_CONFIG = 40
INVALID_REQUEST = 42
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6


@pytest.fixture
def fast_broker(broker_factory):
    return broker_factory(shards=2, **{"log-retention-check-interval-ms": CHECK_MS,
                                       "group-initial-rebalance-delay-ms": 0})


def now_ms():
    return int(time.time() * 1000)


def produce_at(bootstrap, topic, values, timestamp_ms):
    """Produce values to partition 0 with the given record timestamp, one batch each (linger 0)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, **QUIET})
    failed = []
    for v in values:
        p.produce(topic, value=v, partition=0, timestamp=timestamp_ms,
                  on_delivery=lambda err, msg: err and failed.append(err))
        p.flush(10)
    assert not failed, failed


def segment_files(broker, topic, partition=0):
    d = broker.data_dir / f"{topic}-{partition}"
    return sorted(p.name for p in d.glob("*.log"))


def log_bytes(broker, topic, partition=0):
    d = broker.data_dir / f"{topic}-{partition}"
    return sum(p.stat().st_size for p in d.glob("*.log"))


def earliest_kafka_python(bootstrap, topic, partition=0):
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = KTopicPartition(topic, partition)
        return c.beginning_offsets([tp])[tp]
    finally:
        c.close()


def values(n, tag, size=200):
    return [f"{tag}-{i:04d}-".encode().ljust(size, b"x") for i in range(n)]


def confluent_from(bootstrap, topic, offset, reset, expect):
    """Assign partition 0 at `offset`; returns (first offset, values) of what a consumer with
    auto.offset.reset=`reset` reads until `expect` records arrived."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("ret"), "enable.auto.commit": False,
                  "auto.offset.reset": reset, **QUIET})
    try:
        c.assign([TopicPartition(topic, 0, offset)])
        return _drain(c, expect, 20)
    finally:
        c.close()


def _drain(c, expect, timeout):
    """[(offset, value)] a confluent consumer reads until it has `expect` records or times out."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        for m in c.consume(100, timeout=0.5):
            if m.error():
                raise KafkaException(m.error())
            got.append((m.offset(), m.value()))
    return got


def kafka_python_from(bootstrap, topic, offset, reset, expect):
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset=reset, enable_auto_commit=False,
                      consumer_timeout_ms=5000)
    got = []
    try:
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, offset)
        deadline = time.monotonic() + 20
        while len(got) < expect and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend((r.offset, r.value) for r in records)
    finally:
        c.close()
    return got


def settled_watermarks(bootstrap, topic):
    """(low, high) once retention has moved the low watermark and left it alone for a few checks."""
    def settled():
        first = watermarks(bootstrap, topic, 0)
        time.sleep(4 * CHECK_MS / 1000)
        return first[0] > 0 and first == watermarks(bootstrap, topic, 0) and first

    return wait_until(settled, what="retention to move the earliest offset and settle")


def fill_old_then_new(bootstrap, topic, old=20, new=5):
    """Segments of hour-old records, then current ones; returns the values of each."""
    old_values, new_values = values(old, "old"), values(new, "new")
    produce_at(bootstrap, topic, old_values, now_ms() - HOUR_MS)
    produce_at(bootstrap, topic, new_values, now_ms())
    return old_values, new_values


def test_retention_ms_deletes_expired_segments_and_consumers_recover(fast_broker):
    b = fast_broker
    topic = create_topic(b.bootstrap, unique("ret-ms"), partitions=1,
                         config={**SEGMENT, "retention.ms": str(10 * 60_000)})
    old_values, new_values = fill_old_then_new(b.bootstrap, topic)

    low, high = settled_watermarks(b.bootstrap, topic)
    assert high == len(old_values) + len(new_values)
    # Whole segments only: the segment holding the first new record stays, with any old records in it.
    assert 0 < low <= len(old_values)
    assert segment_files(b, topic)[0] == f"{low:020}.log"
    assert earliest_kafka_python(b.bootstrap, topic) == low
    assert "retention deleted old segments" in b.log()

    # Below the log start: OFFSET_OUT_OF_RANGE, which a consumer without a reset policy reports...
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, auto_offset_reset="none", enable_auto_commit=False)
    try:
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        with pytest.raises(OffsetOutOfRangeError):
            for _ in range(20):
                c.poll(timeout_ms=500)
    finally:
        c.close()
    # ...and consumers with auto.offset.reset=earliest restart at the log start with the data there.
    expected = list(enumerate(old_values + new_values))[low:]
    for read in (confluent_from, kafka_python_from):
        got = read(b.bootstrap, topic, 0, "earliest", len(expected))
        assert got == expected, read.__name__


def test_retention_bytes_keeps_at_least_the_limit(fast_broker):
    b = fast_broker
    limit = 3000
    topic = create_topic(b.bootstrap, unique("ret-bytes"), partitions=1,
                         config={**SEGMENT, "retention.bytes": str(limit)})
    produce_at(b.bootstrap, topic, values(40, "v"), now_ms())

    def trimmed():
        files = segment_files(b, topic)
        return files[0] != f"{0:020}.log" and files

    wait_until(trimmed, what="oldest segments deleted")
    time.sleep(3 * CHECK_MS / 1000)
    d = b.data_dir / f"{topic}-0"
    # Batch bytes, without the padding of the active segment's last block.
    sizes = [sum(size for _, size, _, _ in kafka_wire.split_batches((d / f).read_bytes()))
             for f in segment_files(b, topic)]
    assert sum(sizes) >= limit, sizes
    assert sum(sizes) - sizes[0] < limit, f"one more segment could go: {sizes}"
    low, high = watermarks(b.bootstrap, topic, 0)
    assert low == int(segment_files(b, topic)[0][:20]) and high == 40
    got = confluent_from(b.bootstrap, topic, low, "earliest", high - low)
    assert [o for o, _ in got] == list(range(low, high))


def delete_records_v0(conn, topic, partition, offset):
    body = (kafka_wire.array([topic], lambda t: kafka_wire.string(t)
                             + kafka_wire.array([(partition, offset)],
                                                lambda p: kafka_wire.i32(p[0]) + kafka_wire.i64(p[1])))
            + kafka_wire.i32(5000))
    r = conn.call(21, 0, body)
    r.i32()  # throttle

    def part(r):
        return r.i32(), r.i64(), r.i16()

    topics = r.array(lambda r: (r.string(), r.array(part)))
    return topics[0][1][0]


def test_delete_records_moves_the_log_start(fast_broker):
    b = fast_broker
    topic = create_topic(b.bootstrap, unique("delrec"), partitions=1, config=SEGMENT)
    all_values = values(30, "v")
    produce_at(b.bootstrap, topic, all_values, now_ms())
    files = segment_files(b, topic)
    assert len(files) > 3

    a = admin(b.bootstrap)
    result = a.delete_records([TopicPartition(topic, 0, 17)])
    (tp, future), = result.items()
    assert future.result(10).low_watermark == 17
    assert watermarks(b.bootstrap, topic, 0) == (17, 30)
    # Segments wholly below 17 are gone; the one holding 17 stays.
    wait_until(lambda: int(segment_files(b, topic)[0][:20]) <= 17 < int(segment_files(b, topic)[1][:20]),
               what="segments below the start deleted")
    assert len(segment_files(b, topic)) < len(files)
    got = confluent_from(b.bootstrap, topic, 0, "earliest", 13)
    assert got == list(enumerate(all_values))[17:]
    # ListOffsets by timestamp never answers below the log start either.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("ts"), **QUIET})
    try:
        assert c.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=10)[0].offset == 17
    finally:
        c.close()

    # kafka-python's admin: -1 means the high watermark.
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        out = k.delete_records({KTopicPartition(topic, 0): -1})
        assert out[KTopicPartition(topic, 0)]["low_watermark"] == 30
    finally:
        k.close()
    assert watermarks(b.bootstrap, topic, 0) == (30, 30)

    # Errors: above the high watermark, unknown topic, and the partition asked of the wrong shard.
    future = a.delete_records([TopicPartition(topic, 0, 31)])[TopicPartition(topic, 0, 31)]
    with pytest.raises(KafkaException) as e:
        future.result(10)
    assert e.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    leader = leaders(b.bootstrap, topic)[0]
    with b.wire(shard=leader) as conn:
        assert delete_records_v0(conn, unique("nope"), 0, 1) == (0, -1, UNKNOWN_TOPIC_OR_PARTITION)
        assert delete_records_v0(conn, topic, 0, 5) == (0, 30, 0), "below the start: nothing to do"
    with b.wire(shard=1 - leader) as conn:
        assert delete_records_v0(conn, topic, 0, 30) == (0, -1, NOT_LEADER_OR_FOLLOWER)


def described(bootstrap, topic):
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin(bootstrap)  # kept alive until the answer is in
    entries = a.describe_configs([res])[res].result(10)
    return {k: (e.value, e.source) for k, e in entries.items()}


def test_alter_configs_at_run_time_starts_retention(fast_broker):
    b = fast_broker
    topic = create_topic(b.bootstrap, unique("alter"), partitions=1, config=SEGMENT)
    old_values, new_values = fill_old_then_new(b.bootstrap, topic)
    time.sleep(5 * CHECK_MS / 1000)
    assert watermarks(b.bootstrap, topic, 0)[0] == 0, "7 days' default retention keeps hour-old records"
    assert described(b.bootstrap, topic)["retention.ms"] == (str(7 * 24 * HOUR_MS), ConfigSource.DEFAULT_CONFIG.value)

    a = admin(b.bootstrap)
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", str(10 * 60_000), incremental_operation=AlterConfigOpType.SET)])
    # validate_only changes nothing.
    a.incremental_alter_configs([res], validate_only=True)[res].result(10)
    time.sleep(3 * CHECK_MS / 1000)
    assert watermarks(b.bootstrap, topic, 0)[0] == 0
    assert described(b.bootstrap, topic)["retention.ms"][1] == ConfigSource.DEFAULT_CONFIG.value

    a.incremental_alter_configs([res])[res].result(10)
    assert described(b.bootstrap, topic)["retention.ms"] == (str(10 * 60_000), ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    low, _ = settled_watermarks(b.bootstrap, topic)
    assert 0 < low <= len(old_values)

    # segment.bytes changes at run time too: a bigger one stops the rolling.
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("segment.bytes", str(1 << 20), incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    a.incremental_alter_configs([res])[res].result(10)
    files = segment_files(b, topic)
    produce_at(b.bootstrap, topic, values(20, "more"), now_ms())
    assert len(segment_files(b, topic)) <= len(files) + 1
    d = described(b.bootstrap, topic)
    assert d["segment.bytes"] == (str(1 << 20), ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert d["retention.ms"][1] == ConfigSource.DEFAULT_CONFIG.value


def incremental_error(a, resource):
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([resource])[resource].result(10)
    return e.value.args[0].code()


@pytest.mark.filterwarnings("ignore:alter_configs has been deprecated")
def test_alter_configs_refusals(fast_broker):
    b = fast_broker
    topic = create_topic(b.bootstrap, unique("refuse"), partitions=1, config={"retention.ms": "123456"})
    a = admin(b.bootstrap)

    def topic_res(name, key, value, op=AlterConfigOpType.SET, rtype=ResourceType.TOPIC):
        return ConfigResource(rtype, name, incremental_configs=[ConfigEntry(key, value, incremental_operation=op)])

    assert incremental_error(a, topic_res(topic, "no.such.config", "1")) == KafkaError.INVALID_CONFIG
    assert incremental_error(a, topic_res(topic, "retention.ms", "soon")) == KafkaError.INVALID_CONFIG
    assert incremental_error(a, topic_res(topic, "segment.bytes", "1", AlterConfigOpType.APPEND)) == \
        KafkaError.INVALID_CONFIG
    assert incremental_error(a, topic_res(unique("nope"), "retention.ms", "1")) == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert incremental_error(a, topic_res("0", "log.retention.ms", "1", rtype=ResourceType.BROKER)) == \
        KafkaError.INVALID_REQUEST
    assert described(b.bootstrap, topic)["retention.ms"] == ("123456", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)

    # APPEND to the list config cleanup.policy.
    a.incremental_alter_configs([topic_res(topic, "cleanup.policy", "compact", AlterConfigOpType.APPEND)])
    wait_until(lambda: described(b.bootstrap, topic)["cleanup.policy"][0] == "delete,compact", what="append")

    # The legacy AlterConfigs replaces every override: retention.ms goes back to the default.
    res = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.ms": "60000"})
    a.alter_configs([res])[res].result(10)
    d = described(b.bootstrap, topic)
    assert d["segment.ms"] == ("60000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert d["retention.ms"][1] == ConfigSource.DEFAULT_CONFIG.value
    assert d["cleanup.policy"] == ("delete", ConfigSource.DEFAULT_CONFIG.value)

    # kafka-python's admin, legacy and incremental.
    k = KafkaAdminClient(bootstrap_servers=b.bootstrap)
    try:
        r = k.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"flush.ms": "1000"})],
                            incremental=False)
        assert described(b.bootstrap, topic)["flush.ms"] == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        # kafka-python re-sends the other overrides itself, since AlterConfigs replaces them all.
        assert described(b.bootstrap, topic)["segment.ms"] == ("60000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        r = k.alter_configs([KConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": "5000"})],
                            incremental=True)
        d = described(b.bootstrap, topic)
        assert d["max.message.bytes"] == ("5000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        assert d["flush.ms"] == ("1000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        del r
    finally:
        k.close()
    # max.message.bytes took effect for produce at once.
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, "message.max.bytes": 100000, **QUIET})
    errors = []
    p.produce(topic, value=b"x" * 8000, partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_restart_keeps_log_start_offset_and_altered_configs(fast_broker):
    b = fast_broker
    topic = create_topic(b.bootstrap, unique("restart"), partitions=1, config=SEGMENT)
    all_values = values(30, "v")
    produce_at(b.bootstrap, topic, all_values, now_ms())
    a = admin(b.bootstrap)
    # 13 lies inside a segment: only the checkpoint can remember it.
    assert a.delete_records([TopicPartition(topic, 0, 13)])[TopicPartition(topic, 0, 13)].result(10).low_watermark == 13
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.bytes", "5000000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(10)
    assert int(segment_files(b, topic)[0][:20]) < 13

    b.stop()
    b.start()
    assert watermarks(b.bootstrap, topic, 0) == (13, 30)
    assert earliest_kafka_python(b.bootstrap, topic) == 13
    assert described(b.bootstrap, topic)["retention.bytes"] == ("5000000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    got = confluent_from(b.bootstrap, topic, 0, "earliest", 17)
    assert got == list(enumerate(all_values))[13:]

    # After a kill too (the checkpoint was fsynced before DeleteRecords was answered).
    a = admin(b.bootstrap)
    assert a.delete_records([TopicPartition(topic, 0, 21)])[TopicPartition(topic, 0, 21)].result(10).low_watermark == 21
    b.kill()
    b.start()
    assert watermarks(b.bootstrap, topic, 0) == (21, 30)


def test_group_consumers_with_a_deleted_committed_offset_reset_to_earliest(fast_broker):
    """A group's committed offset that DeleteRecords left behind: both clients reset and read the rest."""
    b = fast_broker
    topic = create_topic(b.bootstrap, unique("grp"), partitions=1, config=SEGMENT)
    all_values = values(20, "v")
    produce_at(b.bootstrap, topic, all_values, now_ms())
    groups = {"confluent": unique("g-c"), "kafka-python": unique("g-k")}
    for group in groups.values():
        c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, **QUIET})
        try:
            c.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
        finally:
            c.close()
    a = admin(b.bootstrap)
    assert a.delete_records([TopicPartition(topic, 0, 12)])[TopicPartition(topic, 0, 12)].result(10).low_watermark == 12
    expected = list(enumerate(all_values))[12:]

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": groups["confluent"], "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **QUIET})
    try:
        c.subscribe([topic])
        got = _drain(c, len(expected), 30)
    finally:
        c.close()
    assert got == expected

    k = KafkaConsumer(topic, bootstrap_servers=b.bootstrap, group_id=groups["kafka-python"],
                      auto_offset_reset="earliest", enable_auto_commit=False)
    got = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < len(expected) and time.monotonic() < deadline:
            for records in k.poll(timeout_ms=500).values():
                got.extend((r.offset, r.value) for r in records)
    finally:
        k.close()
    assert got == expected
