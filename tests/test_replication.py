"""Replication end to end: 3 corelog processes on 127.0.0.1/2/3, topics with
replication factor 3, real clients (librdkafka through confluent-kafka,
kafka-python's admin), SIGKILL of the node that leads. The checks are on the
data: every acknowledged record is read back once, at the offset it was
acknowledged with, in the order of its acks.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, node_of, partitions_of, wait_until

PARTITIONS = 3


@pytest.fixture
def cluster3(corelog, tmp_path):
    c = Cluster(corelog, tmp_path, nodes=3, shards=2)
    c.start()
    yield c
    c.kill_all()


def create_topic(cluster: Cluster, name: str, partitions=PARTITIONS, rf=3, configs=None, assignment=None):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    if assignment is not None:
        topic = NewTopic(name, replica_assignment=assignment, config=configs or {})
    else:
        topic = NewTopic(name, num_partitions=partitions, replication_factor=rf, config=configs or {})
    admin.create_topics([topic])[name].result(30)
    expected = len(assignment[0]) if assignment else rf
    wait_until(
        f"every partition of {name} led with {expected} replicas in sync",
        lambda: all(leader >= 0 and len(isr) == expected
                    for leader, _, isr in partitions_of(cluster.bootstrap, name).values()),
        cluster=cluster,
    )


class AckedProducer:
    """An idempotent acks=all producer writing "i" for i = 0, 1, ...; keeps
    what was acknowledged, in ack order, and every error."""

    def __init__(self, bootstrap: str, topic: str, acks="all", **extra):
        self.topic = topic
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": acks == "all",
            "acks": acks,
            "linger.ms": 5,
            "message.timeout.ms": 90_000,
            **extra,
        })
        self.acked: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.errors: list[str] = []
        self.sent = 0

    def _report(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append((msg.partition(), msg.offset(), msg.value()))

    def send(self, n: int, per_second: float):
        start = time.monotonic()
        for _ in range(n):
            value = str(self.sent).encode()
            self.sent += 1
            while True:
                try:
                    self.producer.produce(self.topic, value=value, key=value, on_delivery=self._report)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
            ahead = self.sent / per_second - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)

    def finish(self, timeout=120.0) -> int:
        return self.producer.flush(timeout)


def read_all(bootstrap: str, topic: str, partitions=PARTITIONS, timeout=60.0) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of `topic` below each partition's high watermark: partition -> [(offset, value)]."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout
        while any((got[p][-1][0] + 1 if got[p] else 0) < ends[p] for p in range(partitions)):
            assert time.monotonic() < deadline, f"read {[len(v) for v in got.values()]} of {ends}"
            for m in consumer.consume(1000, timeout=1.0):
                if m.error() is None:
                    got[m.partition()].append((m.offset(), m.value()))
        return got
    finally:
        consumer.close()


def check_acked(acked, stored):
    """Every acknowledged record is stored once, at its acknowledged offset;
    per partition, offsets ascend in ack order."""
    by_position = {(p, off): v for p, recs in stored.items() for off, v in recs}
    missing = [(p, off, v) for p, off, v in acked if by_position.get((p, off)) != v]
    assert not missing, f"{len(missing)} acknowledged records lost or moved, e.g. {missing[:5]}"
    values = [v for recs in stored.values() for _, v in recs]
    assert len(values) == len(set(values)), "a value is stored twice (the idempotent producer's retry duplicated it)"
    for p in stored:
        offsets = [off for q, off, _ in acked if q == p]
        assert offsets == sorted(offsets), f"partition {p}: acks out of offset order"


def test_acknowledged_records_survive_killing_the_leaders_node(cluster3):
    topic = "orders"
    create_topic(cluster3, topic, configs={"min.insync.replicas": "2"})
    producer = AckedProducer(cluster3.bootstrap, topic)
    producer.send(2000, per_second=2000)
    victim = node_of(partitions_of(cluster3.bootstrap, topic)[0][0])
    cluster3.kill(victim)
    producer.send(6000, per_second=2000)
    left = producer.finish()
    assert left == 0 and not producer.errors, f"{left} undelivered, errors {producer.errors[:5]}"
    assert len(producer.acked) == producer.sent

    leader = node_of(partitions_of(cluster3.bootstrap, topic)[0][0])
    assert leader != victim, "partition 0 still names the killed node as its leader"
    check_acked(producer.acked, read_all(cluster3.bootstrap, topic))

    cluster3.node(victim).start()
    wait_until(
        f"node {victim} back in the ISR of every partition",
        lambda: all(victim in {node_of(b) for b in isr}
                    for _, _, isr in partitions_of(cluster3.bootstrap, topic).values()),
        cluster=cluster3,
    )
    # In the ISR means caught up: nothing acknowledged went missing meanwhile.
    check_acked(producer.acked, read_all(cluster3.bootstrap, topic))


def test_a_whole_cluster_killed_and_restarted_keeps_every_acknowledged_record(cluster3):
    topic = "ledger"
    create_topic(cluster3, topic, configs={"min.insync.replicas": "2"})
    producer = AckedProducer(cluster3.bootstrap, topic)
    producer.send(3000, per_second=3000)
    assert producer.finish() == 0 and not producer.errors
    cluster3.kill_all()
    cluster3.start()
    wait_until("every partition led again", lambda: all(
        leader >= 0 for leader, _, _ in partitions_of(cluster3.bootstrap, topic).values()), cluster=cluster3)
    check_acked(producer.acked, read_all(cluster3.bootstrap, topic))


def test_acks_all_is_refused_below_min_insync_replicas_and_acks_1_still_works(corelog, tmp_path):
    # Five voters, so that two nodes down leave the controller quorum its majority;
    # the topic lives on nodes 3, 4 and 5.
    cluster = Cluster(corelog, tmp_path, nodes=5, shards=1)
    cluster.start()
    try:
        at = lambda node: node * 1000  # shard 0 of the node
        create_topic(cluster, "strict", assignment=[[at(3), at(4), at(5)]], configs={"min.insync.replicas": "2"})
        cluster.kill(4)
        cluster.kill(5)
        wait_until("the ISR shrunk to node 3", lambda: partitions_of(cluster.bootstrap, "strict")[0][2] == [at(3)],
                   cluster=cluster)
        strict = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "retries": 0,
                           "message.timeout.ms": 10_000})
        errors = []
        strict.produce("strict", b"refused", on_delivery=lambda err, msg: errors.append(err))
        strict.flush(20)
        assert errors and errors[0] is not None and errors[0].name() == "NOT_ENOUGH_REPLICAS", errors
        relaxed = AckedProducer(cluster.bootstrap, "strict", acks="1")
        relaxed.send(10, per_second=100)
        assert relaxed.finish(20) == 0 and not relaxed.errors and len(relaxed.acked) == 10
    finally:
        cluster.kill_all()


def test_a_group_resumes_from_its_committed_offsets_after_its_coordinators_node_is_killed(cluster3):
    topic, group = "events", "billing"
    create_topic(cluster3, topic, partitions=1)
    producer = AckedProducer(cluster3.bootstrap, topic)
    producer.send(100, per_second=1000)
    assert producer.finish() == 0
    consumer = Consumer({"bootstrap.servers": cluster3.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 60 and time.monotonic() < deadline:
        for m in consumer.consume(60 - len(seen), timeout=1.0):
            if m.error() is None:
                seen.append(m.offset())
    consumer.commit(offsets=[TopicPartition(topic, 0, 60)], asynchronous=False)
    consumer.close()

    admin = AdminClient({"bootstrap.servers": cluster3.bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(30)
    coordinator = node_of(described.coordinator.id)
    cluster3.kill(coordinator)

    resumed = Consumer({"bootstrap.servers": cluster3.bootstrap, "group.id": group,
                        "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    resumed.subscribe([topic])
    first = None
    deadline = time.monotonic() + 90
    while first is None and time.monotonic() < deadline:
        for m in resumed.consume(1, timeout=1.0):
            if m.error() is None:
                first = m.offset()
    resumed.close()
    assert first == 60, f"resumed at {first}, not at the committed 60, after node {coordinator} was killed"


def test_the_java_clients_idempotent_producer_survives_killing_the_leaders_node(cluster3, tmp_path):
    """Kafka's VerifiableProducer (the Java client, acks=all, idempotent by
    default) throttled to run across the kill; every success it reports is read back."""
    import json
    import subprocess

    from kafka_java import start_tool

    topic = "java-orders"
    create_topic(cluster3, topic, configs={"min.insync.replicas": "2"})
    stderr = open(tmp_path / "verifiable-producer.stderr", "w")
    proc = start_tool("kafka-verifiable-producer", "--bootstrap-server", cluster3.bootstrap, "--topic", topic,
                      "--acks", "-1", "--max-messages", "8000", "--throughput", "1000",
                      stdout=subprocess.PIPE, stderr=stderr)
    events: list[dict] = []
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                acked = sum(e["name"] == "producer_send_success" for e in events)
                if acked == 2000:
                    cluster3.kill(node_of(partitions_of(cluster3.bootstrap, topic)[0][0]))
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr.close()
    errors = [e for e in events if e["name"] == "producer_send_error"]
    assert not errors, errors[:5]
    acked = [(e["partition"], e["offset"], e["value"].encode()) for e in events if e["name"] == "producer_send_success"]
    assert len(acked) == 8000
    check_acked(acked, read_all(cluster3.bootstrap, topic))
