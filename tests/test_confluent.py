"""confluent-kafka (librdkafka 2.x) with every compression codec."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from helpers import QUIET, create_topic, unique

N = 100_000
PARTITIONS = 3
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("codec", CODECS)
def test_codec_round_trip(module_broker, codec):
    b = module_broker
    topic = create_topic(b.bootstrap, unique(f"cf-{codec}"), partitions=PARTITIONS)

    # ---- produce: record i goes to partition i % 3, value "codec:i" -----------------
    delivered = [0] * PARTITIONS
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered[msg.partition()] += 1

    p = Producer({
        "bootstrap.servers": b.bootstrap,
        "compression.type": codec,
        "linger.ms": 5,
        "acks": "all",
        "queue.buffering.max.messages": 2 * N,
        **QUIET,
    })
    t0 = time.monotonic()
    for i in range(N):
        value = f"{codec}:{i:07d}".encode()
        while True:
            try:
                p.produce(topic, value=value, key=str(i % 97).encode(), partition=i % PARTITIONS,
                          on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    left = p.flush(60)
    t_produce = time.monotonic() - t0
    assert left == 0, f"{left} records undelivered after 60 s"
    assert not errors, f"{len(errors)} delivery errors, first {errors[:3]}"
    expected_counts = [len(range(part, N, PARTITIONS)) for part in range(PARTITIONS)]
    assert delivered == expected_counts

    # ---- consume with assign() at explicit offsets ----------------------------------
    c = Consumer({
        "bootstrap.servers": b.bootstrap,
        "group.id": unique("cf-reader"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        **QUIET,
    })
    t1 = time.monotonic()
    next_index = {part: part for part in range(PARTITIONS)}  # next expected i per partition
    next_offset = {part: 0 for part in range(PARTITIONS)}
    eof = set()
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(PARTITIONS)])
        deadline = time.monotonic() + 60
        while not (len(eof) == PARTITIONS and all(next_index[q] >= N for q in range(PARTITIONS))):
            assert time.monotonic() < deadline, f"timed out; next expected per partition {next_index}, eof {eof}"
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise KafkaException(err)
                part = m.partition()
                i = next_index[part]
                assert m.offset() == next_offset[part], \
                    f"partition {part}: offset {m.offset()}, expected {next_offset[part]}"
                assert m.value() == f"{codec}:{i:07d}".encode(), \
                    f"partition {part} offset {m.offset()}: {m.value()!r}, expected record {i}"
                assert m.key() == str(i % 97).encode()
                next_index[part] = i + PARTITIONS
                next_offset[part] += 1
                eof.discard(part)
    finally:
        c.close()
    t_consume = time.monotonic() - t1
    assert next_offset == {part: expected_counts[part] for part in range(PARTITIONS)}
    print(f"{codec}: produced {N} in {t_produce:.2f}s, consumed in {t_consume:.2f}s")


def test_keyed_partitioning_and_headers(module_broker):
    """librdkafka's own partitioner (murmur2-compatible consistent_random) + headers survive."""
    b = module_broker
    topic = create_topic(b.bootstrap, unique("cf-keys"), partitions=PARTITIONS)
    delivered = []

    def cb(err, msg):
        assert err is None, err
        delivered.append((msg.key(), msg.partition(), msg.offset()))

    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", **QUIET})
    for i in range(3000):
        p.produce(topic, key=f"k{i % 20}".encode(), value=f"v{i}".encode(),
                  headers=[("seq", str(i).encode()), ("empty", b"")], on_delivery=cb)
        if i % 500 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    assert len(delivered) == 3000
    by_key = {}
    for key, part, _ in delivered:
        by_key.setdefault(key, set()).add(part)
    assert all(len(v) == 1 for v in by_key.values()), by_key

    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": unique("cf-h"), "enable.auto.commit": False,
                  "enable.partition.eof": True, **QUIET})
    got = {}
    eof = set()
    try:
        c.assign([TopicPartition(topic, part, 0) for part in range(PARTITIONS)])
        deadline = time.monotonic() + 30
        while len(eof) < PARTITIONS or len(got) < 3000:
            assert time.monotonic() < deadline, f"timed out with {len(got)} records"
            for m in c.consume(1000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise KafkaException(m.error())
                eof.discard(m.partition())
                got[(m.partition(), m.offset())] = (m.key(), m.value(), m.headers())
    finally:
        c.close()
    for key, part, off in delivered:
        k, v, h = got[(part, off)]
        assert k == key
        i = int(v[1:])
        assert h == [("seq", str(i).encode()), ("empty", b"")], h


def test_pipelined_idempotent_produce_keeps_order(module_broker):
    """librdkafka with idempotence keeps 5 small Produce requests in flight on one connection;
    corelog begins each as it arrives (pipelining), so the log must hold them exactly in the
    order sent, each once, with no OUT_OF_ORDER_SEQUENCE_NUMBER along the way."""
    from helpers import consume, produce
    b = module_broker
    topic, n = unique("pipe"), 20_000
    create_topic(b.bootstrap, topic, partitions=2)
    items = [(i % 2, None, b"%08d" % i) for i in range(n)]
    conf = {"enable.idempotence": True, "max.in.flight.requests.per.connection": 5,
            "batch.size": 2048, "linger.ms": 0}
    delivered = produce(b.bootstrap, topic, items, conf=conf)
    assert len(delivered) == n
    got = consume(b.bootstrap, topic, [0, 1], expect={0: n // 2, 1: n // 2})
    for p in (0, 1):
        values = [v for _, _, v in got[p]]
        assert values == [b"%08d" % i for i in range(p, n, 2)], f"partition {p} out of order or duplicated"
        assert [o for o, _, _ in got[p]] == list(range(n // 2))
