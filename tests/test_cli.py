"""`corelog topics ...` against a running broker."""

from __future__ import annotations

import re
import subprocess

from helpers import admin, leaders, produce, unique, wait_until

DESCRIBE_LINE = re.compile(
    r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+).*?LogStartOffset:\s*(-?\d+)\s+LogEndOffset:\s*(-?\d+)")


def cli(b, *args, check=True, timeout=30):
    r = subprocess.run([b.binary, "topics", *args, "--bootstrap-server", b.bootstrap],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, f"corelog topics {' '.join(args)} exited {r.returncode}:\n" \
                                  f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def describe(b, topic):
    out = cli(b, "describe", topic).stdout
    rows = {}
    for line in out.splitlines():
        m = DESCRIBE_LINE.search(line)
        if m:
            part, leader, start, end = map(int, m.groups())
            assert part not in rows, f"partition {part} described twice:\n{out}"
            rows[part] = (leader, start, end)
    return rows, out


def listed(b):
    return set(cli(b, "list").stdout.split())


def test_topics_round_trip(module_broker):
    b = module_broker
    topic = unique("cli")
    cli(b, "create", topic, "--partitions", "4", "--config", "retention.ms=7200000",
        "--config", "segment.bytes=1048576")
    wait_until(lambda: topic in listed(b), 10, what="created topic in `topics list`")

    rows, out = describe(b, topic)
    assert sorted(rows) == [0, 1, 2, 3], out
    assert all(leader in (0, 1) for leader, _, _ in rows.values()), out
    assert all((start, end) == (0, 0) for _, start, end in rows.values()), out
    # the leader the CLI prints is the one clients are told about in Metadata
    assert {p: r[0] for p, r in rows.items()} == leaders(b.bootstrap, topic), out

    # configs given at creation are visible to a real admin client
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    a = admin(b.bootstrap)  # must outlive the future
    cfg = a.describe_configs([res])[res].result(15)
    assert cfg["retention.ms"].value == "7200000"
    assert cfg["segment.bytes"].value == "1048576"

    counts = {0: 7, 1: 0, 2: 13, 3: 1}
    produce(b.bootstrap, topic, [(p, None, f"{p}-{i}".encode()) for p, n in counts.items() for i in range(n)])
    rows, out = describe(b, topic)
    assert {p: (start, end) for p, (_, start, end) in rows.items()} == {p: (0, n) for p, n in counts.items()}, out

    cli(b, "delete", topic)
    wait_until(lambda: topic not in listed(b), 10, what="deleted topic gone from `topics list`")
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert topic not in md.topics

    # the name is free again
    cli(b, "create", topic, "--partitions", "1")
    rows, out = describe(b, topic)
    assert rows == {0: (rows[0][0], 0, 0)}, out


def test_create_with_replication_factor_3_fails(module_broker):
    b = module_broker
    topic = unique("cli-rf")
    r = cli(b, "create", topic, "--partitions", "1", "--replication-factor", "3", check=False)
    assert r.returncode != 0, r.stdout
    assert "INVALID_REPLICATION_FACTOR" in r.stdout + r.stderr, r.stdout + r.stderr
    assert topic not in listed(b)


def test_create_existing_and_describe_missing_fail(module_broker):
    b = module_broker
    topic = unique("cli-dup")
    cli(b, "create", topic, "--partitions", "2", "--replication-factor", "1")
    r = cli(b, "create", topic, "--partitions", "2", check=False)
    assert r.returncode != 0
    text = r.stdout + r.stderr
    assert "TOPIC_ALREADY_EXISTS" in text or "already exists" in text.lower(), text
    r = cli(b, "describe", unique("cli-missing"), check=False)
    assert r.returncode != 0 or "UNKNOWN_TOPIC_OR_PARTITION" in r.stdout + r.stderr, r.stdout + r.stderr


def test_list_shows_all_topics(module_broker):
    b = module_broker
    names = [unique("cli-many") for _ in range(5)]
    for n in names:
        cli(b, "create", n, "--partitions", "1")
    assert set(names) <= listed(b)


def topic_configs(b, topic):
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    a = admin(b.bootstrap)  # must outlive the future
    return {k: (e.value, e.source) for k, e in a.describe_configs([res])[res].result(15).items()}


def test_alter_config_sets_and_deletes_overrides(module_broker):
    from confluent_kafka.admin import ConfigSource
    b = module_broker
    topic = unique("cli-alter")
    cli(b, "create", topic, "--partitions", "1", "--config", "segment.ms=600000")
    r = cli(b, "alter-config", topic, "--config", "retention.ms=3600000",
            "--config", "cleanup.policy=compact", "--delete-config", "segment.ms")
    assert f"Altered configs of topic {topic}" in r.stdout
    cfg = topic_configs(b, topic)
    assert cfg["retention.ms"] == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert cfg["cleanup.policy"] == ("compact", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert cfg["segment.ms"][1] == ConfigSource.DEFAULT_CONFIG.value
    # describe shows the overrides it now has
    _, out = describe(b, topic)
    assert "retention.ms=3600000" in out and "segment.ms=600000" not in out, out

    for bad, code in [(["--config", "retention.ms=soon"], "INVALID_CONFIG"),
                      (["--config", "no.such.key=1"], "INVALID_CONFIG")]:
        r = cli(b, "alter-config", topic, *bad, check=False)
        assert r.returncode != 0 and code in r.stdout + r.stderr, r.stdout + r.stderr
    r = cli(b, "alter-config", unique("cli-missing"), "--config", "retention.ms=1", check=False)
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stdout + r.stderr, r.stdout + r.stderr
    assert topic_configs(b, topic)["retention.ms"][0] == "3600000", "refused changes change nothing"


def test_describe_shows_the_log_start_offset_after_delete_records(module_broker):
    from confluent_kafka import TopicPartition
    b = module_broker
    topic = unique("cli-start")
    cli(b, "create", topic, "--partitions", "1")
    produce(b.bootstrap, topic, [(0, None, f"v{i}".encode()) for i in range(10)])
    a = admin(b.bootstrap)  # must outlive the future
    assert a.delete_records([TopicPartition(topic, 0, 4)])[TopicPartition(topic, 0, 4)].result(10).low_watermark == 4
    rows, out = describe(b, topic)
    assert rows[0][1:] == (4, 10), out
