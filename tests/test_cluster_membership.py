"""A cluster of three `corelog serve` processes on 127.0.0.1, .2 and .3 (two
shards each), with a Raft controller quorum (issue 16): every node registers
and its shards are brokers, topics are created with RF=3 on three nodes, the
controller leader SIGKILLed is replaced and the cluster goes on, the killed
node comes back with a new broker epoch, and a whole cluster SIGKILLed and
restarted keeps every topic. Metadata only: data replication is tested
elsewhere. Driven with kafka-python's admin client and librdkafka."""

from __future__ import annotations

import re
import subprocess

import pytest
from kafka.admin import NewTopic
from kafka.errors import InvalidReplicationFactorError

import kafka_wire as kw
from cluster import HOSTS, SESSION_TIMEOUT_MS, SHARDS, cluster, shard_port  # noqa: F401 (the fixture)
from helpers import unique, wait_until
from test_producer_ids import ids_of, init_producer_ids

def _controller(node_metadata) -> int:
    return node_metadata.controller_id


def _replica_nodes(md, topic) -> list[set[int]]:
    return [{r // 1000 for r in p.replicas} for p in md.topics[topic].partitions.values()]


def test_every_node_registers_and_topics_get_replicas_on_three_nodes(cluster):
    md = wait_until(lambda: (m := cluster.metadata(cluster.nodes[1])) and len(m.brokers) == 6 and m,
                    timeout=20, what="six brokers")
    assert set(md.brokers) == {1000, 1001, 2000, 2001, 3000, 3001}, md.brokers
    # Each node's shards at the host and ports it registered; shard 1 steps over the controller port.
    assert {(b.host, b.port) for b in md.brokers.values()} == {
        (h, shard_port(cluster.port, s)) for h in HOSTS for s in range(SHARDS)}
    assert md.cluster_id and md.cluster_id != "corelog-single-node"
    assert _controller(md) in {1000, 2000, 3000}
    # Every node answers the same cluster and controller.
    for n in cluster.nodes:
        m = cluster.metadata(n)
        assert (m.cluster_id, m.controller_id) == (md.cluster_id, md.controller_id)

    topic = unique("rf3")
    admin = cluster.admin(cluster.nodes[2])  # through a node that is probably not the controller
    try:
        admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=3)], timeout_ms=20_000)
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics([NewTopic(unique("rf4"), num_partitions=1, replication_factor=4)], timeout_ms=20_000)
        described = admin.describe_cluster()
        assert len(described["brokers"]) == 6 and described["cluster_id"] == md.cluster_id
    finally:
        admin.close()
    md = wait_until(lambda: (m := cluster.metadata(cluster.nodes[0])) and topic in m.topics and m,
                    timeout=10, what="topic in metadata")
    assert _replica_nodes(md, topic) == [{1, 2, 3}] * 4, "one replica on each of three nodes"
    leaders = {p.leader // 1000 for p in md.topics[topic].partitions.values()}
    assert len(leaders) >= 2, f"leaders spread over nodes: {leaders}"
    for p in md.topics[topic].partitions.values():
        assert sorted(p.isrs) == sorted(p.replicas) and p.leader == p.replicas[0]
    # __consumer_offsets, replicated as offsets.topic.replication.factor=3 asks.
    md = wait_until(lambda: (m := cluster.metadata(cluster.nodes[0])) and "__consumer_offsets" in m.topics and m,
                    timeout=20, what="__consumer_offsets")
    assert _replica_nodes(md, "__consumer_offsets")[0] == {1, 2, 3}


def test_a_killed_controller_is_replaced_and_its_node_comes_back_with_a_new_epoch(cluster):
    first = cluster.metadata(cluster.nodes[0])
    wait_until(lambda: len(cluster.metadata(cluster.nodes[0]).brokers) == 6, timeout=20, what="six brokers")
    old_controller = cluster.metadata(cluster.nodes[0]).controller_id // 1000
    assert old_controller in (1, 2, 3)
    topic = unique("before")
    admin = cluster.admin()
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)], timeout_ms=20_000)
    admin.close()
    victim = cluster.nodes[old_controller - 1]
    epoch_before = victim.epochs()[-1]
    victim.kill()
    others = [n for n in cluster.nodes if n is not victim]

    def new_controller():
        m = cluster.metadata(others[0])
        return m.controller_id // 1000 not in (old_controller, -1) and m
    md = wait_until(new_controller, timeout=20, what="a new controller")
    # After the session timeout the killed node is fenced: its brokers leave Metadata
    # and no partition is led from it any more.
    def fenced():
        m = cluster.metadata(others[0])
        return not (victim.broker_ids() & set(m.brokers)) and m
    md = wait_until(fenced, timeout=SESSION_TIMEOUT_MS / 1000 + 15, what="the killed node fenced")
    for p in md.topics[topic].partitions.values():
        assert p.leader // 1000 != victim.id and p.leader in md.brokers, p
        assert all(r // 1000 != victim.id for r in p.isrs), p
    described = subprocess.run([cluster.binary, "cluster", "describe", "--bootstrap-server", others[0].bootstrap],
                               capture_output=True, text=True, timeout=60)
    assert described.returncode == 0, described.stderr
    out = described.stdout
    assert f"Controller: node {md.controller_id // 1000}" in out and "Nodes: 2" in out, out
    under = int(re.search(r"Under-replicated partitions: (\d+)", out).group(1))
    assert under >= 3, f"the topic's partitions lost a replica:\n{out}"
    assert "Offline partitions: 0" in out, out

    # The two remaining nodes are a quorum: creating a topic works (RF=3 needs three nodes).
    admin = cluster.admin(others[1])
    try:
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topics([NewTopic(unique("rf3"), 1, 3)], timeout_ms=20_000)
        after = unique("after")
        admin.create_topics([NewTopic(after, num_partitions=2, replication_factor=2)], timeout_ms=20_000)
    finally:
        admin.close()
    wait_until(lambda: after in cluster.metadata(others[0]).topics, timeout=10, what="topic created without the old controller")

    # The killed node restarts: registered again with a new broker epoch, serving, caught up.
    victim.start()
    victim.wait_serving()
    assert victim.epochs()[-1] > epoch_before, victim.epochs()
    md = wait_until(lambda: (m := cluster.metadata(victim)) and len(m.brokers) == 6 and after in m.topics and m,
                    timeout=20, what="the restarted node back in the cluster")
    assert md.cluster_id == first.cluster_id


def producer_ids(cluster, per_shard=100) -> list[int]:
    """InitProducerId on every shard of every node: blocks come from the metadata log."""
    ids = []
    for n in cluster.nodes:
        for s in range(SHARDS):
            with kw.Conn(n.host, shard_port(cluster.port, s), timeout=20) as conn:
                ids += ids_of(init_producer_ids(conn, per_shard))
    return ids


def test_a_whole_cluster_sigkilled_and_restarted_keeps_every_topic(cluster):
    admin = cluster.admin()
    topics = {unique("kept"): (3, 3), unique("kept"): (2, 2), unique("kept"): (1, 1)}
    try:
        admin.create_topics([NewTopic(t, num_partitions=p, replication_factor=r) for t, (p, r) in topics.items()],
                            timeout_ms=20_000)
    finally:
        admin.close()
    # Another node answered the creation: this one learns of it a moment later, as in Kafka.
    before = wait_until(lambda: (m := cluster.metadata(cluster.nodes[0])) and set(topics) <= set(m.topics) and m,
                        timeout=10, what="the topics on node 1")
    ids = {t: before.topics[t].partitions[0].replicas for t in topics}
    handed_out = producer_ids(cluster)
    for n in cluster.nodes:
        n.kill()
    cluster.start()
    md = wait_until(lambda: (m := cluster.metadata(cluster.nodes[1])) and len(m.brokers) == 6 and m,
                    timeout=30, what="six brokers after the restart")
    assert md.cluster_id == before.cluster_id
    for t, (partitions, replicas) in topics.items():
        assert t in md.topics, f"{t} lost:\n{cluster.logs()}"
        assert len(md.topics[t].partitions) == partitions
        assert md.topics[t].partitions[0].replicas == ids[t]
        assert all(len(p.replicas) == replicas for p in md.topics[t].partitions.values())
    handed_out += producer_ids(cluster)
    assert len(set(handed_out)) == len(handed_out), "a producer id handed out twice, by two nodes or across the crash"
