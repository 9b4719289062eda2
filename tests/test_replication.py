"""Data replication across a three-node cluster (issue 16, part C): three
`corelog serve` processes on 127.0.0.1/2/3 (two shards each, the cluster of
test_cluster_membership.py), topics with RF=3, driven with librdkafka
(confluent-kafka). Followers fetch from the leader's shard, the leader's
high watermark follows the ISR, acks=all waits for it, and a leader's node
SIGKILLed mid-stream loses no acknowledged record: an idempotent acks=all
producer finishes on the new leader, and every acknowledged record is read
back once and in order."""

from __future__ import annotations

import time

import pytest

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import QUIET, unique, wait_until
from cluster import SESSION_TIMEOUT_MS, Cluster, cluster  # noqa: F401 (the fixture)
from conftest import corelog_bin

FAILOVER_TIMEOUT = SESSION_TIMEOUT_MS / 1000 + 30


def bootstrap(cluster, nodes=None) -> str:
    return ",".join(n.bootstrap for n in (nodes or cluster.running()))


def create(cluster, topic, partitions=1, rf=3, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster), **QUIET})
    futures = admin.create_topics([NewTopic(topic, partitions, rf, config=config or {})], request_timeout=20)
    futures[topic].result(30)
    wait_until(lambda: topic in cluster.metadata(cluster.nodes[0]).topics, timeout=20, what="topic in metadata")


def partition_state(cluster, topic, node, partition=0):
    md = cluster.metadata(node)
    return md.topics[topic].partitions[partition]


def producer(cluster, **extra) -> Producer:
    config = {
        "bootstrap.servers": bootstrap(cluster),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 120_000,
        "retry.backoff.ms": 200,
        "topic.metadata.refresh.interval.ms": 1000,
        **QUIET,
    }
    config.update(extra)
    return Producer(config)


def read_all(cluster, topic, expected, partition=0, timeout=60.0) -> list[bytes]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap(cluster),
        "group.id": unique("g"),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **QUIET,
    })
    consumer.assign([TopicPartition(topic, partition, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or (msg.error() and msg.error().code() == KafkaError._PARTITION_EOF):
                continue
            assert not msg.error(), msg.error()
            values.append(msg.value())
        # Nothing more than expected turns up.
        extra = consumer.poll(2.0)
        if extra is not None and not extra.error():
            values.append(extra.value())
    finally:
        consumer.close()
    return values


@pytest.fixture
def rebalancing_cluster(tmp_path):
    """The cluster fixture, with preferred leaders restored every second
    (Kafka's leader.imbalance.check.interval.seconds, 300 by default)."""
    c = Cluster(corelog_bin(), tmp_path, args=["--leader-imbalance-check-interval-seconds", "1"])
    try:
        c.start()
        yield c
    finally:
        c.kill_all()


def test_acks_all_survives_the_leaders_node_sigkilled_and_it_rejoins_the_isr(rebalancing_cluster):
    cluster = rebalancing_cluster
    topic = unique("repl")
    create(cluster, topic, config={"min.insync.replicas": "2"})
    first = partition_state(cluster, topic, cluster.nodes[0])
    assert len(first.replicas) == 3 and sorted(first.isrs) == sorted(first.replicas)
    leader_node = cluster.nodes[first.leader // 1000 - 1]

    acked: dict[int, bytes] = {}
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()
        else:
            failed.append(err)

    p = producer(cluster)
    total = 4000
    for i in range(total):
        p.produce(topic, value=f"v{i:06d}".encode(), on_delivery=on_delivery)
        p.poll(0)
        if i == total // 2:
            # Half-way: whatever was acknowledged is on every in-sync replica.
            p.flush(30)
            assert len(acked) == total // 2 + 1 and not failed, (len(acked), failed)
            leader_node.kill()
    remaining = p.flush(FAILOVER_TIMEOUT + 60)
    assert remaining == 0 and not failed, f"{remaining} unsent, failed: {failed[:3]}\n{cluster.logs()}"
    assert len(acked) == total

    survivor = next(n for n in cluster.nodes if n is not leader_node)
    after = partition_state(cluster, topic, survivor)
    assert after.leader // 1000 != leader_node.id, after
    # Every acknowledged record, once, in the order produced (idempotence: no duplicate from retries).
    values = read_all(cluster, topic, expected=total)
    assert values == [f"v{i:06d}".encode() for i in range(total)], (len(values), values[:3], values[-3:])
    assert sorted(acked) == list(range(total)), "offsets are contiguous"

    # The killed node restarts, catches up by follower fetch, and returns to the ISR.
    leader_node.start()
    leader_node.wait_serving()
    back = lambda: any(r // 1000 == leader_node.id for r in partition_state(cluster, topic, survivor).isrs)  # noqa: E731
    wait_until(back, timeout=60, what=f"node {leader_node.id} back in the ISR\n{cluster.logs()}")

    # It was the preferred leader: leadership comes back to it, and what it
    # serves then (its log after truncating and catching up) is every
    # acknowledged record, once, in order.
    leads = lambda: partition_state(cluster, topic, survivor).leader // 1000 == leader_node.id  # noqa: E731
    wait_until(leads, timeout=60, what=f"node {leader_node.id} leading again\n{cluster.logs()}")
    values = read_all(cluster, topic, expected=total)
    assert values == [f"v{i:06d}".encode() for i in range(total)], (len(values), values[:3], values[-3:])


def test_min_insync_replicas_refuses_acks_all_but_not_acks_1(cluster):
    topic = unique("minisr")
    create(cluster, topic, config={"min.insync.replicas": "3"})
    state = partition_state(cluster, topic, cluster.nodes[0])
    follower = next(n for n in cluster.nodes if n.id != state.leader // 1000)
    # All three in sync: acks=all is acknowledged.
    p = producer(cluster, **{"enable.idempotence": False, "retries": 0, "message.timeout.ms": 20_000})
    errors: list = []
    p.produce(topic, value=b"three in sync", on_delivery=lambda err, msg: errors.append(err))
    p.flush(20)
    assert errors == [None]

    follower.kill()
    others = [n for n in cluster.nodes if n is not follower]
    shrunk = lambda: len(partition_state(cluster, topic, others[0]).isrs) == 2  # noqa: E731
    wait_until(shrunk, timeout=FAILOVER_TIMEOUT, what="the ISR without the killed follower")

    errors.clear()
    p = producer(cluster, **{"enable.idempotence": False, "retries": 0, "message.timeout.ms": 20_000})
    p.produce(topic, value=b"refused", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS, errors[0]

    one = producer(cluster, **{"enable.idempotence": False, "acks": "1", "retries": 0, "message.timeout.ms": 20_000})
    ones: list = []
    one.produce(topic, value=b"acks=1", on_delivery=lambda err, msg: ones.append(err))
    one.flush(30)
    assert ones == [None], ones
    # Consumers see both acknowledged records: the two in-sync replicas hold them.
    assert read_all(cluster, topic, expected=2) == [b"three in sync", b"acks=1"]


def test_a_whole_cluster_sigkilled_loses_no_acknowledged_record(cluster):
    topic = unique("whole")
    create(cluster, topic, partitions=2)
    acked: list[tuple[int, int, bytes]] = []
    failed = []

    def on_delivery(err, msg):
        if err is None:
            acked.append((msg.partition(), msg.offset(), msg.value()))
        else:
            failed.append(err)

    p = producer(cluster)
    for i in range(2000):
        p.produce(topic, value=f"w{i:05d}".encode(), partition=i % 2, on_delivery=on_delivery)
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed[:3]
    for n in cluster.nodes:
        n.kill()
    cluster.start()
    for partition in (0, 1):
        expected = [v for (pt, _, v) in sorted(acked) if pt == partition]
        values = read_all(cluster, topic, expected=len(expected), partition=partition)
        assert values == expected, (partition, len(values), len(expected), cluster.logs())
