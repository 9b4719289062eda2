"""Failover beyond the data path's own tests (test_replication.py): the
Java client's idempotent producer across a SIGKILL of the leader's node, a
consumer group resuming from its committed offsets after its coordinator's
node is killed, and min.insync.replicas with two nodes down (five voters, so
the controller quorum keeps its majority). Every check is on the data.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, cluster  # noqa: F401 (the fixture)
from conftest import corelog_bin
from helpers import QUIET, unique, wait_until

PARTITIONS = 3


def node_of(broker_id: int) -> int:
    return broker_id // 1000


def partitions_of(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader broker id, replica broker ids, ISR broker ids), from Metadata."""
    md = AdminClient({"bootstrap.servers": bootstrap, **QUIET}).list_topics(topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        raise RuntimeError(f"{topic}: {t.error}")
    return {p: (pm.leader, list(pm.replicas), list(pm.isrs)) for p, pm in t.partitions.items()}


def create_topic(cluster: Cluster, name: str, partitions=PARTITIONS, rf=3, configs=None, assignment=None):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    if assignment is not None:
        topic = NewTopic(name, num_partitions=len(assignment), replica_assignment=assignment, config=configs or {})
    else:
        topic = NewTopic(name, num_partitions=partitions, replication_factor=rf, config=configs or {})
    admin.create_topics([topic])[name].result(30)
    expected = len(assignment[0]) if assignment else rf
    wait_until(
        lambda: all(leader >= 0 and len(isr) == expected
                    for leader, _, isr in partitions_of(cluster.bootstrap, name).values()),
        timeout=60, what=f"every partition of {name} led with {expected} replicas in sync",
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
            **QUIET,
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
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("check"),
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
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


def test_acks_all_is_refused_below_min_insync_replicas_and_acks_1_still_works(tmp_path):
    # Five voters, so that two nodes down leave the controller quorum its majority;
    # the topic lives on nodes 3, 4 and 5.
    cluster = Cluster(corelog_bin(), tmp_path, nodes=5, shards=1)
    try:
        cluster.start()
        at = lambda node: node * 1000  # shard 0 of the node
        create_topic(cluster, "strict", assignment=[[at(3), at(4), at(5)]], configs={"min.insync.replicas": "2"})
        cluster.node(4).kill()
        cluster.node(5).kill()
        wait_until(lambda: partitions_of(cluster.bootstrap, "strict")[0][2] == [at(3)], timeout=60,
                   what="the ISR shrunk to node 3")
        strict = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "retries": 0,
                           "message.timeout.ms": 10_000, **QUIET})
        errors = []
        strict.produce("strict", b"refused", on_delivery=lambda err, msg: errors.append(err))
        strict.flush(20)
        assert errors and errors[0] is not None and errors[0].name() == "NOT_ENOUGH_REPLICAS", errors
        relaxed = AckedProducer(cluster.bootstrap, "strict", acks="1")
        relaxed.send(10, per_second=100)
        assert relaxed.finish(20) == 0 and not relaxed.errors and len(relaxed.acked) == 10
    finally:
        cluster.kill_all()


def test_a_group_resumes_from_its_committed_offsets_after_its_coordinators_node_is_killed(cluster):
    topic, group = "events", "billing"
    create_topic(cluster, topic, partitions=1)
    producer = AckedProducer(cluster.bootstrap, topic)
    producer.send(100, per_second=1000)
    assert producer.finish() == 0
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 60
    while len(seen) < 60 and time.monotonic() < deadline:
        for m in consumer.consume(60 - len(seen), timeout=1.0):
            if m.error() is None:
                seen.append(m.offset())
    consumer.commit(offsets=[TopicPartition(topic, 0, 60)], asynchronous=False)
    consumer.close()

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, **QUIET})
    described = admin.describe_consumer_groups([group])[group].result(30)
    coordinator = node_of(described.coordinator.id)
    cluster.node(coordinator).kill()

    resumed = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                        "enable.auto.commit": False, "auto.offset.reset": "earliest", **QUIET})
    resumed.subscribe([topic])
    first = None
    deadline = time.monotonic() + 90
    while first is None and time.monotonic() < deadline:
        for m in resumed.consume(1, timeout=1.0):
            if m.error() is None:
                first = m.offset()
    resumed.close()
    assert first == 60, f"resumed at {first}, not at the committed 60, after node {coordinator} was killed"


def test_the_java_clients_idempotent_producer_survives_killing_the_leaders_node(cluster, tmp_path):
    """Kafka's VerifiableProducer (the Java client, acks=all, idempotent by
    default) throttled to run across the kill; every success it reports is read back."""
    import json
    import subprocess

    from kafka_java import start_tool

    topic = "java-orders"
    create_topic(cluster, topic, configs={"min.insync.replicas": "2"})
    stderr = open(tmp_path / "verifiable-producer.stderr", "w")
    # VerifiableProducer sets retries=0 for Kafka's system tests; a producer
    # application keeps the client's defaults (retry until delivery.timeout.ms).
    config = tmp_path / "producer.properties"
    config.write_text("retries=2147483647\nenable.idempotence=true\ndelivery.timeout.ms=120000\n")
    proc = start_tool("kafka-verifiable-producer", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
                      "--acks", "-1", "--max-messages", "8000", "--throughput", "1000",
                      "--producer.config", str(config), stdout=subprocess.PIPE, stderr=stderr)
    events: list[dict] = []
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                events.append(json.loads(line))
                acked = sum(e["name"] == "producer_send_success" for e in events)
                if acked == 2000:
                    cluster.node(node_of(partitions_of(cluster.bootstrap, topic)[0][0])).kill()
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr.close()
    errors = [e for e in events if e["name"] == "producer_send_error"]
    assert not errors, [(e.get("exception"), e.get("message")) for e in errors[:5]]
    acked = [(e["partition"], e["offset"], e["value"].encode()) for e in events if e["name"] == "producer_send_success"]
    assert len(acked) == 8000
    check_acked(acked, read_all(cluster.bootstrap, topic))
