"""Controlled shutdown (Kafka's KRaft: a broker's heartbeats ask to shut
down, the controller moves its leaderships to in-sync replicas and fences
it, then it stops): SIGTERM on a cluster node hands its partitions over
before the process exits, so clients move at once instead of waiting out
a session timeout. Every check is on the data or on the committed state.
"""

from __future__ import annotations

import re
import signal
import threading

from cluster import Node, cluster  # noqa: F401 (the fixture)
from helpers import wait_until
from test_failover import AckedProducer, check_acked, create_topic, node_of, partitions_of, read_all

PARTITIONS = 3


def led_by(md, node: Node) -> list[tuple[str, int]]:
    """Every partition of every topic whose leader is a shard of `node`."""
    return [(t, p) for t, tm in md.topics.items() for p, pm in tm.partitions.items()
            if pm.leader in node.broker_ids()]


def in_isr_of(md, node: Node) -> list[tuple[str, int]]:
    """Partitions that still count `node` in sync beside another replica."""
    return [(t, p) for t, tm in md.topics.items() for p, pm in tm.partitions.items()
            if len(pm.isrs) > 1 and set(pm.isrs) & node.broker_ids()]


def sigterm(node: Node) -> int:
    """SIGTERM, then wait for the process to exit; its exit status."""
    node.proc.send_signal(signal.SIGTERM)
    status = node.proc.wait(60)
    node.logf.close()
    return status


def test_sigterm_on_the_leaders_node_hands_its_partitions_over_before_it_exits(cluster):
    topic = "handover"
    create_topic(cluster, topic, partitions=PARTITIONS, configs={"min.insync.replicas": "2"})
    producer = AckedProducer(cluster.bootstrap, topic)
    total = 4_000
    writer = threading.Thread(target=producer.send, args=(total, 800))
    writer.start()
    try:
        # Stop the leader of partition 0 while acks=all writes are in flight to it.
        while len(producer.acked) < 1_000 and writer.is_alive():
            writer.join(0.05)
        stopping = cluster.node(node_of(partitions_of(cluster.bootstrap, topic)[0][0]))
        status = sigterm(stopping)
    finally:
        writer.join()
    assert status == 0, f"node {stopping.id} exited with {status}:\n{stopping.log()[-4000:]}"
    assert "controlled shutdown: the quorum fenced this node" in stopping.log(), stopping.log()[-4000:]
    # The state the quorum committed before the process exited: the stopped
    # node leads nothing and is in no ISR beside another replica.
    for other in cluster.running():
        md = cluster.metadata(other)
        assert not led_by(md, stopping), f"node {other.id} still shows node {stopping.id} leading {led_by(md, stopping)}"
        assert not in_isr_of(md, stopping), f"node {stopping.id} still in sync: {in_isr_of(md, stopping)}"

    assert producer.finish() == 0, "records left undelivered"
    assert not producer.errors, f"a delivery error reached the application: {producer.errors[:5]}"
    assert len(producer.acked) == total
    check_acked(producer.acked, read_all(cluster.bootstrap, topic, partitions=PARTITIONS))

    # The node comes back, registers again and rejoins every ISR.
    stopping.start()
    stopping.wait_serving()
    wait_until(lambda: all(len(isr) == 3 for _, _, isr in partitions_of(cluster.bootstrap, topic).values()),
               timeout=60, what=f"node {stopping.id} back in every ISR")


def test_a_whole_cluster_stopped_node_by_node_with_sigterm_and_restarted_loses_nothing_acknowledged(cluster):
    topic = "stopped-in-turn"
    create_topic(cluster, topic, partitions=PARTITIONS, configs={"min.insync.replicas": "2"})
    producer = AckedProducer(cluster.bootstrap, topic)
    producer.send(3_000, per_second=3_000)
    assert producer.finish() == 0 and not producer.errors, producer.errors[:5]
    for node in cluster.nodes:
        status = sigterm(node)
        assert status == 0, f"node {node.id} exited with {status}:\n{node.log()[-4000:]}"
    # The last node has nobody to hand over to (and no quorum): it still stops.
    assert "no other node is up" in cluster.nodes[-1].log()

    cluster.start()
    for node in cluster.nodes:
        assert node.log().split("===== start:")[-1].count("clean_shutdown=true") >= 1, \
            f"node {node.id} did not find its clean-shutdown marker"
    check_acked(producer.acked, read_all(cluster.bootstrap, topic, partitions=PARTITIONS))
    assert len(producer.acked) == 3_000


def test_sigterm_on_the_controller_leaders_node_hands_the_quorum_over_before_it_exits(cluster):
    """The quorum's leader stopping hands its Raft leadership to another
    voter before it exits (as KRaft's controller resigns), so the quorum
    does not go an election timeout without a controller: the stopping
    node's last committed state already names another controller."""
    topic = "quorum-handover"
    create_topic(cluster, topic, partitions=PARTITIONS, configs={"min.insync.replicas": "2"})
    controller = cluster.metadata(cluster.nodes[0]).controller_id
    stopping = cluster.node(controller // 1000)
    status = sigterm(stopping)
    assert status == 0, f"node {stopping.id} exited with {status}:\n{stopping.log()[-4000:]}"
    assert "handing the quorum's leadership over" in stopping.log(), stopping.log()[-4000:]
    done = re.findall(r"controller=Some\((\d+)\).*controlled shutdown: the quorum fenced this node|"
                      r"controlled shutdown: the quorum fenced this node.*controller=Some\((\d+)\)", stopping.log())
    assert done, stopping.log()[-4000:]
    seen = int(next(x for x in done[-1] if x))
    assert seen != stopping.id, f"node {stopping.id} still led the quorum when it exited"
    # The rest of the cluster goes on: a topic created through the new controller.
    create_topic(cluster, topic + "-after", partitions=1, rf=2, configs={})
    stopping.start()
    stopping.wait_serving()
