"""Partition directories that outlive their replica (Kafka's stray
replicas, KAFKA-14616): a topic deleted while a node is down and created
again under the same name must not find the old topic's records in the
returning node's directory, and a deleted topic's files do not stay on a
node that was down when it was deleted. Checked on the data: the segment
files of the returning node.
"""

from __future__ import annotations

import sys
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import cluster  # noqa: F401 (the fixture)
from conftest import broker_factory  # noqa: F401 (the fixture)
from helpers import QUIET, wait_until
from test_failover import create_topic, partitions_of, read_all

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools" / "chaos"))
import dump_log  # noqa: E402

OLD, NEW = 40, 20


def produce(bootstrap: str, topic: str, values: list[str]):
    """One batch per record: a returning replica that kept an old log would
    keep whole batches of it below the new leader's log end."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **QUIET})
    for v in values:
        producer.produce(topic, v.encode(), partition=0)
        assert producer.flush(30) == 0


def values_on_disk(partition_dir: Path) -> list[str]:
    return [v for b in dump_log.batches(partition_dir) if not b["control"] for v in b["values"]]


def test_a_topic_deleted_and_created_again_while_a_node_was_down_starts_empty_there(cluster):
    topic, returning = "reborn", cluster.node(3)
    create_topic(cluster, topic, assignment=[[1000, 2000, 3000]])
    produce(cluster.bootstrap, topic, [f"old-{i}" for i in range(OLD)])
    wait_until(lambda: len(values_on_disk(returning.data_dir / f"{topic}-0")) == OLD,
               timeout=30, what="node 3 holding the old topic's records")
    create_topic(cluster, "gone", assignment=[[1000, 2000, 3000]])
    wait_until(lambda: (returning.data_dir / "gone-0").is_dir(), timeout=30, what="gone-0 on node 3")

    returning.kill()
    # Node 3 may have led the controller quorum: ask once another does.
    wait_until(lambda: cluster.metadata(cluster.node(1)).controller_id // 1000 not in (-1, 3), timeout=30,
               what="a controller other than node 3")
    admin = AdminClient({"bootstrap.servers": cluster.node(1).bootstrap, **QUIET})
    for name in (topic, "gone"):
        admin.delete_topics([name])[name].result(30)
    wait_until(lambda: topic not in admin.list_topics(timeout=5).topics, timeout=30, what="the topic deleted")
    # The same name again, with a replica on the node that is down.
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1000, 2000, 3000]])])[topic].result(30)
    wait_until(lambda: partitions_of(cluster.node(1).bootstrap, topic)[0][0] >= 0, timeout=60,
               what="the new topic led")
    produce(cluster.node(1).bootstrap, topic, [f"new-{i}" for i in range(NEW)])

    returning.start()
    returning.wait_serving()
    wait_until(lambda: len(partitions_of(cluster.bootstrap, topic)[0][2]) == 3, timeout=60,
               what="node 3 back in the new topic's ISR")
    on_node_3 = values_on_disk(returning.data_dir / f"{topic}-0")
    assert on_node_3 == [f"new-{i}" for i in range(NEW)], \
        f"node 3's replica of the new topic holds {len(on_node_3)} records, first {on_node_3[:3]}"
    assert not (returning.data_dir / "gone-0").exists(), "a deleted topic's directory stayed on node 3"
    assert "stray partition directory removed" in returning.log()
    values = [v for _, v in read_all(cluster.bootstrap, topic, partitions=1)[0]]
    assert values == [f"new-{i}".encode() for i in range(NEW)]


def test_a_data_directory_that_lost_its_metadata_log_refuses_to_start_and_keeps_its_partitions(broker_factory):
    """A single node's metadata log gone (deleted by hand, a restore that
    missed it) leaves partition directories whose topics it no longer
    knows: starting afresh would sweep them away as strays. The node
    refuses to start, names the directory, and the records are still there
    once the log is put back."""
    import shutil
    import subprocess

    from helpers import consume, create_topic, unique

    b = broker_factory()
    topic = create_topic(b.bootstrap, unique("orphans"), partitions=1)
    produce(b.bootstrap, topic, [f"kept-{i}" for i in range(5)])
    b.stop()
    metadata_log = b.data_dir / "__cluster_metadata.log"
    shutil.move(metadata_log, b.data_dir.parent / "saved-metadata.log")
    run = subprocess.Popen(b.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = run.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        run.kill()
        _, stderr = run.communicate()
    partition_dir = b.data_dir / f"{topic}-0"
    assert partition_dir.is_dir() and values_on_disk(partition_dir) == [f"kept-{i}" for i in range(5)], (
        "the records did not survive the start without a metadata log")
    assert run.returncode not in (0, None, -9), "started without its metadata log"
    assert "partition directories" in stderr and "no metadata log" in stderr, stderr

    shutil.move(b.data_dir.parent / "saved-metadata.log", metadata_log)
    b.start()
    got = consume(b.bootstrap, topic, [0], expect={0: 5})
    assert [v for _, _, v in got[0]] == [f"kept-{i}".encode() for i in range(5)]
