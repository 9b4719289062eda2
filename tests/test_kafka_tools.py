"""Apache Kafka's own command-line tools (4.x, run from their Maven Central
jars by tests/kafka_java.py) against corelog: the commands of Kafka's
quickstart and operations guide, verbatim, checked against the data.

One broker for the module (2 shards = 2 Kafka brokers); each test has its own
topic. Each tool is a JVM start (about 2 s here), so each test runs only the
commands it checks; data is produced and checked with confluent-kafka where a
tool is not the point.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka import ConsumerGroupTopicPartitions

from helpers import QUIET, create_topic, leaders, produce, unique, watermarks
from kafka_java import kafka_tool


@pytest.fixture(scope="module")
def b(module_broker_factory):
    # As Kafka's own config/server.properties for a single node: groups form at once.
    return module_broker_factory(**{"num-partitions": 3, "group-initial-rebalance-delay-ms": 0})


def lines_like(text: str, pattern: str) -> list[re.Match]:
    """Lines of a tool's output that match `pattern` whole (tools mix warnings into stdout)."""
    return [m for m in (re.fullmatch(pattern, line) for line in text.splitlines()) if m]


def table(text: str, first_column: str = "GROUP") -> list[dict[str, str]]:
    """The rows of kafka-consumer-groups' tables (a header starting with `first_column`, then rows)."""
    rows, header = [], None
    for line in text.splitlines():
        cells = line.split()
        if not cells:
            header = None
        elif cells[0] == first_column:
            header = cells
        elif header is not None:
            rows.append(dict(zip(header, cells)))
    return rows


def produce_counts(bootstrap, topic, counts: dict[int, int]) -> dict[int, list[bytes]]:
    """{partition: n} records with values p<partition>-<i>, to explicit partitions -> the values."""
    items = [(p, None, f"p{p}-{i}".encode()) for p, n in counts.items() for i in range(n)]
    produce(bootstrap, topic, items)
    return {p: [f"p{p}-{i}".encode() for i in range(n)] for p, n in counts.items()}


def offsets_from_tool(output: str, topic: str) -> dict[int, int]:
    """kafka-get-offsets prints topic:partition:offset per line."""
    return {int(m[1]): int(m[2]) for m in lines_like(output, rf"{re.escape(topic)}:(\d+):(-?\d+)")}


def console_consume(b, topic, count, *extra) -> list[tuple[int, int, str, str]]:
    """kafka-console-consumer printing partition, offset, key and value -> [(partition, offset, key, value)]."""
    out = kafka_tool(
        "kafka-console-consumer", "--bootstrap-server", b.bootstrap, "--topic", topic, "--from-beginning",
        "--property", "print.key=true", "--property", "print.partition=true", "--property", "print.offset=true",
        "--property", "key.separator=|", "--max-messages", str(count), "--timeout-ms", "20000", *extra,
    ).stdout
    got = [(int(m[1]), int(m[2]), m[3], m[4]) for m in lines_like(out, r"Partition:(\d+)\|Offset:(\d+)\|([^|]*)\|(.*)")]
    assert len(got) == count, f"expected {count} records, got {len(got)}:\n{out}"
    return got


# ---------------------------------------------------------------- kafka-topics ---

def test_kafka_topics_create_list_describe(b):
    topic = unique("tools-topics")
    out = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
                     "--partitions", "3", "--replication-factor", "1").stdout
    assert f"Created topic {topic}." in out

    listed = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--list").stdout.split()
    assert topic in listed and "__consumer_offsets" in listed

    out = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--describe", "--topic", topic).stdout
    summary = lines_like(out, rf"Topic: {re.escape(topic)}\tTopicId: (\S+)\tPartitionCount: (\d+)\t"
                              r"ReplicationFactor: (\d+)\tConfigs: (.*)")
    assert len(summary) == 1, out
    assert summary[0][2] == "3" and summary[0][3] == "1" and summary[0][4] == "", out
    parts = lines_like(out, rf"\tTopic: {re.escape(topic)}\tPartition: (\d+)\tLeader: (\d+)\tReplicas: (\d+)"
                            r"\tIsr: (\d+)\t.*")
    described = {int(m[1]): (int(m[2]), int(m[3]), int(m[4])) for m in parts}
    # Every partition led by the shard Metadata names, which is its only replica and in sync.
    assert described == {p: (leader, leader, leader) for p, leader in leaders(b.bootstrap, topic).items()}, out
    assert set(described) == {0, 1, 2} and {leader for leader, _, _ in described.values()} == {0, 1}, out


# ------------------------------------------------- console producer / consumer ---

def test_console_producer_and_consumer_round_trip_keys_and_values(b):
    topic = unique("tools-console")
    kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "1")
    # Keys spread over the partitions; values with the separator, spaces, non-ASCII, and empty.
    sent = [(f"key-{i % 7}", f"value {i}: ünïcödé ✓ {'x' * (i % 5)}") for i in range(40)]
    sent += [("empty", ""), ("colons", "a:b:c")]
    lines = "".join(f"{k}:{v}\n" for k, v in sent)
    kafka_tool("kafka-console-producer", "--bootstrap-server", b.bootstrap, "--topic", topic,
               "--property", "parse.key=true", "--property", "key.separator=:", input=lines)

    out = kafka_tool("kafka-console-consumer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                     "--from-beginning", "--property", "print.key=true", "--property", "key.separator=:",
                     "--max-messages", str(len(sent)), "--timeout-ms", "20000")
    got = [tuple(line.split(":", 1)) for line in out.stdout.splitlines() if ":" in line and not
           line.startswith(("Warning", "Option"))]
    assert sorted(got) == sorted(sent), out.stdout
    # Each key's values in the order sent (one key, one partition).
    for key in {k for k, _ in sent}:
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key], key
    assert f"Processed a total of {len(sent)} messages" in out.stderr


# ------------------------------------------------------- kafka-consumer-groups ---

def test_consumer_groups_lag_reset_to_earliest_and_delete(b):
    topic, group = unique("tools-groups"), unique("tools-group")
    kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "1")
    sizes = {0: 6, 1: 9, 2: 12}
    values = produce_counts(b.bootstrap, topic, sizes)

    # Consume 10 of 27 in the group; on close it commits exactly what it printed.
    consumed = console_consume(b, topic, 10, "--group", group)
    read = {p: sum(1 for q, _, _, _ in consumed if q == p) for p in sizes}
    for p, offset, _, value in consumed:
        assert value.encode() == values[p][offset]

    assert group in kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--list").stdout.split()
    rows = table(kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap,
                            "--describe", "--group", group).stdout)
    described = {int(r["PARTITION"]): r for r in rows}
    assert {r["TOPIC"] for r in rows} == {topic} and {r["GROUP"] for r in rows} == {group}, rows
    for p, size in sizes.items():
        if p not in described:
            assert read[p] == 0, (p, read, rows)  # never fetched, so never committed
            continue
        r = described[p]
        assert (int(r["CURRENT-OFFSET"]), int(r["LOG-END-OFFSET"]), int(r["LAG"])) == \
            (read[p], size, size - read[p]), (p, read, rows)
        assert r["CONSUMER-ID"] == "-", r  # the console consumer has left

    # Records before offset 5 of partition 2 deleted: its earliest is now 5.
    admin = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})
    admin.delete_records([TopicPartition(topic, 2, 5)])[TopicPartition(topic, 2, 5)].result(20)
    starts = {0: 0, 1: 0, 2: 5}

    reset = ("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--reset-offsets", "--group", group,
             "--topic", topic, "--to-earliest")
    plan = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in table(kafka_tool(*reset, "--dry-run").stdout)}
    assert plan == starts
    after_dry_run = table(kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap,
                                     "--describe", "--group", group).stdout)
    assert after_dry_run == rows, "--dry-run must not change the committed offsets"

    executed = {int(r["PARTITION"]): int(r["NEW-OFFSET"]) for r in table(kafka_tool(*reset, "--execute").stdout)}
    assert executed == starts
    rows = table(kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap,
                            "--describe", "--group", group).stdout)
    assert {int(r["PARTITION"]): (int(r["CURRENT-OFFSET"]), int(r["LAG"])) for r in rows} == \
        {p: (starts[p], sizes[p] - starts[p]) for p in sizes}, rows

    # A member of the group now reads everything from the log start again, once.
    left = sum(sizes.values()) - starts[2]
    again = console_consume(b, topic, left, "--group", group)
    assert sorted((p, o) for p, o, _, _ in again) == \
        sorted((p, o) for p in sizes for o in range(starts[p], sizes[p]))
    assert all(value.encode() == values[p][o] for p, o, _, value in again)

    out = kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--delete", "--group", group).stdout
    assert f"Deletion of requested consumer groups ('{group}') was successful." in out
    assert group not in kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap,
                                   "--list").stdout.split()
    out = kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--describe", "--group", group)
    assert f"Consumer group '{group}' does not exist." in out.stdout + out.stderr


def test_consumer_groups_delete_offsets_of_one_topic(b):
    topic, other, group = unique("tools-deloff"), unique("tools-deloff-other"), unique("tools-deloff-group")
    create_topic(b.bootstrap, topic, partitions=3)
    create_topic(b.bootstrap, other, partitions=1)
    produce_counts(b.bootstrap, topic, {0: 3, 1: 2, 2: 1})
    produce_counts(b.bootstrap, other, {0: 4})
    # The tool itself commits for the group (which has no members): the end of both topics.
    kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--reset-offsets", "--group", group,
               "--topic", topic, "--topic", other, "--to-latest", "--execute")

    out = kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap, "--delete-offsets",
                     "--group", group, "--topic", topic).stdout
    assert f"Request succeeded for deleting offsets from group {group}." in out, out
    assert {(r["TOPIC"], int(r["PARTITION"]), r["STATUS"]) for r in table(out, "TOPIC")} == \
        {(topic, p, "Successful") for p in range(3)}, out

    def committed():
        admin = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})
        listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(20)
        return {(tp.topic, tp.partition): tp.offset for tp in listed.topic_partitions}

    rows = table(kafka_tool("kafka-consumer-groups", "--bootstrap-server", b.bootstrap,
                            "--describe", "--group", group).stdout)
    assert [(r["TOPIC"], int(r["PARTITION"]), int(r["CURRENT-OFFSET"])) for r in rows] == [(other, 0, 4)], rows
    # The deletion is durable: tombstones in the offsets topic.
    b.restart()
    assert committed() == {(other, 0): 4}


# --------------------------------------------------------------- kafka-configs ---

def test_kafka_configs_alter_describe_delete(b):
    topic = unique("tools-configs")
    kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "1")
    configs = ("kafka-configs", "--bootstrap-server", b.bootstrap, "--entity-type", "topics", "--entity-name", topic)
    out = kafka_tool(*configs, "--alter", "--add-config", "retention.ms=123456789,cleanup.policy=compact").stdout
    assert f"Completed updating config for topic {topic}." in out

    def described(out) -> dict[str, tuple[str, str]]:
        """name -> (value, synonyms) of kafka-configs --describe."""
        return {m[1]: (m[2], m[3]) for m in lines_like(out, r"  ([a-z.]+)=(\S*) sensitive=false synonyms=\{(.*)\}")}

    out = kafka_tool(*configs, "--describe").stdout
    assert f"Dynamic configs for topic {topic} are:" in out
    # Each value with where it comes from, as Kafka lists them: the topic's, then the broker's default.
    assert described(out) == {
        "retention.ms": ("123456789", "DYNAMIC_TOPIC_CONFIG:retention.ms=123456789, "
                                      "DEFAULT_CONFIG:log.retention.ms=604800000"),
        "cleanup.policy": ("compact", "DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact, "
                                      "DEFAULT_CONFIG:log.cleanup.policy=delete"),
    }, out
    out = kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--describe", "--topic", topic).stdout
    assert "\tConfigs: cleanup.policy=compact,retention.ms=123456789" in out, out

    kafka_tool(*configs, "--alter", "--delete-config", "cleanup.policy")
    every = described(kafka_tool(*configs, "--describe", "--all").stdout)
    assert every["retention.ms"][0] == "123456789"
    assert every["cleanup.policy"] == ("delete", "DEFAULT_CONFIG:log.cleanup.policy=delete")
    assert every["segment.bytes"] == ("1073741824", "DEFAULT_CONFIG:log.segment.bytes=1073741824")
    assert every["max.message.bytes"] == ("1048588", "DEFAULT_CONFIG:message.max.bytes=1048588")
    assert described(kafka_tool(*configs, "--describe").stdout).keys() == {"retention.ms"}

    # Each shard is a broker; its static configs are the broker's flags (the module's: num.partitions 3).
    for broker_id in ("0", "1"):
        out = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--describe", "--entity-type", "brokers",
                         "--entity-name", broker_id, "--all").stdout
        assert f"All configs for broker {broker_id} are:" in out
        broker = described(out)
        assert broker["num.partitions"] == ("3", "STATIC_BROKER_CONFIG:num.partitions=3, "
                                                 "DEFAULT_CONFIG:num.partitions=1"), out
        assert broker["log.segment.bytes"] == ("1073741824", "DEFAULT_CONFIG:log.segment.bytes=1073741824"), out
        assert broker["message.max.bytes"][0] == "1048588" and broker["log.retention.ms"][0] == "604800000", out

    # Group configs (KIP-848's consumer.session.timeout.ms and the like) are not served: a refusal that says so.
    out = kafka_tool("kafka-configs", "--bootstrap-server", b.bootstrap, "--describe", "--entity-type", "groups",
                     "--entity-name", "some-group", check=False)
    assert out.returncode != 0 and "InvalidRequestException: resource type GROUP (32) is not supported" in out.stderr, \
        out.stderr


# ------------------------------------------------ kafka-get-offsets, delete-records ---

def test_kafka_get_offsets_latest_earliest_and_partitions(b):
    topic = unique("tools-offsets")
    kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "1")
    # Partition 0's largest timestamp is first at offset 2 (in the middle of a batch), partition 1's at its end.
    now_ms = int(time.time() * 1000)
    stamps = {0: [5, 1, 9, 3, 9, 2, 4], 1: [1, 2, 3]}
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 50, **QUIET})
    for partition, seconds in stamps.items():
        for i, s in enumerate(seconds):
            p.produce(topic, f"v{i}".encode(), partition=partition, timestamp=now_ms - 60_000 + s * 1000)
    assert p.flush(30) == 0
    get = ("kafka-get-offsets", "--bootstrap-server", b.bootstrap)
    assert offsets_from_tool(kafka_tool(*get, "--topic", topic, "--time", "-1").stdout, topic) == {0: 7, 1: 3, 2: 0}
    assert offsets_from_tool(kafka_tool(*get, "--topic", topic, "--time", "-2").stdout, topic) == {0: 0, 1: 0, 2: 0}
    out = kafka_tool(*get, "--topic-partitions", f"{topic}:0,{topic}:2", "--time", "latest").stdout
    assert offsets_from_tool(out, topic) == {0: 7, 2: 0}
    # The offsets Kafka 3.x/4.x added (ListOffsets v7-v9): the record with the largest timestamp (none
    # in an empty partition); the first offset kept locally (no tiered storage: the log start); the
    # last tiered one (none: -1, which the tool leaves out).
    out = kafka_tool(*get, "--topic", topic, "--time", "max-timestamp")
    assert offsets_from_tool(out.stdout, topic) == {0: 2, 1: 2}, out.stdout + out.stderr
    out = kafka_tool(*get, "--topic", topic, "--time", "earliest-local")
    assert offsets_from_tool(out.stdout, topic) == {0: 0, 1: 0, 2: 0}, out.stdout + out.stderr
    out = kafka_tool(*get, "--topic", topic, "--time", "latest-tiered")
    assert offsets_from_tool(out.stdout, topic) == {} and "error" not in out.stderr, out.stdout + out.stderr


def test_kafka_delete_records_moves_the_log_start(b, tmp_path):
    topic = unique("tools-delete")
    kafka_tool("kafka-topics", "--bootstrap-server", b.bootstrap, "--create", "--topic", topic,
               "--partitions", "3", "--replication-factor", "1")
    values = produce_counts(b.bootstrap, topic, {0: 10, 1: 4})
    spec = tmp_path / "delete.json"
    spec.write_text(json.dumps({"version": 1, "partitions": [{"topic": topic, "partition": 0, "offset": 6}]}))
    out = kafka_tool("kafka-delete-records", "--bootstrap-server", b.bootstrap, "--offset-json-file", str(spec)).stdout
    assert lines_like(out, rf"partition: {re.escape(topic)}-0\tlow_watermark: 6"), out

    out = kafka_tool("kafka-get-offsets", "--bootstrap-server", b.bootstrap, "--topic", topic, "--time", "earliest")
    assert offsets_from_tool(out.stdout, topic) == {0: 6, 1: 0, 2: 0}
    assert watermarks(b.bootstrap, topic, 0) == (6, 10)
    got = console_consume(b, topic, 4, "--partition", "0")
    assert [(o, v.encode()) for _, o, _, v in got] == [(o, values[0][o]) for o in range(6, 10)]


# --------------------------------------------------------------- kafka-log-dirs ---

def batch_bytes(segment: bytes) -> int:
    """Bytes of the record batches at the start of a segment file (each: offset, length, then length bytes)."""
    at = 0
    while at + 12 <= len(segment):
        length = int.from_bytes(segment[at + 8:at + 12], "big", signed=True)
        if length <= 0 or at + 12 + length > len(segment):
            break
        at += 12 + length
    return at


def test_kafka_log_dirs_reports_each_partition_on_its_broker_with_its_size(b):
    topic = unique("tools-logdirs")
    create_topic(b.bootstrap, topic, partitions=3)
    produce_counts(b.bootstrap, topic, {0: 50, 1: 5})
    out = kafka_tool("kafka-log-dirs", "--bootstrap-server", b.bootstrap, "--describe", "--topic-list", topic).stdout
    assert "Received log directory information from brokers 0,1" in out, out
    described = json.loads(out.strip().splitlines()[-1])
    data_dir = str(b.data_dir.resolve())
    on_disk = {p: sum(batch_bytes(f.read_bytes()) for f in (b.data_dir / f"{topic}-{p}").glob("*.log")) for p in range(3)}
    assert on_disk[0] > on_disk[1] > on_disk[2] == 0
    where = {}
    for broker in described["brokers"]:
        (log_dir,) = broker["logDirs"]
        assert log_dir["logDir"] == data_dir and log_dir["error"] is None, broker
        for p in log_dir["partitions"]:
            name, partition = p["partition"].rsplit("-", 1)
            assert name == topic and (p["offsetLag"], p["isFuture"]) == (0, False), p
            where[int(partition)] = (broker["broker"], p["size"])
    assert where == {p: (leader, on_disk[p]) for p, leader in leaders(b.bootstrap, topic).items()}, described
