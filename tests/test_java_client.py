"""The reference client, Apache Kafka's Java client (kafka-clients, pinned in
tests/java/pom.xml), against corelog.

One JVM runs every check of tests/java/src/main/java/dev/corelog/checks
against one broker started with Kafka's defaults, and prints one JSON line per
check: whether it passed, the error if not, and the data it compared. Each test
here asserts one check's outcome and, where the broker's own bytes can say it
independently, reads them back over the wire (producer ids and sequences,
codecs, leaders).
"""

from __future__ import annotations

import json
import struct
import subprocess

import pytest
from kafka.partitioner.default import murmur2

import kafka_java
import kafka_wire as kw
import wire_requests as wr
from helpers import leader_conn

CHECKS = [
    "idempotent_producer", "codecs", "keyed_partitioning", "transactions_refused", "seek_and_timestamps",
    "static_membership", "consumer_protocol", "admin_cluster", "admin_offsets", "admin_configs",
    "admin_group_offsets",
]
# The whole JVM run (about 40 s on 2 cores); a check that hangs is cut after
# its own bound inside the JVM (dev.corelog.checks.Main.CHECK_TIMEOUT_S).
RUN_TIMEOUT_S = 240

# RecordBatch v2 header fields (kafka_wire.split_batches gives the batch starts).
ATTRIBUTES_AT, PRODUCER_ID_AT, PRODUCER_EPOCH_AT, BASE_SEQUENCE_AT, RECORD_COUNT_AT = 21, 43, 51, 53, 57
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@pytest.fixture(scope="module")
def java(module_broker_factory):
    """(broker, {check: result line}, the JVM's stderr) after one run of every check."""
    broker = module_broker_factory()
    cmd = kafka_java.java_cmd("dev.corelog.checks.Main", broker.bootstrap, *CHECKS)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as e:
        # Report what finished; the rest fail as "not reported".
        stdout = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        stderr = f"(the JVM was stopped after {RUN_TIMEOUT_S} s)\n" + (
            (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or ""))
    results = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            results[r["check"]] = r
    return broker, results, stderr


def facts_of(java, check: str) -> dict:
    _, results, stderr = java
    r = results.get(check)
    assert r is not None, f"check {check} was not reported; the JVM's stderr ends:\n{stderr[-4000:]}"
    assert r["ok"], f"{check} failed: {r['error']}\nfacts: {json.dumps(r['facts'], indent=1)}"
    return r["facts"]


def batch_headers(broker, topic, partition, end_offset):
    """[(codec, producer id, epoch, base sequence, record count)] of the stored batches, read raw."""
    out, offset = [], 0
    with leader_conn(broker, topic, partition) as conn:
        while offset < end_offset:
            _, answer = wr.fetch_v4(conn, [(topic, [(partition, offset, 8 << 20)])])
            (_, [(_, err, _hw, records)]), = answer
            assert err == 0, f"fetch {topic}-{partition} at {offset}: error {err}"
            batches = [(pos, size, base) for pos, size, base, _ in kw.split_batches(records)]
            assert batches, f"no whole batch at offset {offset}"
            for pos, size, base in batches:
                b = records[pos:pos + size]
                attributes, = struct.unpack_from(">h", b, ATTRIBUTES_AT)
                producer_id, epoch, sequence, count = struct.unpack_from(">qhii", b, PRODUCER_ID_AT)
                out.append((attributes & 7, producer_id, epoch, sequence, count))
                offset = base + count
    return out


def test_idempotent_producer_defaults_exactly_once_in_order(java):
    """No settings: acks=all and enable.idempotence=true. 5,000 records acknowledged at
    offsets 0..4999 and read back once each, in order; the stored batches carry one producer
    id with contiguous sequences (so the producer really was idempotent)."""
    facts = facts_of(java, "idempotent_producer")
    assert (facts["acked"], facts["read"], facts["end_offset"]) == (5000, 5000, 5000)
    headers = batch_headers(java[0], facts["topic"], 0, 5000)
    producer_ids = {pid for _, pid, _, _, _ in headers}
    assert len(producer_ids) == 1 and min(producer_ids) >= 0, producer_ids
    assert {epoch for _, _, epoch, _, _ in headers} == {0}
    expected_sequence = 0
    for _, _, _, sequence, count in headers:
        assert sequence == expected_sequence, headers
        expected_sequence += count
    assert expected_sequence == 5000


def test_every_codec_round_trips(java):
    """none, gzip, snappy, lz4, zstd: keys, values, headers and timestamps come back as sent,
    and the broker stored each codec's batches as the producer compressed them."""
    facts = facts_of(java, "codecs")
    assert facts["records_per_codec"] == 400
    for codec, partition in facts["partition_of_codec"].items():
        headers = batch_headers(java[0], facts["topic"], partition, 400)
        assert {c for c, *_ in headers} == {CODEC_IDS[codec]}, (codec, headers[:3])
        assert sum(count for *_, count in headers) == 400
        if codec != "none":
            assert len(headers) < 400, f"{codec}: {len(headers)} batches, expected several records per batch"


def test_keyed_records_land_where_murmur2_says(java):
    """The Java default partitioner: toPositive(murmur2(key)) % partitions, each record read
    back from that partition (checked in the JVM for 700 keys); the sample agrees with
    kafka-python's murmur2 as well."""
    facts = facts_of(java, "keyed_partitioning")
    assert sum(facts["records_per_partition"].values()) == 700
    assert len(facts["records_per_partition"]) == 7
    for key, partition in facts["partition_of_key"].items():
        assert (murmur2(key.encode()) & 0x7FFFFFFF) % 7 == partition, key


def test_transactional_producer_is_refused_at_once(java):
    """corelog serves no transactions: initTransactions fails within 10 s with a message
    that says so (before: it retried COORDINATOR_NOT_AVAILABLE until max.block.ms), and
    the AdminClient's fenceProducers gets UnsupportedVersionException."""
    facts = facts_of(java, "transactions_refused")
    assert facts["init_transactions_ms"] < 10_000
    assert "transactions are not supported" in facts["init_transactions_error"]
    assert facts["fence_producers_error"] == "UnsupportedVersionException"
    assert facts["fence_producers_ms"] < 10_000


def test_seek_and_offsets_for_times(java):
    facts = facts_of(java, "seek_and_timestamps")
    assert facts["after_seek_50"] == 50
    assert (facts["position_after_seek_to_beginning"], facts["after_seek_to_beginning"]) == (0, 0)
    assert facts["position_after_seek_to_end"] == 100
    assert facts["offsets_for_times"] == {
        "base+25000": 25, "base+25500": 26, "base+-5000": 0, "base+99000": 99, "after_last": None}


def test_static_members_restart_without_a_rebalance(java):
    """Cooperative-sticky, group.instance.id: each member in turn closed and restarted within
    session.timeout.ms. The other member's listener sees nothing, the generation stays, the
    restarted member gets its partitions back at its committed offsets, and over all the
    members' lives every record is consumed exactly once."""
    facts = facts_of(java, "static_membership")
    generation = facts["generation"]
    assert set(facts["restarts"]) == {"member-a", "member-b"}
    for member, r in facts["restarts"].items():
        assert r["partitions_after"] == r["partitions_before"] and r["partitions_before"], member
        assert r["generation_after"] == r["other_generation_after"] == generation, member
        assert r["other_events_during_restart"] == [], member
        assert r["first_offset_after_restart"] == r["committed_at_close"], member
        assert all(offset > 0 for offset in r["committed_at_close"].values()), member
    assert facts["produced"] == facts["consumed_distinct"] == 4 * 30 * 3
    assert facts["consumed_twice"] == []


def test_consumer_group_protocol_fails_clearly(java):
    """group.protocol=consumer (KIP-848): corelog does not advertise ConsumerGroupHeartbeat,
    so the consumer's first poll fails with UnsupportedVersionException, not a hang."""
    facts = facts_of(java, "consumer_protocol")
    assert facts["error_class"] == "org.apache.kafka.common.errors.UnsupportedVersionException"
    assert "does not support the new CONSUMER group protocol" in facts["error_message"]
    assert facts["ms_to_error"] < 10_000


def test_admin_describe_cluster_and_topics(java):
    """describeCluster: one node per shard, the controller among them; describeTopics by name
    and by id: each partition's leader is the shard Metadata names, replicas = isr = [leader]."""
    broker = java[0]
    facts = facts_of(java, "admin_cluster")
    nodes = sorted((n["id"], n["host"], n["port"]) for n in facts["nodes"])
    assert nodes == [(s, broker.host, broker.port + s) for s in range(broker.shards)]
    assert facts["controller"] in {n[0] for n in nodes}
    with broker.wire(0) as c:
        _, topics = c.metadata([facts["topic"]])
    _, wire_partitions = topics[facts["topic"]]
    for p in facts["partitions"]:
        assert p["leader"] == wire_partitions[p["partition"]][1]
        assert p["replicas"] == p["isr"] == [p["leader"]]
    assert facts["described_by_id"] == facts["topic"]
    assert facts["describe_missing_topic"] == "UnknownTopicOrPartitionException"


def test_admin_list_offsets_and_delete_records(java):
    facts = facts_of(java, "admin_offsets")
    t = facts["topic"]
    p0, p1 = f"{t}-0", f"{t}-1"
    assert facts["earliest"] == {p0: 0, p1: 0}
    assert facts["latest"] == {p0: 10, p1: 10}
    assert facts["for_timestamp_base_plus_4500"] == {p0: 5, p1: 5}
    assert facts["for_timestamp_after_last"] == {p0: -1, p1: -1}
    assert facts["delete_before_4_low_watermark"] == 4
    assert facts["earliest_after_delete"] == {p0: 4, p1: 0}
    assert facts["latest_after_delete"] == {p0: 10, p1: 10}
    assert facts["consumed_after_delete"] == [4, 5, 6, 7, 8, 9]
    assert facts["delete_past_end"] == "OffsetOutOfRangeException"
    assert facts["delete_all_low_watermark"] == 10


def test_admin_incremental_alter_configs(java):
    facts = facts_of(java, "admin_configs")
    assert facts["after_set"] == {
        "cleanup.policy": ["delete,compact", "DYNAMIC_TOPIC_CONFIG"],
        "max.message.bytes": ["2000000", "DYNAMIC_TOPIC_CONFIG"],
        "retention.ms": ["3600000", "DYNAMIC_TOPIC_CONFIG"],
    }
    assert facts["after_delete"] == {
        "cleanup.policy": ["delete", "DYNAMIC_TOPIC_CONFIG"],
        "max.message.bytes": ["2000000", "DYNAMIC_TOPIC_CONFIG"],
        "retention.ms": ["604800000", "DEFAULT_CONFIG"],
    }
    assert facts["after_validate_only"] == {"segment.ms": ["604800000", "DEFAULT_CONFIG"]}
    assert facts["bad_value"] == "InvalidConfigurationException"


def test_admin_consumer_group_offsets(java):
    facts = facts_of(java, "admin_group_offsets")
    assert facts["listed"] == {"0": [5, "meta-a"], "1": [7, ""]}
    assert facts["after_alter"] == {"0": [2, ""], "1": [9, ""]}
    assert facts["group_consumer_starts_at"] == {"0": 2, "1": 9}
    assert facts["described"]["state"] == "STABLE" and facts["described"]["assigned"] == [0, 1]
    assert facts["alter_active_group"] == "UnknownMemberIdException"
    assert facts["state_after_close"] == "EMPTY"
