"""What one client may make the broker hold (issue 13): connections in all
and per address, silent connections, descriptors, and segment sizes.

Each limit has a tested behaviour: a refusal with Kafka's error or a closed
connection, one log line per interval however often it is hit, and the
broker serving everyone else (and every partition) throughout."""

from __future__ import annotations

import socket
import time

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

import kafka_wire as kw
from helpers import QUIET, admin, consume, create_topic, delivery_recorder, leader_conn, produce, unique, wait_until, watermarks

SEGMENT_FLOOR = 1 << 20  # Kafka 4's segment.bytes minimum (KIP-1030), corelog's default floor


def served(b, shard=0, source=None) -> bool:
    """Does the shard answer ApiVersions on a new connection (from `source`)?"""
    try:
        sock = socket.create_connection((b.host, b.port + shard), timeout=3,
                                        source_address=(source, 0) if source else None)
        with kw.Conn(b.host, b.port + shard, sock=sock, timeout=3) as c:
            return c.api_versions()[0] == 0
    except (OSError, kw.ConnectionClosed):
        return False


def open_served(b, n, shard=0, source=None):
    conns = []
    for _ in range(n):
        sock = socket.create_connection((b.host, b.port + shard), timeout=3,
                                        source_address=(source, 0) if source else None)
        c = kw.Conn(b.host, b.port + shard, sock=sock, timeout=3)
        assert c.api_versions()[0] == 0
        conns.append(c)
    return conns


def log_lines(b, text):
    return [line for line in b.run_log().splitlines() if text in line]


def test_segment_bytes_below_the_floor_is_refused_with_invalid_config(broker_factory):
    b = broker_factory(shards=1, log_segment_bytes_min=SEGMENT_FLOOR)
    a = admin(b.bootstrap)
    tiny = unique("tiny")
    fs = a.create_topics([NewTopic(tiny, 1, 1, config={"segment.bytes": "14"})], request_timeout=10)
    with pytest.raises(KafkaException) as refused:
        fs[tiny].result(10)
    assert refused.value.args[0].code() == 40  # INVALID_CONFIG
    topic = create_topic(b.bootstrap, unique("floor"), partitions=1, config={"segment.bytes": str(SEGMENT_FLOOR)})
    for value in ("14", str(SEGMENT_FLOOR - 1)):
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("segment.bytes", value, incremental_operation=AlterConfigOpType.SET)])
        with pytest.raises(KafkaException) as refused:
            a.incremental_alter_configs([res])[res].result(10)
        assert refused.value.args[0].code() == 40
    # The topic kept its segments: records still go in and come out.
    produce(b.bootstrap, topic, [(0, None, b"v%d" % i) for i in range(100)])
    assert len(consume(b.bootstrap, topic, [0])[0]) == 100


def test_max_connections_refuses_the_next_one_with_one_log_line(broker_factory):
    b = broker_factory(shards=2, max_connections=8)
    held = open_served(b, 8, shard=0)
    for _ in range(30):
        assert not served(b, shard=0), "a ninth connection to shard 0 was served"
    assert served(b, shard=1), "shard 1 counts its own connections"
    assert len(log_lines(b, "connection refused")) == 1, "one line per interval, not one per refusal"
    held.pop().close()
    wait_until(lambda: served(b, shard=0), 5, what="a slot given back by a closed connection")
    for c in held:
        c.close()


def test_max_connections_per_ip_refuses_one_address_and_serves_another(broker_factory):
    b = broker_factory(shards=1, max_connections_per_ip=3)
    held = open_served(b, 3, source="127.0.0.1")
    assert not served(b, source="127.0.0.1")
    others = open_served(b, 3, source="127.0.0.2")
    assert not served(b, source="127.0.0.2")
    for c in held + others:
        c.close()
    wait_until(lambda: served(b, source="127.0.0.1"), 5, what="slots given back")


def test_silent_connections_are_closed_after_connections_max_idle_ms(broker_factory):
    b = broker_factory(shards=1, connections_max_idle_ms=600)
    silent = open_served(b, 1)[0]
    busy = open_served(b, 1)[0]
    start = time.monotonic()
    while time.monotonic() - start < 2.0:
        assert busy.api_versions()[0] == 0, "a connection sending requests is never idle"
        time.sleep(0.2)
    assert silent.wait_closed(3), "a silent connection outlived connections.max.idle.ms"
    busy.close()
    assert served(b)


def test_a_long_poll_is_not_idle(broker_factory):
    """A fetch waiting longer than connections.max.idle.ms is answered, not
    cut: the same connection gets the answer after the whole wait, then is
    closed once it has been silent for the idle time."""
    from wire_requests import fetch_v4

    b = broker_factory(shards=1, connections_max_idle_ms=500)
    topic = create_topic(b.bootstrap, unique("poll"), partitions=1)
    with leader_conn(b, topic, 0) as c:
        start = time.monotonic()
        _, topics = fetch_v4(c, [(topic, [(0, 0, 1 << 20)])], max_wait_ms=2000, min_bytes=1 << 20)
        waited = time.monotonic() - start
        assert topics == [(topic, [(0, 0, 0, b"")])], topics
        assert waited >= 1.8, f"answered after {waited:.2f}s: the long poll did not wait"
        assert c.wait_closed(3), "silent after its answer, the connection is idle"


def prlimited(b, nofile):
    """Runs the broker under `prlimit --nofile`: its hard limit is `nofile` descriptors."""
    binary = b.binary
    command = b.command

    def limited():
        cmd = command()
        return ["prlimit", f"--nofile={nofile}:{nofile}", "--", binary] + cmd[1:]
    b.command = limited


def test_connections_are_refused_before_descriptors_run_short(broker_factory):
    """Under a small open-file limit, a flood of connections is refused while a
    quarter of the descriptors is left, so segment rolls keep working."""
    # max.partitions would default to a sixth of 256 descriptors, fewer than __consumer_offsets has.
    b = broker_factory(shards=1, start=False, max_partitions=100)
    prlimited(b, 256)
    b.start()
    topic = create_topic(b.bootstrap, unique("budget"), partitions=1, config={"segment.bytes": "4096"})
    # The producer connects before the flood, as a running application would.
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 5, **QUIET})
    p.produce(topic, value=b"before", partition=0)
    assert p.flush(10) == 0
    flood = []
    try:
        for _ in range(400):
            try:
                flood.append(socket.create_connection((b.host, b.port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        refused = log_lines(b, "connection refused")
        assert len(refused) == 1 and "open-file limit" in refused[0], refused
        values = [b"r%05d" % i + b"x" * 200 for i in range(300)]
        for v in values:
            p.produce(topic, value=v, partition=0)
            p.poll(0)
        assert p.flush(30) == 0, "segment rolls had descriptors left"
        assert not log_lines(b, "accept failed"), "descriptors never ran out"
    finally:
        for s in flood:
            s.close()
    assert [v for _, _, v in consume(b.bootstrap, topic, [0])[0]] == [b"before"] + values
    assert not log_lines(b, "offline"), "no partition went offline"


def test_a_partition_out_of_descriptors_recovers_without_a_restart(broker_factory):
    """Tiny segments under a small open-file limit: rolls run out of
    descriptors and produce fails (KAFKA_STORAGE_ERROR, which the producer
    retries). As retention (3 s) frees segments the same producer finishes,
    no restart; every record is acknowledged once, and what is left above the
    log start reads back as acknowledged."""
    b = broker_factory(shards=1, start=False, log_retention_check_interval_ms=100, max_partitions=100)
    prlimited(b, 320)
    b.start()
    topic = create_topic(b.bootstrap, unique("emfile"), partitions=1, config={"segment.bytes": "4096", "retention.ms": "3000"})
    values = [b"r%05d" % i + b"x" * 200 for i in range(2000)]
    acked, failed, on_delivery = delivery_recorder()
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0, "batch.num.messages": 5,
                  "enable.idempotence": True, "message.timeout.ms": 120000, **QUIET})
    for v in values:
        p.produce(topic, value=v, partition=0, on_delivery=on_delivery)
        p.poll(0)
    wait_until(lambda: p.poll(0.1) is not None and log_lines(b, "segment roll failed"), 60,
               what="segment rolls running out of descriptors")
    assert len(log_lines(b, "segment roll failed")) <= 2, "one line per 10 s, not one per produce"
    assert p.flush(90) == 0, "the producer finished once retention freed descriptors"
    assert not failed, failed[:3]
    assert sorted(acked.values()) == values, "every record acknowledged once"
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "-1", incremental_operation=AlterConfigOpType.SET)])
    a = admin(b.bootstrap)
    a.incremental_alter_configs([res])[res].result(10)
    start, end = watermarks(b.bootstrap, topic, 0)
    assert end == max(acked) + 1
    got = consume(b.bootstrap, topic, [0], offsets={0: start}, expect={0: end - start})[0]
    assert [o for o, _, _ in got] == list(range(start, end))
    assert all(acked[o] == v for o, _, v in got)
    assert not log_lines(b, "offline"), "the partition never went offline"
    # A crash after all that keeps every acknowledged record still above the log start.
    b.kill()
    b.start()
    again = consume(b.bootstrap, topic, [0], offsets={0: start}, expect={0: end - start})[0]
    assert again == got


def test_batches_stamped_far_from_the_broker_clock_get_invalid_timestamp(broker_factory):
    """message.timestamp.after.max.ms (Kafka 4: 1 hour): a batch from the far
    future would keep its segment from time retention until then."""
    b = broker_factory(shards=1)
    topic = create_topic(b.bootstrap, unique("stamp"), partitions=1)
    old = create_topic(b.bootstrap, unique("stamp-old"), partitions=1,
                       config={"message.timestamp.before.max.ms": "86400000"})
    now = int(time.time() * 1000)
    year = 365 * 86_400_000
    with b.wire(0) as c:
        assert c.produce(topic, 0, kw.record_batch([(None, b"future")], timestamp_ms=now + 2 * 3_600_000))[0] == 32
        assert c.produce(topic, 0, kw.record_batch([(None, b"soon")], timestamp_ms=now + 60_000)) == (kw.NONE, 0)
        assert c.produce(topic, 0, kw.record_batch([(None, b"old")], timestamp_ms=now - year)) == (kw.NONE, 1)
        assert c.produce(old, 0, kw.record_batch([(None, b"old")], timestamp_ms=now - year))[0] == 32
    assert [v for _, _, v in consume(b.bootstrap, topic, [0])[0]] == [b"soon", b"old"]
    assert consume(b.bootstrap, old, [0])[0] == []


def test_max_partitions_bounds_what_the_broker_holds(broker_factory):
    """Each partition holds descriptors and a writer task: CreateTopics and
    CreatePartitions past max.partitions (50 of them are __consumer_offsets)
    get POLICY_VIOLATION, and nothing is created."""
    from confluent_kafka.admin import NewPartitions

    b = broker_factory(shards=2, max_partitions=60)
    a = admin(b.bootstrap)
    topic = create_topic(b.bootstrap, unique("held"), partitions=8)
    big = unique("big")
    fs = a.create_topics([NewTopic(big, 3, 1)], request_timeout=10)
    with pytest.raises(KafkaException) as refused:
        fs[big].result(10)
    assert refused.value.args[0].code() == 44  # POLICY_VIOLATION
    fs = a.create_partitions([NewPartitions(topic, 11)], request_timeout=10)
    with pytest.raises(KafkaException) as refused:
        fs[topic].result(10)
    assert refused.value.args[0].code() == 44
    assert len(a.list_topics(topic, timeout=5).topics[topic].partitions) == 8
    assert big not in a.list_topics(timeout=5).topics
    create_topic(b.bootstrap, unique("fits"), partitions=2)


def test_validate_only_create_topics_is_bounded_as_a_real_create(broker_factory):
    """A validate-only CreateTopics creates nothing, so nothing bounded it: every valid
    name in it was answered with all of the topic's configs (v5+), 100,000 names buying
    a 100 MB answer, and a name given twice was validated twice. Now the partitions it
    validates count against max.partitions as if created (POLICY_VIOLATION past them),
    every entry of a name given twice is INVALID_REQUEST (as Kafka), and the refusals
    log a line per interval, not per topic."""
    import wire_requests as wr

    b = broker_factory(shards=1, max_partitions=60)  # 50 are __consumer_offsets
    held = len(admin(b.bootstrap).list_topics(timeout=5).topics["__consumer_offsets"].partitions)
    room = 60 - held
    twice = unique("twice")
    names = [unique("v") for _ in range(10_000)]
    with b.wire(0, timeout=60) as c:
        answered = wr.create_topics_v4(c, [(twice, 1)] + [(n, 1) for n in names] + [(twice, 1)], validate_only=True)
    assert answered[0] == (twice, wr.INVALID_REQUEST) and answered[-1] == (twice, wr.INVALID_REQUEST)
    errors = [err for _, err in answered[1:-1]]
    assert errors == [0] * room + [44] * (len(names) - room)  # POLICY_VIOLATION past the room left
    assert not any(n in admin(b.bootstrap).list_topics(timeout=5).topics for n in names[:room]), "validated only"
    refusals = b.log().count("create topic refused")
    assert 1 <= refusals <= 5, f"{refusals} refusal lines for one request"
    create_topic(b.bootstrap, unique("fits"), partitions=room)

