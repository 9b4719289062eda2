"""kafka-python (pure-Python client) against the real broker."""

from __future__ import annotations

import json
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from helpers import unique, wait_until

N_EVENTS = 600
KEYS = [f"user-{i}" for i in range(12)]


def producer(bootstrap, **kw):
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        key_serializer=lambda k: k.encode(),
        value_serializer=lambda v: json.dumps(v, sort_keys=True).encode(),
        linger_ms=2,
        request_timeout_ms=15000,
        **kw,
    )


def admin_client(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)


def produce_events(bootstrap, topic, n=N_EVENTS):
    """Keyed JSON events -> [(event, RecordMetadata)]."""
    p = producer(bootstrap)
    try:
        sent = []
        for i in range(n):
            key = KEYS[i % len(KEYS)]
            event = {"seq": i, "user": key, "kind": ["click", "view", "buy"][i % 3], "amount": i * 7 % 101}
            sent.append((event, p.send(topic, key=key, value=event)))
        p.flush(timeout=30)
        return [(event, fut.get(timeout=30)) for event, fut in sent]
    finally:
        p.close(timeout=10)


def read_assigned(bootstrap, topic, partitions, want, timeout=30.0):
    """Manual assign() + seek_to_beginning; returns {(partition, offset): (key, value)}."""
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        key_deserializer=lambda k: k.decode() if k is not None else None,
        value_deserializer=lambda v: json.loads(v.decode()),
    )
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = {}
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            batch = c.poll(timeout_ms=500, max_records=1000)
            for tp, records in batch.items():
                for r in records:
                    assert (r.partition, r.offset) not in got, f"offset {r.partition}/{r.offset} delivered twice"
                    got[(r.partition, r.offset)] = (r.key, r.value)
        return got
    finally:
        c.close()


def check_events(results, got):
    by_key = {}
    for event, md in results:
        by_key.setdefault(event["user"], set()).add(md.partition)
        assert got.get((md.partition, md.offset)) == (event["user"], event), \
            f"event {event['seq']} not at {md.partition}/{md.offset}: {got.get((md.partition, md.offset))!r}"
    for key, parts in by_key.items():
        assert len(parts) == 1, f"key {key} went to several partitions: {parts}"
    # per partition, offsets are contiguous from 0 and follow send order
    per = {}
    for event, md in results:
        per.setdefault(md.partition, []).append((md.offset, event["seq"]))
    for part, pairs in per.items():
        offsets = [o for o, _ in pairs]
        assert sorted(offsets) == list(range(len(offsets))), f"partition {part}: offsets not 0..n-1"
        assert [s for _, s in sorted(pairs)] == sorted(s for _, s in pairs), f"partition {part}: out of order"


def test_created_topic_keyed_json_round_trip(module_broker):
    b = module_broker
    topic = unique("kp-events")
    a = admin_client(b.bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        wait_until(lambda: topic in a.list_topics(), 10, what="created topic listed")
    finally:
        a.close()
    results = produce_events(b.bootstrap, topic)
    assert {md.topic for _, md in results} == {topic}
    used = {md.partition for _, md in results}
    assert used <= {0, 1, 2}
    assert len(used) >= 2, f"12 keys all hashed to one partition? {used}"
    got = read_assigned(b.bootstrap, topic, [0, 1, 2], N_EVENTS)
    assert len(got) == N_EVENTS
    check_events(results, got)


def test_auto_created_topic(module_broker):
    b = module_broker
    topic = unique("kp-auto")
    results = produce_events(b.bootstrap, topic, n=120)
    p = producer(b.bootstrap)
    try:
        parts = p.partitions_for(topic)
    finally:
        p.close(timeout=10)
    assert parts == {0, 1, 2}, f"auto-created topic should get --num-partitions 3, got {parts}"
    got = read_assigned(b.bootstrap, topic, sorted(parts), 120)
    check_events(results, got)


def test_topic_consumer_without_group(module_broker):
    """KafkaConsumer(topic, group_id=None): no coordinator, all partitions, from the beginning."""
    b = module_broker
    topic = unique("kp-nogroup")
    a = admin_client(b.bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
    finally:
        a.close()
    results = produce_events(b.bootstrap, topic, n=300)
    c = KafkaConsumer(
        topic,
        bootstrap_servers=b.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        value_deserializer=lambda v: json.loads(v.decode()),
        key_deserializer=lambda k: k.decode(),
    )
    got = {}
    deadline = time.monotonic() + 30
    try:
        for r in c:  # ends after consumer_timeout_ms without records
            got[(r.partition, r.offset)] = (r.key, r.value)
            if len(got) == 300 or time.monotonic() > deadline:
                break
    finally:
        c.close()
    assert len(got) == 300
    check_events(results, got)


def test_admin_metadata_and_configs(module_broker):
    b = module_broker
    topic = unique("kp-admin")
    a = admin_client(b.bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 2, "replication_factor": 1,
                                 "configs": {"retention.ms": "3600000", "cleanup.policy": "delete"}}})
        wait_until(lambda: topic in a.list_topics(), 10, what="topic listed")

        desc = {t["name"]: t for t in a.describe_topics([topic])}
        parts = desc[topic]["partitions"]
        assert sorted(p["partition_index"] for p in parts) == [0, 1]
        assert all(p["leader_id"] in (0, 1) for p in parts), parts

        cluster = a.describe_cluster()
        assert sorted(br.get("broker_id", br.get("node_id")) for br in cluster["brokers"]) == [0, 1], cluster
        assert sorted(br["port"] for br in cluster["brokers"]) == [b.port, b.port + 1], cluster

        res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        cfg = res["topic"][topic]
        assert cfg["retention.ms"]["value"] == "3600000", cfg.get("retention.ms")
        assert cfg["cleanup.policy"]["value"] == "delete", cfg.get("cleanup.policy")

        a.delete_topics([topic])
        wait_until(lambda: topic not in a.list_topics(), 10, what="deleted topic gone from list_topics")
    finally:
        a.close()


def test_create_existing_topic_fails(module_broker):
    from kafka.errors import TopicAlreadyExistsError

    b = module_broker
    topic = unique("kp-dup")
    a = admin_client(b.bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}})
    finally:
        a.close()
