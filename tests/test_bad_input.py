"""Hostile or wrong input: the broker answers with the right error or drops that connection, and keeps serving."""

from __future__ import annotations

import os
import random
import socket
import struct
import time

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import NewTopic

import kafka_wire as kw
from helpers import QUIET, admin, consume, create_topic, leaders, unique

MAX_REQUEST = 1 << 20  # --socket-request-max-bytes
MAX_MESSAGE = 100_000  # --message-max-bytes


@pytest.fixture(scope="module")
def strict_broker(module_broker_factory):
    return module_broker_factory(**{
        "socket-request-max-bytes": MAX_REQUEST,
        "message-max-bytes": MAX_MESSAGE,
        "auto-create-topics-enable": "false",
    })


def assert_alive(b):
    """A fresh client on every shard gets ApiVersions and Metadata answered."""
    for shard in range(b.shards):
        with b.wire(shard, timeout=5) as c:
            err, apis = c.api_versions()
            assert err == 0 and kw.API_PRODUCE in apis and kw.API_FETCH in apis
            brokers, _ = c.metadata([])
            assert sorted(brokers) == list(range(b.shards))
    assert b.running()


def test_oversized_frame_closes_connection(strict_broker):
    b = strict_broker
    bystander = b.wire(0)
    assert bystander.api_versions()[0] == 0
    with b.wire(0) as c:
        c.send_raw(struct.pack(">i", MAX_REQUEST + 1024) + kw.i16(kw.API_PRODUCE) + kw.i16(3) + kw.i32(1))
        try:
            c.send_raw(b"\0" * 65536)  # the broker may already have hung up
        except OSError:
            pass
        assert c.wait_closed(5), "connection not closed after a frame above --socket-request-max-bytes"
    # the connection that was open all along is unaffected
    assert bystander.api_versions()[0] == 0
    bystander.close()
    assert_alive(b)


def test_negative_frame_size_closes_connection(strict_broker):
    b = strict_broker
    with b.wire(1) as c:
        c.send_raw(struct.pack(">i", -5) + b"\0" * 16)
        assert c.wait_closed(5)
    assert_alive(b)


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",  # size field = 0x47455420, far above the limit
    b"\x00\x00\x00\x10" + b"\xff" * 16,  # a whole frame of nonsense (api key -1)
    b"\x00\x00\x00\x03abc",  # a frame too short for a request header
    "random",
])
def test_garbage_closes_connection(strict_broker, garbage):
    b = strict_broker
    if garbage == "random":
        payload = random.Random(7).randbytes(200)  # deterministic: api key is not a real one
        garbage = struct.pack(">i", len(payload)) + payload
    with b.wire(0) as c:
        c.send_raw(garbage)
        closed = c.wait_closed(5)
    assert closed, f"no close within 5 s after {garbage[:20]!r}"
    assert_alive(b)


def test_unknown_api_key(strict_broker):
    b = strict_broker
    with b.wire(0) as c:
        corr, frame = c.frame(9999, 0, b"")
        c.send_raw(frame)
        try:
            data = c.recv_frame()
            # an answer is acceptable only if it is for this request
            assert struct.unpack(">i", data[:4])[0] == corr
        except (kw.ConnectionClosed, OSError):
            pass
    assert_alive(b)


def test_api_versions_unsupported_version(strict_broker):
    """Like Kafka: a v0-framed ApiVersions response with UNSUPPORTED_VERSION and the api list."""
    b = strict_broker
    with b.wire(0) as c:
        # v3+ clients send header v2 and a flexible body; the broker must not need to parse it
        body = b"\x0bcorelog-py\x060.0.1\x00"
        corr, frame = c.frame(kw.API_API_VERSIONS, 99, body, flexible_header=True)
        c.send_raw(frame)
        r = kw.Reader(c.recv_frame())
        assert r.i32() == corr
        err = r.i16()
        assert err == kw.UNSUPPORTED_VERSION, f"error {err}"
        apis = {k: (lo, hi) for k, lo, hi in r.array(lambda r: (r.i16(), r.i16(), r.i16()))}
        assert kw.API_API_VERSIONS in apis and kw.API_PRODUCE in apis and kw.API_FETCH in apis, apis
        lo, hi = apis[kw.API_API_VERSIONS]
        assert 0 <= lo <= hi < 99
        # and the connection still answers a supported version
        assert c.api_versions()[0] == 0
    assert_alive(b)


def test_produce_unknown_topic_without_auto_create(strict_broker):
    b = strict_broker
    topic = unique("no-such-topic")
    for shard in range(b.shards):
        with b.wire(shard) as c:
            err, _ = c.produce(topic, 0, kw.record_batch([(None, b"x")]))
            assert err == kw.UNKNOWN_TOPIC_OR_PARTITION, f"shard {shard}: error {err}"
    with b.wire(0) as c:
        _, topics = c.metadata([topic])  # allow_auto_topic_creation=true, but the broker forbids it
        assert topics[topic][0] == kw.UNKNOWN_TOPIC_OR_PARTITION, topics
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert topic not in md.topics


def test_produce_unknown_partition(strict_broker):
    b = strict_broker
    topic = create_topic(b.bootstrap, unique("bad-part"), partitions=2)
    with b.wire(0) as c:
        err, _ = c.produce(topic, 7, kw.record_batch([(None, b"x")]))
        assert err == kw.UNKNOWN_TOPIC_OR_PARTITION, f"error {err}"


@pytest.mark.parametrize("name", ["bad/name", "bad name", "..", "", "x" * 250])
def test_invalid_topic_name(strict_broker, name):
    b = strict_broker
    with b.wire(0) as c:
        err = c.create_topic(name, 1, 1)
    assert err == kw.INVALID_TOPIC_EXCEPTION, f"CreateTopics({name[:20]!r}): error {err}"
    if name:
        # and the same through a real admin client
        a = admin(b.bootstrap)  # keep the client alive until the future resolves
        fs = a.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)], request_timeout=10)
        with pytest.raises(Exception) as e:
            fs[name].result(15)
        assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, e.value
    md = admin(b.bootstrap).list_topics(timeout=10)
    assert name not in md.topics


def test_replication_factor_above_one_rejected(strict_broker):
    b = strict_broker
    with b.wire(0) as c:
        assert c.create_topic(unique("rf3"), 1, 3) == kw.INVALID_REPLICATION_FACTOR


@pytest.mark.parametrize("partitions", [0, -5, 2_000_000_000])
def test_impossible_partition_counts_rejected(strict_broker, partitions):
    """Zero, negative or two billion partitions get INVALID_PARTITIONS, and
    nothing is created (two billion logs would wedge every shard)."""
    b = strict_broker
    name = unique("parts")
    with b.wire(0) as c:
        assert c.create_topic(name, partitions, 1) == 37  # INVALID_PARTITIONS
    assert name not in admin(b.bootstrap).list_topics(timeout=10).topics
    assert_alive(b)


def test_record_larger_than_message_max_bytes(strict_broker):
    b = strict_broker
    topic = create_topic(b.bootstrap, unique("too-large"), partitions=1)
    results = []

    def cb(err, msg):
        results.append((err, msg.offset(), len(msg.value())))

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "message.max.bytes": 10_000_000,
                  "compression.type": "none", "retries": 0, "linger.ms": 0, **QUIET})
    p.produce(topic, value=os.urandom(4 * MAX_MESSAGE), partition=0, on_delivery=cb)
    assert p.flush(20) == 0
    p.produce(topic, value=b"small", partition=0, on_delivery=cb)
    assert p.flush(20) == 0
    assert len(results) == 2
    err, _, _ = results[0]
    assert err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE, f"oversized record: {err}"
    err, off, _ = results[1]
    assert err is None and off == 0, f"small record after the refused one: {err}, offset {off}"
    # the raw frame gives the same answer
    with b.wire(leaders(b.bootstrap, topic)[0]) as c:
        err, _ = c.produce(topic, 0, kw.record_batch([(None, b"y" * (2 * MAX_MESSAGE))]))
        assert err == kw.MESSAGE_TOO_LARGE, f"raw oversized batch: error {err}"
    got = consume(b.bootstrap, topic, [0], expect={0: 1})
    assert [(o, v) for o, _, v in got[0]] == [(0, b"small")]


def test_produce_to_wrong_shard(strict_broker):
    b = strict_broker
    topic = create_topic(b.bootstrap, unique("wrong-shard"), partitions=8)
    ls = leaders(b.bootstrap, topic)
    assert set(ls.values()) <= {0, 1}
    assert set(ls.values()) == {0, 1}, f"8 partitions all placed on one shard: {ls}"
    for part, leader in ls.items():
        other = 1 - leader
        with b.wire(other) as c:
            err, _ = c.produce(topic, part, kw.record_batch([(None, b"misdirected")]))
            assert err == kw.NOT_LEADER_OR_FOLLOWER, f"partition {part} (leader {leader}) via shard {other}: {err}"
        with b.wire(leader) as c:
            assert c.produce(topic, part, kw.record_batch([(None, f"p{part}".encode())])) == (kw.NONE, 0)
    got = consume(b.bootstrap, topic, list(range(8)), expect={p: 1 for p in range(8)})
    assert {p: [v for _, _, v in r] for p, r in got.items()} == {p: [f"p{p}".encode()] for p in range(8)}


def test_many_connections_opened_and_dropped(strict_broker):
    """Half-written requests on many sockets, then abrupt closes: nothing leaks into other clients."""
    b = strict_broker
    socks = []
    for i in range(200):
        s = socket.create_connection((b.host, b.port + i % b.shards), timeout=5)
        s.sendall(struct.pack(">i", 100) + b"\x00\x12")  # announces 100 bytes, sends 2
        socks.append(s)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        s.close()
    time.sleep(0.2)
    assert_alive(b)


@pytest.mark.parametrize("api_key,version,prefix", [
    # Produce v3: transactional_id (null), acks, timeout, then the topic array count.
    (kw.API_PRODUCE, 3, kw.i16(-1) + kw.i16(1) + kw.i32(1000)),
    # Metadata v1: the topic array count straight away.
    (3, 1, b""),
])
def test_huge_array_count_in_a_tiny_frame(strict_broker, api_key, version, prefix):
    """A few bytes that claim two billion array elements: the decoder must not
    reserve memory for them all (that aborts a process); the connection is
    dropped and everyone else is served."""
    b = strict_broker
    with b.wire(0) as c:
        _, data = c.frame(api_key, version, prefix + kw.i32(0x7FFFFFFF))
        c.send_raw(data)
        assert c.wait_closed(5), "connection not closed after an impossible array count"
    assert_alive(b)
