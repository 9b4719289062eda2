"""A cluster of three `corelog serve` processes on 127.0.0.1, .2 and .3 (two
shards each), with a Raft controller quorum (issue 16): every node registers
and its shards are brokers, topics are created with RF=3 on three nodes, the
controller leader SIGKILLed is replaced and the cluster goes on, the killed
node comes back with a new broker epoch, and a whole cluster SIGKILLed and
restarted keeps every topic. Metadata only: data replication is tested
elsewhere. Driven with kafka-python's admin client and librdkafka."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import InvalidReplicationFactorError

import kafka_wire as kw
from conftest import corelog_bin
from helpers import QUIET, unique, wait_until
from test_producer_ids import ids_of, init_producer_ids

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
SHARDS = 2
SESSION_TIMEOUT_MS = 3_000
START_TIMEOUT = 60.0


def _free_everywhere(port: int) -> bool:
    for host in HOSTS:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _ports() -> tuple[int, int]:
    """(shard base port, controller port), free on every host. As in the
    issue's command (--port 9092, voters on :9093), the controller port is
    base + 1, inside the shards' range: shard 1 steps over it to base + 2."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + SHARDS + 1 < 65535 and all(_free_everywhere(base + i) for i in range(SHARDS + 1)):
            return base, base + 1
    raise RuntimeError("no free ports")


def shard_port(base: int, shard: int) -> int:
    return base + shard + (1 if shard >= 1 else 0)


class Node:
    def __init__(self, cluster: "Cluster", node_id: int):
        self.cluster, self.id, self.host = cluster, node_id, HOSTS[node_id - 1]
        self.data_dir = cluster.dir / f"node{node_id}"
        self.log_path = cluster.dir / f"node{node_id}.log"
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.cluster.port}"

    def broker_ids(self) -> set[int]:
        return {self.id * 1000 + s for s in range(SHARDS)}

    def start(self):
        c = self.cluster
        cmd = [
            c.binary, "serve", "--node-id", str(self.id), "--host", self.host, "--port", str(c.port),
            "--shards", str(SHARDS), "--data-dir", str(self.data_dir),
            "--controller-quorum-voters", c.voters,
            "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
            "--broker-heartbeat-interval-ms", "500",
        ]
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        with open(self.log_path, "ab") as f:
            f.write(f"\n===== start: {' '.join(cmd)}\n".encode())
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
                                     start_new_session=True, env=env)

    def wait_serving(self, timeout=START_TIMEOUT):
        def serving():
            assert self.proc.poll() is None, f"node {self.id} exited:\n{self.log()}"
            return self.log().count("shard serving") >= SHARDS * self.starts()
        wait_until(serving, timeout=timeout, what=f"node {self.id} serving")

    def starts(self) -> int:
        return self.log().count("===== start:")

    def epochs(self) -> list[int]:
        return [int(m) for m in re.findall(r"broker_epoch=(\d+)", self.log())]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.logf.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.logf.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    def __init__(self, binary: str, dir: Path):
        self.binary, self.dir = binary, dir
        self.port, self.controller_port = _ports()
        self.voters = ",".join(f"{i + 1}@{h}:{self.controller_port}" for i, h in enumerate(HOSTS))
        self.nodes = [Node(self, i + 1) for i in range(len(HOSTS))]

    def start(self):
        # Every node waits for a quorum before it serves: they start together.
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_serving()

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def admin(self, node: Node | None = None) -> KafkaAdminClient:
        nodes = [node] if node else self.running()
        return KafkaAdminClient(bootstrap_servers=[n.bootstrap for n in nodes], request_timeout_ms=20_000)

    def metadata(self, node: Node):
        return AdminClient({"bootstrap.servers": node.bootstrap, **QUIET}).list_topics(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"----- node {n.id}\n{n.log()[-6000:]}" for n in self.nodes)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(corelog_bin(), tmp_path)
    try:
        c.start()
        yield c
    finally:
        for n in c.nodes:
            if n.proc:
                n.kill()


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
