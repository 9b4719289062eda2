"""A data directory written before issue 15 keeps working.

tests/fixtures/shards_v1 was written by the binary of that time (see
make_shards_v1.py beside it): its metadata log places each partition on a
shard alone (`"shards":[...]`). Today's binary, started on a copy, reads it
as one replica per partition on (this node, that shard), rewrites the log in
the replica format once, and serves everything the old one stored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource

from helpers import QUIET, admin, consume, leaders

FIXTURE = Path(__file__).parent / "fixtures" / "shards_v1"
METADATA_LOG = "__cluster_metadata.log"
MIGRATED = "metadata log migrated"
# What make_shards_v1.py stored: (partitions, leader shard of each, configs).
TOPICS = {
    "orders": (4, [0, 1, 0, 1], {"cleanup.policy": "delete", "retention.ms": "-1"}),
    "profiles": (2, [1, 0], {"cleanup.policy": "compact", "segment.bytes": "1048576", "min.compaction.lag.ms": "1000"}),
}
RECORDS_PER_TOPIC = 20
GROUP = "upgrade-group"
COMMITTED = {0: 5, 1: 3}


def started_on_fixture(broker_factory):
    b = broker_factory(start=False)
    shutil.rmtree(b.data_dir)
    shutil.copytree(FIXTURE, b.data_dir)
    return b.start()


def check_everything_reads_back(b):
    a = admin(b.bootstrap)
    for topic, (partitions, shards, configs) in TOPICS.items():
        # Node 0's shards keep the broker ids they had: leader = shard.
        assert leaders(b.bootstrap, topic) == dict(enumerate(shards)), topic
        described = a.describe_configs([ConfigResource("topic", topic)])
        entries = next(iter(described.values())).result(20)
        assert {k: entries[k].value for k in configs} == configs, topic
        got = consume(b.bootstrap, topic, list(range(partitions)),
                      expect={p: RECORDS_PER_TOPIC // partitions for p in range(partitions)})
        for p, records in got.items():
            expected = [(f"k{i}".encode(), f"{topic}-{i}".encode()) for i in range(p, RECORDS_PER_TOPIC, partitions)]
            assert [(k, v) for _, k, v in records] == expected, (topic, p)
            assert [o for o, _, _ in records] == list(range(len(expected))), (topic, p)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": GROUP, "enable.auto.commit": False, **QUIET})
    try:
        committed = c.committed([TopicPartition("orders", p) for p in COMMITTED], timeout=20)
    finally:
        c.close()
    assert {tp.partition: tp.offset for tp in committed} == COMMITTED


def test_a_shard_placed_data_directory_is_migrated_once_and_reads_back(broker_factory):
    b = started_on_fixture(broker_factory)
    log = b.run_log()
    assert log.count(MIGRATED) == 1, log
    text = (b.data_dir / METADATA_LOG).read_text()
    assert '"shards"' not in text and '"replicas"' in text, text
    assert len(text.splitlines()) == 5, "every record kept, none added"
    assert "node.id=0\n" in (b.data_dir / "meta.properties").read_text(), "the directory is node 0's from now on"
    check_everything_reads_back(b)

    # The second start finds nothing to migrate and the same data.
    b.stop()
    assert b.returncode == 0
    b.start()
    assert MIGRATED not in b.run_log()
    assert (b.data_dir / METADATA_LOG).read_text() == text
    check_everything_reads_back(b)


def test_a_migrated_directory_survives_sigkill(broker_factory):
    """SIGKILL right after the migrating start: the rewritten metadata log
    is durable (temp, fsync, rename, directory fsync), so the next start
    migrates nothing and every record and the committed offset are there."""
    b = started_on_fixture(broker_factory)
    assert b.run_log().count(MIGRATED) == 1
    text = (b.data_dir / METADATA_LOG).read_text()
    b.kill()
    b.start()
    assert MIGRATED not in b.run_log()
    assert (b.data_dir / METADATA_LOG).read_text() == text
    check_everything_reads_back(b)
