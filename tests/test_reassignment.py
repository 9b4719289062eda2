"""Replica reassignment (KIP-455) with Kafka's own tool,
kafka-reassign-partitions, against a cluster of four nodes: a replica moves
to the spare node, which fetches it from the leader, joins the ISR, and
keeps every acknowledged record once the old replicas' nodes are gone; the
node the replica left deletes its copy. ListPartitionReassignments shows a
reassignment while its new replica cannot catch up (its node SIGKILLed just
before), and it completes once the node is back. Errors as Kafka's.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaConnectionError, InvalidReplicationAssignmentError, NoReassignmentInProgressError, UnknownTopicOrPartitionError

from cluster import SESSION_TIMEOUT_MS, Cluster
from conftest import corelog_bin
from helpers import wait_until
from kafka_java import kafka_tool
from confluent_kafka.admin import AdminClient, NewTopic

from helpers import QUIET
from test_failover import AckedProducer, check_acked, partitions_of, read_all

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
        c.kill_all()


def reassign_tool(cluster: Cluster, action: str, plan: dict | None, tmp_path, *extra: str, bootstrap=None):
    args = ["--bootstrap-server", bootstrap or cluster.bootstrap, f"--{action}", *extra]
    if plan is not None:
        path = tmp_path / "reassignment.json"
        path.write_text(json.dumps(plan))
        args += ["--reassignment-json-file", str(path)]
    return kafka_tool("kafka-reassign-partitions", *args, timeout=120).stdout


def plan_of(replicas: list[int]) -> dict:
    return {"version": 1, "partitions": [
        {"topic": TOPIC, "partition": 0, "replicas": replicas, "log_dirs": ["any"] * len(replicas)}]}


def state(cluster: Cluster, topic: str = TOPIC):
    """(leader, replicas, ISR) of partition 0, or None while the node asked does not know the topic."""
    try:
        return partitions_of(cluster.bootstrap, topic)[0]
    except (RuntimeError, KeyError):
        return None


def create_topic(cluster: Cluster, replicas: list[int]):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap, **QUIET})
    admin.create_topics([NewTopic(TOPIC, num_partitions=1, replica_assignment=[replicas])])[TOPIC].result(30)
    wait_until(lambda: (s := state(cluster)) and s[0] >= 0 and len(s[2]) == len(replicas),
               timeout=60, what=f"{TOPIC} led with {len(replicas)} replicas in sync")


def spare_node(admin: KafkaAdminClient) -> int:
    """Node 3 or 4, whichever is not the controller (pausing the quorum
    leader would stall every metadata change until a new one is elected)."""
    controller = admin.describe_cluster()["controller_id"] // 1000
    return 4 if controller != 4 else 3


def retried(call):
    """A request sent again if the client's connection to a node just killed
    fails under it (these requests are idempotent)."""
    for _ in range(5):
        try:
            return call()
        except KafkaConnectionError:
            time.sleep(0.1)
    return call()


def alter(admin: KafkaAdminClient, reassignments: dict) -> dict:
    return retried(lambda: admin.alter_partition_reassignments(reassignments))


def ongoing(admin: KafkaAdminClient) -> dict:
    return retried(admin.list_partition_reassignments)


def partition_dirs(cluster: Cluster, node: int) -> list[str]:
    data = cluster.node(node).data_dir
    return sorted(d for d in os.listdir(data) if d.startswith(f"{TOPIC}-"))


def test_kafka_reassign_partitions_moves_a_replica_to_the_spare_node(four, tmp_path):
    cluster = four
    create_topic(cluster, [at(1), at(2)])
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

    final = (at(1), [at(1), at(4, 1)], [at(1), at(4, 1)])
    wait_until(lambda: (s := state(cluster)) and (s[0], s[1], sorted(s[2])) == final, timeout=10, what=f"{final}")
    wait_until(lambda: partition_dirs(cluster, 2) == [], timeout=30, what="node 2 deleted its copy")
    assert partition_dirs(cluster, 4) == [f"{TOPIC}-0"]
    assert not KafkaAdminClient(bootstrap_servers=cluster.bootstrap).list_partition_reassignments()

    # The only other replica's node dies: node 4 leads, from what it fetched.
    cluster.node(1).kill()
    wait_until(lambda: (state(cluster) or (None,))[0] == at(4, 1), timeout=SESSION_TIMEOUT_MS / 1000 + 30,
               what="node 4 leads")
    check_acked(producer.acked, read_all(cluster.bootstrap, TOPIC, partitions=1))
    assert len(read_all(cluster.bootstrap, TOPIC, partitions=1)[0]) == 3000


def test_a_reassignment_is_listed_until_its_new_replica_catches_up(four, tmp_path):
    cluster = four
    create_topic(cluster, [at(1), at(2)])
    producer = AckedProducer(cluster.bootstrap, TOPIC)
    producer.send(500, per_second=5000)
    assert producer.finish() == 0 and len(producer.acked) == 500
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20_000)
    tp = TopicPartition(TOPIC, 0)
    spare = spare_node(admin)

    # The spare node dies: still registered for a session timeout, in
    # which the reassignment to it is accepted; it cannot fetch.
    cluster.node(spare).kill()
    assert alter(admin, {tp: [at(1), at(spare)]}) == {tp: None}
    listing = ongoing(admin)
    assert listing == {tp: {"replicas": [at(1), at(spare), at(2)], "adding_replicas": [at(spare)],
                            "removing_replicas": [at(2)]}}, listing
    # Its session runs out: fenced, it drops out of the brokers; the reassignment waits for it.
    wait_until(lambda: any(b["is_fenced"] for b in admin.describe_cluster()["brokers"]), timeout=30,
               what="the spare node fenced")
    running = ",".join(n.bootstrap for n in cluster.nodes if n.id != spare)
    listed = reassign_tool(cluster, "list", None, tmp_path, bootstrap=running)
    assert f"{TOPIC}-0" in listed and "adding" in listed.lower(), listed
    verified = reassign_tool(cluster, "verify", plan_of([at(1), at(spare)]), tmp_path, "--preserve-throttles",
                             bootstrap=running)
    assert f"Reassignment of partition {TOPIC}-0 is still in progress" in verified, verified
    # A second reassignment cannot put two replicas on one node; a cancel of
    # nothing, or of an unknown partition, is refused as Kafka's.
    assert alter(admin, {tp: [at(1), at(1, 1)]}) == {tp: InvalidReplicationAssignmentError}
    assert alter(admin, {tp: [at(1), at(9)]}) == {tp: InvalidReplicationAssignmentError}
    other = TopicPartition(TOPIC, 5)
    assert alter(admin, {other: None}) == {other: UnknownTopicOrPartitionError}

    cluster.node(spare).start()
    wait_until(lambda: not ongoing(admin), timeout=90, interval=0.5,
               what="the reassignment completed once the spare node ran again")
    final = ([at(1), at(spare)], [at(1), at(spare)])
    wait_until(lambda: (s := state(cluster)) and (s[1], sorted(s[2])) == final, timeout=10, what=f"{final}")
    assert alter(admin, {tp: None}) == {tp: NoReassignmentInProgressError}
    wait_until(lambda: partition_dirs(cluster, 2) == [], timeout=30, what="node 2 deleted its copy")
    # Node 4's copy has every record: it alone serves them once node 1 is gone.
    cluster.node(1).kill()
    wait_until(lambda: (state(cluster) or (None,))[0] == at(spare), timeout=SESSION_TIMEOUT_MS / 1000 + 30,
               what="the spare node leads")
    check_acked(producer.acked, read_all(cluster.bootstrap, TOPIC, partitions=1))


def test_a_cancelled_reassignment_returns_to_the_original_replicas(four, tmp_path):
    cluster = four
    create_topic(cluster, [at(1), at(2)])
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=20_000)
    tp = TopicPartition(TOPIC, 0)
    spare = spare_node(admin)
    cluster.node(spare).kill()
    assert alter(admin, {tp: [at(1), at(spare)]}) == {tp: None}
    assert tp in ongoing(admin)
    assert alter(admin, {tp: None}) == {tp: None}
    assert not ongoing(admin)
    final = ([at(1), at(2)], [at(1), at(2)])
    wait_until(lambda: (s := state(cluster)) and (s[1], sorted(s[2])) == final, timeout=10, what=f"{final}")
    cluster.node(spare).start()
    cluster.node(spare).wait_serving()
    wait_until(lambda: partition_dirs(cluster, spare) == [], timeout=30, what="the spare node holds no copy")


def test_a_single_node_keeps_its_partitions_on_their_shards(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20_000)
    from kafka.admin import NewTopic
    admin.create_topics([NewTopic("single", 1, 1)])
    wait_until(lambda: partitions_of(broker.bootstrap, "single")[0][0] >= 0, timeout=20, what="topic led")
    leader = partitions_of(broker.bootstrap, "single")[0][0]
    tp = TopicPartition("single", 0)
    assert admin.alter_partition_reassignments({tp: [leader]}) == {tp: None}, "its own place: nothing to do"
    other_shard = leader ^ 1
    assert admin.alter_partition_reassignments({tp: [other_shard]}) == {tp: InvalidReplicationAssignmentError}
    assert admin.alter_partition_reassignments({tp: None}) == {tp: NoReassignmentInProgressError}
    assert admin.list_partition_reassignments() == {}
