"""DescribeCluster (KIP-700) with real clients, on a single node and on a
cluster: every shard is a broker (node × 1000 + shard) at its host and
port, the controller is one of them, the cluster id is Metadata's, and
the cluster's authorized operations are all of them (no authorizer).
Kafka's own `kafka-cluster.sh cluster-id` reads the id through the Java
AdminClient's describeCluster.
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient
from kafka.errors import KafkaConnectionError

from cluster import Cluster, cluster  # noqa: F401 (the fixture)
from helpers import QUIET, wait_until
from kafka_java import kafka_tool

# Kafka's cluster resource operations, all granted without an authorizer.
CLUSTER_OPERATIONS = {"CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
                      "IDEMPOTENT_WRITE"}


def described(bootstrap: str) -> dict:
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000).describe_cluster()


def operation_names(ops) -> set[str]:
    return {getattr(op, "name", str(op)).upper() for op in ops}


def check(bootstrap: str, brokers: dict[int, tuple[str, int]]):
    """DescribeCluster as kafka-python, confluent-kafka and Kafka's tool see it."""
    metadata = AdminClient({"bootstrap.servers": bootstrap, **QUIET}).list_topics(timeout=10)
    d = described(bootstrap)
    assert {b["broker_id"]: (b["host"], b["port"]) for b in d["brokers"]} == brokers, d
    assert all(b["rack"] is None and not b["is_fenced"] for b in d["brokers"]), d
    assert d["cluster_id"] == metadata.cluster_id
    assert d["controller_id"] in brokers and d["controller_id"] == metadata.controller_id
    assert operation_names(d["authorized_operations"]) == CLUSTER_OPERATIONS, d["authorized_operations"]

    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})  # kept alive until the answer comes
    c = admin.describe_cluster(include_authorized_operations=True).result(20)
    assert c.cluster_id == metadata.cluster_id
    assert {n.id: (n.host, n.port) for n in c.nodes} == brokers
    assert c.controller.id == metadata.controller_id
    assert operation_names(c.authorized_operations) == CLUSTER_OPERATIONS

    out = kafka_tool("kafka-cluster", "cluster-id", "--bootstrap-server", bootstrap).stdout
    assert f"Cluster ID: {metadata.cluster_id}" in out, out


def test_describe_cluster_on_a_single_node(broker):
    host, port = broker.bootstrap.split(":")
    check(broker.bootstrap, {s: (host, int(port) + s) for s in range(broker.shards)})


def test_describe_cluster_on_a_cluster(cluster):  # noqa: F811 (the fixture)
    from cluster import shard_port
    brokers = {n.id * 1000 + s: (n.host, shard_port(cluster.port, s)) for n in cluster.nodes for s in range(cluster.shards)}
    for node in cluster.nodes:
        check(node.bootstrap, brokers)
    # A node down is fenced after its session: gone from the brokers, listed as fenced when asked.
    cluster.node(3).kill()

    def fenced():
        try:
            return {b["broker_id"] for b in described(cluster.node(1).bootstrap)["brokers"] if b["is_fenced"]}
        except KafkaConnectionError:  # the client tried node 3's brokers first
            return None
    wait_until(lambda: fenced() == {3000, 3001}, timeout=30, what="node 3 listed as fenced")
    admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap, **QUIET})
    c = admin.describe_cluster().result(20)
    assert {n.id for n in c.nodes} == {1000, 1001, 2000, 2001}
