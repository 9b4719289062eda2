"""Data replication across a three-node cluster (issue 16, part C): three
`corelog serve` processes on 127.0.0.1/2/3 (two shards each, the cluster of
test_cluster_membership.py), topics with RF=3, driven with librdkafka
(confluent-kafka). Followers fetch from the leader's shard, the leader's
high watermark follows the ISR, acks=all waits for it, and a leader's node
SIGKILLed mid-stream loses no acknowledged record: an idempotent acks=all
producer finishes on the new leader, and every acknowledged record is read
back once and in order. A follower fetch is Kafka's v15 one (KIP-903): a
replica id that is not the partition's, or a broker epoch older than its
node's registration, is refused and moves nothing; a fetch whose last
fetched epoch parts from the leader's log is told where (KIP-320)."""

from __future__ import annotations

import time

import pytest

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import QUIET, unique, wait_until, watermarks
import cluster as cluster_setup
from cluster import SESSION_TIMEOUT_MS, Cluster, cluster, host_of, shard_port  # noqa: F401 (the fixture)
from conftest import corelog_bin
from kafka_wire import API_FETCH, NOT_LEADER_OR_FOLLOWER, Conn, i8, i32, i64, uvarint

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


# ------------------------------------------------ follower fetch (raw) ---
# Real clients never send a follower's Fetch: these frames are hand-built
# (Fetch v15 with KIP-903's replica_state, request header v2).

OFFSET_OUT_OF_RANGE = 1
PATIENT_SESSION_TIMEOUT_MS = 20_000


@pytest.fixture
def patient_cluster(tmp_path, monkeypatch):
    """The cluster fixture with a 20 s session timeout: a killed node stays
    registered, unfenced and in the ISR while the test looks."""
    monkeypatch.setattr(cluster_setup, "SESSION_TIMEOUT_MS", PATIENT_SESSION_TIMEOUT_MS)
    c = Cluster(corelog_bin(), tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.kill_all()


def topic_id(cluster, topic) -> bytes:
    from confluent_kafka import TopicCollection
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster), **QUIET})
    description = admin.describe_topics(TopicCollection([topic]), request_timeout=20)[topic].result(30)
    uid = description.topic_id
    mask = (1 << 64) - 1
    return ((uid.get_most_significant_bits() & mask).to_bytes(8, "big")
            + (uid.get_least_significant_bits() & mask).to_bytes(8, "big"))


def leader_conn(cluster, broker_id) -> Conn:
    return Conn(host_of(broker_id // 1000), shard_port(cluster.port, broker_id % 1000))


def read_uvarint(r) -> int:
    value, shift = 0, 0
    while True:
        b = r._take(1)[0]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value
        shift += 7


def fetch_v15(conn, topic_uuid, fetch_offset, replica_id, replica_epoch, last_fetched_epoch=-1):
    """Fetch v15 of partition 0 of one topic, as replica `replica_id` (-1: a
    consumer) -> (error_code, high_watermark, diverging (epoch, end) or None)."""
    partition = (i32(0) + i32(-1) + i64(fetch_offset) + i32(last_fetched_epoch) + i64(-1) + i32(1 << 20)
                 + b"\x00")
    replica_state = i32(replica_id) + i64(replica_epoch) + b"\x00"
    body = (i32(0) + i32(0) + i32(1 << 20) + i8(0) + i32(0) + i32(-1)
            + uvarint(2) + topic_uuid + uvarint(2) + partition + b"\x00"
            + uvarint(1)  # no forgotten topics
            + uvarint(1)  # rack id ""
            + uvarint(1) + uvarint(1) + uvarint(len(replica_state)) + replica_state)  # tag 1: replica_state
    r = conn.call(API_FETCH, 15, body, flexible_header=True)
    assert read_uvarint(r) == 0  # response header tags
    r.i32(), r.i16(), r.i32()  # throttle, error, session
    assert read_uvarint(r) == 2 and r._take(16) == topic_uuid and read_uvarint(r) == 2
    assert r.i32() == 0
    error, hw = r.i16(), r.i64()
    r.i64(), r.i64()  # last stable offset, log start
    assert read_uvarint(r) == 0  # aborted transactions: null
    r.i32()  # preferred read replica
    records = read_uvarint(r)
    r._take(max(records - 1, 0))
    diverging = None
    for _ in range(read_uvarint(r)):
        tag, size = read_uvarint(r), read_uvarint(r)
        field = r._take(size)
        if tag == 0:
            diverging = (int.from_bytes(field[0:4], "big", signed=True), int.from_bytes(field[4:12], "big", signed=True))
    return error, hw, diverging


def high_watermark(cluster, topic) -> int:
    return watermarks(bootstrap(cluster), topic, 0)[1]


def test_a_follower_fetch_from_a_non_replica_or_a_previous_life_is_refused_and_moves_nothing(patient_cluster):
    cluster = patient_cluster
    topic = unique("kip903")
    create(cluster, topic)
    p = producer(cluster)
    for i in range(10):
        p.produce(topic, value=f"in sync {i}".encode())
    assert p.flush(30) == 0
    state = partition_state(cluster, topic, cluster.nodes[0])
    leader = state.leader
    follower = next(r for r in state.replicas if r // 1000 != leader // 1000)
    follower_node = cluster.node(follower // 1000)
    epoch = max(follower_node.epochs())
    wait_until(lambda: high_watermark(cluster, topic) == 10, what="every replica holds 10")
    tid = topic_id(cluster, topic)

    # The follower's node dies: still registered, unfenced and in the ISR for
    # the session timeout, it holds the high watermark at 10 while the
    # leader takes 5 more records with acks=1.
    follower_node.kill()
    p = producer(cluster, acks=1, **{"enable.idempotence": False})
    for i in range(5):
        p.produce(topic, value=f"acks=1 {i}".encode())
    assert p.flush(30) == 0
    assert high_watermark(cluster, topic) == 10

    other_shard = follower // 1000 * 1000 + (1 - follower % 1000)
    with leader_conn(cluster, leader) as conn:
        for replica_id, replica_epoch, who in [
            (follower, epoch - 1, "the follower's previous life (an older broker epoch)"),
            (follower, 0, "a guessed broker epoch"),
            (other_shard, epoch, "a registered node's shard that holds no replica"),
            (9000, -1, "a broker id no node has"),
        ]:
            error, _, _ = fetch_v15(conn, tid, 15, replica_id, replica_epoch)
            assert error == NOT_LEADER_OR_FOLLOWER, (who, error)
            time.sleep(0.2)
            assert high_watermark(cluster, topic) == 10, who
        isr = partition_state(cluster, topic, cluster.running()[0]).isrs
        assert follower in isr and len(isr) == 3, isr

        # The same fetch in the follower's current life is the follower's:
        # the leader counts it and the high watermark moves, as the refused
        # ones would have moved it without the checks.
        error, _, _ = fetch_v15(conn, tid, 15, follower, epoch)
        assert error == 0
        wait_until(lambda: high_watermark(cluster, topic) == 15, what="the current life's fetch counted")


def test_a_fetch_whose_last_epoch_parts_from_the_new_leaders_log_is_told_where(cluster):
    topic = unique("kip320")
    create(cluster, topic)
    p = producer(cluster)
    for i in range(10):
        p.produce(topic, value=f"first leader {i}".encode())
    assert p.flush(30) == 0
    state = partition_state(cluster, topic, cluster.nodes[0])
    old_leader_node = cluster.node(state.leader // 1000)
    wait_until(lambda: high_watermark(cluster, topic) == 10, what="every replica holds 10")
    tid = topic_id(cluster, topic)
    old_leader_node.kill()
    survivor = cluster.running()[0]
    moved = lambda: partition_state(cluster, topic, survivor).leader // 1000 not in (-1, old_leader_node.id)  # noqa: E731
    wait_until(moved, timeout=FAILOVER_TIMEOUT, what="a new leader")
    p = producer(cluster)
    for i in range(5):
        p.produce(topic, value=f"second leader {i}".encode())
    assert p.flush(FAILOVER_TIMEOUT + 30) == 0
    leader = partition_state(cluster, topic, survivor).leader
    with leader_conn(cluster, leader) as conn:
        # A consumer of the old leader fetched records of its epoch up to
        # offset 12 (which the new leader never had): the new leader answers
        # where that epoch ended on its log, 10, and no records.
        found = {}
        for epoch in range(0, 16):
            error, _, diverging = fetch_v15(conn, tid, 12, -1, -1, last_fetched_epoch=epoch)
            found[epoch] = (error, diverging)
        old_epochs = [e for e, (error, diverging) in found.items() if error == 0 and diverging == (e, 10)]
        assert len(old_epochs) == 1, found
        old_epoch = old_epochs[0]
        # Up to 10 in that epoch: on the leader's log, no divergence.
        assert fetch_v15(conn, tid, 10, -1, -1, last_fetched_epoch=old_epoch)[::2] == (0, None)
        # An epoch newer than the leader's: it cannot tell, OFFSET_OUT_OF_RANGE.
        assert fetch_v15(conn, tid, 12, -1, -1, last_fetched_epoch=1_000_000)[0] == OFFSET_OUT_OF_RANGE
