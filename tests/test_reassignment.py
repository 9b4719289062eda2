"""Replica reassignment (KIP-455) with Kafka's own tool,
kafka-reassign-partitions, against a cluster of four nodes: a replica moves
to the spare node, which fetches it from the leader, joins the ISR, and
keeps every acknowledged record once the old replicas' nodes are gone; the
node the replica left deletes its copy. ListPartitionReassignments shows a
reassignment while its new replica cannot catch up (its node paused with
SIGSTOP), and it completes once the node runs again. Errors as Kafka's.
"""

from __future__ import annotations

import json
import os
import signal

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import InvalidReplicaAssignmentError, NoReassignmentInProgressError, UnknownTopicOrPartitionError

from cluster import SESSION_TIMEOUT_MS, Cluster
from conftest import corelog_bin
from helpers import wait_until
from kafka_java import kafka_tool
from test_failover import AckedProducer, check_acked, create_topic, partitions_of, read_all

TOPIC = "moved"


def at(node: int, shard: int = 0) -> int:
    """The broker id of a node's shard."""
    return node * 1000 + shard


@pytest.fixture
def four(tmp_path):
    """Four nodes (all voters: one down or paused leaves a quorum), two shards each."""
    c = Cluster(corelog_bin(), tmp_path, nodes=4)
    try:
        c.start()
        yield c
    finally:
        for n in c.nodes:
            if n.proc and n.proc.poll() is None:
                os.kill(n.proc.pid, signal.SIGCONT)
        c.kill_all()


def reassign_tool(cluster: Cluster, action: str, plan: dict | None, tmp_path, *extra: str):
    args = ["--bootstrap-server", cluster.bootstrap, f"--{action}", *extra]
    if plan is not None:
        path = tmp_path / "reassignment.json"
        path.write_text(json.dumps(plan))
        args += ["--reassignment-json-file", str(path)]
    return kafka_tool("kafka-reassign-partitions", *args, timeout=120).stdout


def plan_of(replicas: list[int]) -> dict:
    return {"version": 1, "partitions": [
        {"topic": TOPIC, "partition": 0, "replicas": replicas, "log_dirs": ["any"] * len(replicas)}]}


def partition_dirs(cluster: Cluster, node: int) -> list[str]:
    data = cluster.node(node).data_dir
    return sorted(d for d in os.listdir(data) if d.startswith(f"{TOPIC}-"))


def test_kafka_reassign_partitions_moves_a_replica_to_the_spare_node(four, tmp_path):
    cluster = four
    create_topic(cluster, TOPIC, assignment=[[at(1), at(2)]])
    producer = AckedProducer(cluster.bootstrap, TOPIC)
    producer.send(3000, per_second=5000)
    assert producer.finish() == 0 and not producer.errors and len(producer.acked) == 3000
    assert partition_dirs(cluster, 2) == [f"{TOPIC}-0"] and partition_dirs(cluster, 4) == []

    # Node 2's replica goes to node 4's second shard.
    plan = plan_of([at(1), at(4, 1)])
    out = reassign_tool(cluster, "execute", plan, tmp_path)
    assert "Successfully started partition reassignment" in out, out

    def completed():
        verified = reassign_tool(cluster, "verify", plan, tmp_path, "--preserve-throttles")
        return f"Reassignment of partition {TOPIC}-0 is completed" in verified
    wait_until(completed, timeout=90, interval=1.0, what="the reassignment completed (--verify)")

    leader, replicas, isr = partitions_of(cluster.bootstrap, TOPIC)[0]
    assert (leader, replicas, sorted(isr)) == (at(1), [at(1), at(4, 1)], [at(1), at(4, 1)])
    wait_until(lambda: partition_dirs(cluster, 2) == [], timeout=30, what="node 2 deleted its copy")
    assert partition_dirs(cluster, 4) == [f"{TOPIC}-0"]
    assert not KafkaAdminClient(bootstrap_servers=cluster.bootstrap).list_partition_reassignments()

    # The only other replica's node dies: node 4 leads, from what it fetched.
    cluster.node(1).kill()
    wait_until(lambda: partitions_of(cluster.bootstrap, TOPIC)[0][0] == at(4, 1), timeout=SESSION_TIMEOUT_MS / 1000 + 30,
               what="node 4 leads")
    check_acked(producer.acked, read_all(cluster.bootstrap, TOPIC, partitions=1))
    assert len(read_all(cluster.bootstrap, TOPIC, partitions=1)[0]) == 3000


def test_a_reassignment_is_listed_until_its_new_replica_catches_up(four, tmp_path):
    cluster = four
    create_topic(cluster, TOPIC, assignment=[[at(1), at(2)]])
    producer = AckedProducer(cluster.bootstrap, TOPIC)
    producer.send(500, per_second=5000)
    assert producer.finish() == 0 and len(producer.acked) == 500
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20_000)
    tp = TopicPartition(TOPIC, 0)

    # Node 4 is paused: still registered for a session timeout, but it cannot fetch.
    os.kill(cluster.node(4).proc.pid, signal.SIGSTOP)
    assert admin.alter_partition_reassignments({tp: [at(1), at(4)]}) == {tp: None}
    ongoing = admin.list_partition_reassignments()
    assert ongoing == {tp: {"replicas": [at(1), at(4), at(2)], "adding_replicas": [at(4)],
                            "removing_replicas": [at(2)]}}, ongoing
    listed = reassign_tool(cluster, "list", None, tmp_path)
    assert f"{TOPIC}-0" in listed and "adding" in listed.lower(), listed
    verified = reassign_tool(cluster, "verify", plan_of([at(1), at(4)]), tmp_path, "--preserve-throttles")
    assert f"Reassignment of partition {TOPIC}-0 is still in progress" in verified, verified
    # A second reassignment cannot put two replicas on one node; a cancel of
    # nothing, or of an unknown partition, is refused as Kafka's.
    assert admin.alter_partition_reassignments({tp: [at(1), at(1, 1)]}) == {tp: InvalidReplicaAssignmentError}
    assert admin.alter_partition_reassignments({tp: [at(1), at(9)]}) == {tp: InvalidReplicaAssignmentError}
    other = TopicPartition(TOPIC, 5)
    assert admin.alter_partition_reassignments({other: None}) == {other: UnknownTopicOrPartitionError}

    os.kill(cluster.node(4).proc.pid, signal.SIGCONT)
    wait_until(lambda: not admin.list_partition_reassignments(), timeout=90, interval=0.5,
               what="the reassignment completed once node 4 ran again")
    leader, replicas, isr = partitions_of(cluster.bootstrap, TOPIC)[0]
    assert (replicas, sorted(isr)) == ([at(1), at(4)], [at(1), at(4)])
    assert admin.alter_partition_reassignments({tp: None}) == {tp: NoReassignmentInProgressError}
    wait_until(lambda: partition_dirs(cluster, 2) == [], timeout=30, what="node 2 deleted its copy")
    # Node 4's copy has every record: it alone serves them once node 1 is gone.
    cluster.node(1).kill()
    wait_until(lambda: partitions_of(cluster.bootstrap, TOPIC)[0][0] == at(4), timeout=SESSION_TIMEOUT_MS / 1000 + 30,
               what="node 4 leads")
    check_acked(producer.acked, read_all(cluster.bootstrap, TOPIC, partitions=1))


def test_a_cancelled_reassignment_returns_to_the_original_replicas(four, tmp_path):
    cluster = four
    create_topic(cluster, TOPIC, assignment=[[at(1), at(2)]])
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20_000)
    tp = TopicPartition(TOPIC, 0)
    os.kill(cluster.node(4).proc.pid, signal.SIGSTOP)
    assert admin.alter_partition_reassignments({tp: [at(1), at(4)]}) == {tp: None}
    assert tp in admin.list_partition_reassignments()
    assert admin.alter_partition_reassignments({tp: None}) == {tp: None}
    assert not admin.list_partition_reassignments()
    _, replicas, isr = partitions_of(cluster.bootstrap, TOPIC)[0]
    assert (replicas, sorted(isr)) == ([at(1), at(2)], [at(1), at(2)])
    os.kill(cluster.node(4).proc.pid, signal.SIGCONT)
    # Node 4 opened the replica when it was added (if it got that far) and deletes it now.
    cluster.node(4).wait_serving()
    wait_until(lambda: partition_dirs(cluster, 4) == [], timeout=30, what="node 4 holds no copy")


def test_a_single_node_keeps_its_partitions_on_their_shards(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20_000)
    from kafka.admin import NewTopic
    admin.create_topics([NewTopic("single", 1, 1)])
    wait_until(lambda: partitions_of(broker.bootstrap, "single")[0][0] >= 0, timeout=20, what="topic led")
    leader = partitions_of(broker.bootstrap, "single")[0][0]
    tp = TopicPartition("single", 0)
    assert admin.alter_partition_reassignments({tp: [leader]}) == {tp: None}, "its own place: nothing to do"
    other_shard = leader ^ 1
    assert admin.alter_partition_reassignments({tp: [other_shard]}) == {tp: InvalidReplicaAssignmentError}
    assert admin.alter_partition_reassignments({tp: None}) == {tp: NoReassignmentInProgressError}
    assert admin.list_partition_reassignments() == {}
