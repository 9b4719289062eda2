"""--node-id: a node's shards are Kafka brokers node.id × 1000 + shard, and
every answer that names a broker (Metadata's brokers, leaders and replicas,
FindCoordinator, DescribeConfigs of a broker) uses those ids."""

from __future__ import annotations

import subprocess

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource

from helpers import QUIET, admin, consume, create_topic, leaders, produce, unique

NODE = 2
BROKERS = {NODE * 1000 + s for s in range(2)}


def test_a_node_id_names_the_brokers_of_its_shards(broker_factory):
    b = broker_factory(**{"node-id": NODE})
    with b.wire(0) as c:
        brokers, _ = c.metadata([])
    assert brokers == {NODE * 1000 + s: (b.host, b.shard_port(s)) for s in range(2)}

    topic = create_topic(b.bootstrap, unique("node-id"), partitions=4)
    assert set(leaders(b.bootstrap, topic).values()) == BROKERS, "partitions spread over both shards"
    md = admin(b.bootstrap).list_topics(topic, timeout=10).topics[topic]
    assert all(p.replicas == [p.leader] and p.isrs == [p.leader] for p in md.partitions.values())
    produce(b.bootstrap, topic, [(p, None, f"v{p}".encode()) for p in range(4)])
    got = consume(b.bootstrap, topic, list(range(4)), expect={p: 1 for p in range(4)})
    assert {p: [v for _, _, v in r] for p, r in got.items()} == {p: [f"v{p}".encode()] for p in range(4)}

    # A group's coordinator is found and serves commits under its broker id.
    group = unique("g")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False, **QUIET})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        assert [tp.offset for tp in c.committed([TopicPartition(topic, 0)], timeout=20)] == [1]
    finally:
        c.close()

    a = admin(b.bootstrap)
    for broker_id in BROKERS:
        resource = ConfigResource("broker", str(broker_id))
        configs = next(iter(a.describe_configs([resource]).values())).result(20)
        assert configs["node.id"].value == str(NODE)


def test_a_node_id_past_the_broker_id_range_is_refused_at_start(broker_factory):
    b = broker_factory(start=False, **{"node-id": 2_147_483})
    run = subprocess.run(b.command(), capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "node.id 2147483 is out of range" in run.stderr, run.stderr


def test_a_data_directory_refuses_another_node_id(broker_factory):
    b = broker_factory()
    b.stop()
    b.args["node-id"] = 1
    run = subprocess.run(b.command(), capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "the data directory belongs to node.id 0, not 1" in run.stderr, run.stderr
    del b.args["node-id"]
    b.start()
