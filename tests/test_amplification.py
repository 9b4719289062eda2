"""Requests whose answers used to grow faster than they did: each repeated name
is answered once, answers stay linear in the request, the broker's memory
stays bounded, committed data stays intact, and everyone else is served.
Also group ids the offsets topic cannot store, and internal topics clients
may not reconfigure."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KTopicPartition

import kafka_wire as kw
import wire_requests as wr
from helpers import admin, create_topic, leader_conn, produce, unique, wait_until

MiB = 1 << 20


def assert_serving(b):
    """A fresh client on every shard gets Metadata answered."""
    for shard in range(b.shards):
        with b.wire(shard, timeout=10) as c:
            brokers, _ = c.metadata([])
            assert sorted(brokers) == list(range(b.shards))
    assert b.running()


def committed(b, group, topic, partitions):
    """Committed offsets read back with kafka-python: {partition: offset or None}."""
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: c.committed(KTopicPartition(topic, p)) for p in partitions}
    finally:
        c.close()


def commit(b, group, topic, offsets):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        c.commit({KTopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    finally:
        c.close()


# ---------------------------------------------------------------- Metadata ---

def test_metadata_names_a_topic_once_however_often_it_is_asked_for(broker):
    """Issue 13, defect 3: an 80 KB request naming a 1,000-partition topic
    8,000 times got a 208 MB answer and a 1.6 GB peak."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-meta"), partitions=1000)
    with b.wire(0, timeout=60) as c:
        single, described = wr.metadata_v1(c, [topic])
        assert described == [(topic, 0, 1000)]
        rss_before = wr.rss_bytes(b)
        request_names = [topic] * 8000 + ["missing-topic"] * 2000
        size, described = wr.metadata_v1(c, request_names)
        peak = wr.peak_rss_bytes(b)
    assert [name for name, _, _ in described] == [topic, "missing-topic"], "each name answered once"
    assert described[0] == (topic, 0, 1000)
    assert size < single + 200, f"answer of {size} bytes for one topic (alone: {single})"
    assert peak - rss_before < 64 * MiB, f"peak RSS grew by {(peak - rss_before) >> 20} MiB"
    assert_serving(b)


# ------------------------------------------------------------ OffsetCommit ---

@pytest.mark.parametrize("coordinated", [True, False], ids=["coordinator", "other-shard"])
def test_offset_commit_answer_is_linear_in_the_request(broker, coordinated):
    """Issue 13, defect 4: an 84 KB request got a 96 MB answer (every request
    topic listed every partition of every entry of its name), also from a
    shard that does not coordinate the group."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-commit"), partitions=4)
    group = unique("g")
    entries = 3000  # ~84 KB: the topic named 3,000 times, one partition each
    with b.wire(0, timeout=60) as probe:
        shard = wr.coordinator_shard(probe, group)
    shard = shard if coordinated else 1 - shard
    with b.wire(shard, timeout=60) as c:
        topics = [(topic, [(i % 4, 10 + i % 4, "")]) for i in range(entries)]
        size, answered = wr.offset_commit_v2(c, group, topics)
    assert [name for name, _ in answered] == [topic], "the topic is answered once"
    partitions = answered[0][1]
    assert len(partitions) == entries, "each requested partition answered, in order"
    assert [p for p, _ in partitions] == [i % 4 for i in range(entries)]
    expected_error = 0 if coordinated else wr.NOT_COORDINATOR
    assert {err for _, err in partitions} == {expected_error}
    assert size < 10 * entries + 200, f"answer of {size} bytes"
    if coordinated:
        assert committed(b, group, topic, range(4)) == {0: 10, 1: 11, 2: 12, 3: 13}
    else:
        assert committed(b, group, topic, range(4)) == {p: None for p in range(4)}
    assert_serving(b)


def test_a_commit_too_large_for_one_offsets_batch_is_refused_whole(broker):
    """Each offsets record repeats the group id: 2,000 partitions of a 30 KB
    group id would be a 60 MB batch from a 30 KB request. Kafka answers
    INVALID_COMMIT_OFFSET_SIZE when its offsets append is too large."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-big"), partitions=1)
    group = "g" * 30_000
    with b.wire(0, timeout=60) as probe:
        shard = wr.coordinator_shard(probe, group)
    rss_before = wr.rss_bytes(b)
    with b.wire(shard, timeout=60) as c:
        answered = wr.offset_commit_v8(c, group, [(topic, [(0, 7, "")] * 2000)])
        assert [(name, len(ps)) for name, ps in answered] == [(topic, 2000)]
        assert {err for _, err in answered[0][1]} == {wr.INVALID_COMMIT_OFFSET_SIZE}
        # The same group id with one partition fits and is stored.
        answered = wr.offset_commit_v8(c, group, [(topic, [(0, 7, "")])])
        assert answered == [(topic, [(0, 0)])]
        _, fetched = wr.offset_fetch_v1(c, group, [(topic, [0])])
        assert fetched == [(topic, [(0, 7, "", 0)])]
    assert wr.rss_bytes(b) - rss_before < 64 * MiB
    assert_serving(b)


# ------------------------------------------------------------- OffsetFetch ---

def test_offset_fetch_answers_each_partition_once(broker):
    """A committed offset may carry 4 KiB of metadata: answering each repeat of
    a 4-byte partition index would make a 400 KB request a 400 MB answer."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-fetch"), partitions=2)
    group = unique("g")
    with b.wire(0, timeout=60) as probe:
        shard = wr.coordinator_shard(probe, group)
    with b.wire(shard, timeout=60) as c:
        answered = wr.offset_commit_v8(c, group, [(topic, [(0, 5, "m" * 4096), (1, 6, "")])])
        assert answered == [(topic, [(0, 0), (1, 0)])]
        rss_before = wr.rss_bytes(b)
        size, fetched = wr.offset_fetch_v1(c, group, [(topic, [0] * 50_000 + [1]), (topic, [0, 1])])
        peak = wr.peak_rss_bytes(b)
    assert fetched == [(topic, [(0, 5, "m" * 4096, 0), (1, 6, "", 0)])]
    assert size < 4096 + 200, f"answer of {size} bytes"
    assert peak - rss_before < 64 * MiB
    assert committed(b, group, topic, [0, 1]) == {0: 5, 1: 6}
    assert_serving(b)


def test_offset_fetch_of_many_topics_is_not_quadratic(broker):
    """Grouping the answer by topic scanned every topic so far for each
    partition: 100,000 topics held the shard's thread for 25 s (1 s now)."""
    b = broker
    group = unique("g")
    with b.wire(0, timeout=60) as probe:
        shard = wr.coordinator_shard(probe, group)
    topics = [(f"t{i:06d}", [0]) for i in range(100_000)]
    started = time.monotonic()
    with b.wire(shard, timeout=120) as c:
        _, fetched = wr.offset_fetch_v1(c, group, topics)
    elapsed = time.monotonic() - started
    assert len(fetched) == 100_000 and fetched[-1] == ("t099999", [(0, -1, "", 0)])
    assert elapsed < 10, f"{elapsed:.1f} s for 100,000 topics"
    assert_serving(b)


def test_describe_groups_describes_each_group_once(broker):
    """A group's members and assignments can take many KiB: naming the group
    5,000 times bought 5,000 copies of them."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-desc"), partitions=2)
    group = unique("g")
    member = KafkaConsumer(topic, bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        wait_until(lambda: member.poll(timeout_ms=200) is not None and member.assignment(), 60,
                   what="the consumer joined the group")
        with b.wire(0, timeout=60) as probe:
            shard = wr.coordinator_shard(probe, group)
            other = next(g for g in (f"other-{i}" for i in range(1000)) if wr.coordinator_shard(probe, g) == shard)
        with b.wire(shard, timeout=60) as c:
            single, described = wr.describe_groups_v0(c, [group])
            assert described == [(0, group, "Stable", 1)]
            size, described = wr.describe_groups_v0(c, [group] * 5000 + [other] * 5000)
        assert described == [(0, group, "Stable", 1), (0, other, "Dead", 0)], "each group once"
        assert size < single + 100
    finally:
        member.close()
    assert_serving(b)


# ---------------------------------------------------------------- group ids ---

def test_a_group_id_longer_than_an_i16_is_refused_and_stored_offsets_survive(broker):
    """Issue 13, defect 10: a commit for a group id longer than 32,767 bytes
    was acknowledged, written with its length truncated to an i16 and lost at
    restart (or replayed into another group). Kafka stores group ids as
    i16-length strings: INVALID_GROUP_ID before anything is written."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-gid"), partitions=1)
    produce(b.bootstrap, topic, [(0, None, b"x")] * 3)
    victim = unique("victim")
    commit(b, victim, topic, {0: 2})
    # 65,541 bytes: its length wrapped to 5, and the key then named group "vvvvv".
    for group in ["L" * 40_000, "v" * 65_541]:
        with b.wire(0, timeout=60) as probe:
            shard = wr.coordinator_shard(probe, group)
        with b.wire(shard, timeout=60) as c:
            answered = wr.offset_commit_v8(c, group, [(topic, [(0, 1, "")])])
        assert answered == [(topic, [(0, wr.INVALID_GROUP_ID)])], f"group id of {len(group)} bytes"
    # The longest storable id still works.
    longest = "k" * 32_767
    with b.wire(0, timeout=60) as probe:
        shard = wr.coordinator_shard(probe, longest)
    with b.wire(shard, timeout=60) as c:
        assert wr.offset_commit_v8(c, longest, [(topic, [(0, 3, "")])]) == [(topic, [(0, 0)])]
    b.stop()
    b.start()
    assert committed(b, victim, topic, [0]) == {0: 2}
    assert committed(b, "vvvvv", topic, [0]) == {0: None}
    with b.wire(shard, timeout=60) as c:
        _, fetched = wr.offset_fetch_v1(c, longest, [(topic, [0])])
    assert fetched == [(topic, [(0, 3, "", 0)])], "the longest id's commit replayed"
    assert_serving(b)


# ---------------------------------------------------------- internal topics ---

def test_internal_topics_cannot_be_reconfigured_grown_deleted_or_written(broker):
    """Issue 13, defect 12: AlterConfigs was accepted on __consumer_offsets, and
    cleanup.policy=delete with retention.ms=0 let retention wipe every
    committed offset. POLICY_VIOLATION for config changes and new partitions
    (a broker-side policy; Kafka 4 would accept them), INVALID_TOPIC_EXCEPTION
    for deletes and writes (Kafka's answer to Produce and DeleteRecords)."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-int"), partitions=1)
    produce(b.bootstrap, topic, [(0, None, b"x")] * 5)
    group = unique("g")
    commit(b, group, topic, {0: 4})
    wiping = {"cleanup.policy": "delete", "retention.ms": "0"}
    offsets = "__consumer_offsets"
    with b.wire(0) as c:
        for validate_only in (True, False):
            answered = wr.alter_configs_v0(c, [(wr.RESOURCE_TOPIC, offsets, wiping)], validate_only)
            assert [(err, name) for err, _, _, name in answered] == [(wr.POLICY_VIOLATION, offsets)]
            answered = wr.incremental_alter_configs_v0(c, [(wr.RESOURCE_TOPIC, offsets, wiping)], validate_only)
            assert [(err, name) for err, _, _, name in answered] == [(wr.POLICY_VIOLATION, offsets)]
        assert [(n, e) for n, e, _ in wr.create_partitions_v0(c, offsets, 60)] == [(offsets, wr.POLICY_VIOLATION)]
        assert wr.delete_topics_v1(c, [offsets]) == [(offsets, wr.INVALID_TOPIC_EXCEPTION)]
        # An ordinary topic's configs still change.
        answered = wr.incremental_alter_configs_v0(c, [(wr.RESOURCE_TOPIC, topic, {"retention.ms": "86400000"})])
        assert [err for err, _, _, _ in answered] == [0]
    # Through a real admin client too.
    a = admin(b.bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, offsets, incremental_configs=[
        ConfigEntry("retention.ms", "0", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as refused:
        a.incremental_alter_configs([resource])[resource].result(20)
    assert refused.value.args[0].code() == wr.POLICY_VIOLATION
    described = a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, offsets)])
    configs = list(described.values())[0].result(20)
    assert configs["cleanup.policy"].value == "compact"
    # Produce and DeleteRecords, on the shard that leads partition 0 of the offsets topic.
    with b.wire(0) as probe:
        leader = probe.metadata([offsets])[1][offsets][1][0][1]
    with b.wire(leader) as c:
        assert c.produce(offsets, 0, kw.record_batch([(b"k", b"v")]))[0] == wr.INVALID_TOPIC_EXCEPTION
        assert wr.delete_records_v0(c, offsets, 0, -1) == [(offsets, [(0, -1, wr.INVALID_TOPIC_EXCEPTION)])]
    time.sleep(1)  # a retention pass would have had its chance (none may run on the offsets topic)
    b.stop()
    b.start()
    assert committed(b, group, topic, [0]) == {0: 4}
    assert_serving(b)


# --------------------------------------------------- config API request size ---

def test_config_requests_with_many_resources_stay_linear_and_quiet(broker):
    """Duplicate resources and keys were found by scanning every earlier one,
    and every refused resource logged a warning: 100,000 resources held the
    shard's thread for 21 s and wrote 100,000 log lines (0.6 s and one now)."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-cfg"), partitions=1)
    resources = [(wr.RESOURCE_TOPIC, topic, {})] + [(wr.RESOURCE_TOPIC, f"x{i}", {}) for i in range(100_000)]
    bystander_latency = []
    stop = threading.Event()

    def bystander():
        with b.wire(0, timeout=60) as other:
            while not stop.is_set():
                started = time.monotonic()
                other.api_versions()
                bystander_latency.append(time.monotonic() - started)
                time.sleep(0.05)

    watcher = threading.Thread(target=bystander)
    watcher.start()
    try:
        started = time.monotonic()
        with b.wire(0, timeout=120) as c:
            answered = wr.incremental_alter_configs_v0(c, resources + resources[:1], validate_only=True)
            described_bytes, described = wr.describe_configs_v1(c, [(wr.RESOURCE_TOPIC, topic)] * 20_000)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        watcher.join()
    assert len(answered) == 100_002
    assert answered[0][0] == 0 and answered[-1][0] == wr.INVALID_REQUEST, "the repeat is refused"
    assert {err for err, _, _, _ in answered[1:-1]} == {kw.UNKNOWN_TOPIC_OR_PARTITION}
    assert len(described) == 1 and described[0][:3] == (0, wr.RESOURCE_TOPIC, topic), "described once"
    assert described_bytes < 4096
    assert elapsed < 30, f"{elapsed:.1f} s"
    refusals = b.log().count("config change refused")
    assert 1 <= refusals <= 5, f"{refusals} refusal lines for one request"
    assert max(bystander_latency) < 5, f"another connection waited {max(bystander_latency):.1f} s"
    wait_until(lambda: b.running(), 1)
    assert_serving(b)


def test_broker_configs_are_described_for_this_broker_only(broker):
    """Every distinct broker name got a full copy of the broker's configs: 20,000
    names in a 180 KB request bought a 20,000-copy answer. As Kafka, a broker
    describes only itself (its id) or the defaults (""); other ids are refused."""
    b = broker
    names = ["", "0"] + [str(i) for i in range(1, 20_000)]
    with b.wire(0, timeout=60) as c:
        described_bytes, described = wr.describe_configs_v1(c, [(wr.RESOURCE_BROKER, n) for n in names])
    assert [(err, name) for err, _, name, count in described[:2] if count > 0] == [(0, ""), (0, "0")]
    assert {(err, count) for err, _, _, count in described[2:]} == {(wr.INVALID_REQUEST, 0)}
    assert described_bytes < 100 * len(names), described_bytes  # each copy of the configs took ~500
    assert_serving(b)


def test_list_offsets_refuses_a_partition_named_twice(broker):
    """Every entry of a timestamp search was run, repeats included: one request could
    buy 10,000 searches of the same partition. As Kafka, each entry of a partition
    named more than once is INVALID_REQUEST; partitions named once are answered."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-lo"), partitions=1)
    produce(b.bootstrap, topic, [(0, None, b"v")] * 3)
    with leader_conn(b, topic, 0) as c:
        alone = wr.list_offsets_v1(c, [(topic, 0, 0)])
        repeated = wr.list_offsets_v1(c, [(topic, 0, 0)] * 10_000 + [(topic, 1, -1)])
    assert [(err, offset) for _, _, err, _, offset in alone] == [(0, 0)]
    assert len(repeated) == 10_001
    assert {(p, err) for _, p, err, _, _ in repeated[:-1]} == {(0, wr.INVALID_REQUEST)}
    assert [(p, err) for _, p, err, _, _ in repeated[-1:]] == [(1, kw.UNKNOWN_TOPIC_OR_PARTITION)]
    assert_serving(b)


def test_committed_offsets_survive_what_a_consumer_group_does(broker):
    """The bounds change nothing for a real consumer: commit through
    confluent-kafka, read back through kafka-python, across a restart."""
    b = broker
    topic = create_topic(b.bootstrap, unique("amp-real"), partitions=3)
    produce(b.bootstrap, topic, [(p, None, b"v") for p in range(3) for _ in range(4)])
    from confluent_kafka import Consumer
    group = unique("g")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "log_level": 3})
    try:
        c.commit(offsets=[TopicPartition(topic, p, p + 1) for p in range(3)], asynchronous=False)
    finally:
        c.close()
    b.stop()
    b.start()
    assert committed(b, group, topic, range(3)) == {0: 1, 1: 2, 2: 3}
