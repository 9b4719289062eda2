"""Client-side helpers shared by the tests (all through confluent-kafka / librdkafka)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

QUIET = {"log_level": 3}  # librdkafka: errors only (a killed broker makes it chatty)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(pred, timeout=10.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def delivery_recorder():
    """-> (acked {offset: value}, failed [error], on_delivery callback) for a Producer."""
    acked, failed = {}, []

    def on_delivery(err, msg):
        if err is None:
            acked[msg.offset()] = msg.value()
        else:
            failed.append(err)

    return acked, failed, on_delivery


def leader_conn(b, topic, partition):
    """A raw wire connection (kafka_wire.Conn) to the shard leading `partition`."""
    import kafka_wire as kw

    with b.wire(0) as c:
        brokers, topics = c.metadata([topic])
    err, parts = topics[topic]
    assert err == 0, f"metadata error {err} for {topic}"
    perr, leader = parts[partition]
    assert perr == 0 and leader in brokers, (perr, leader, brokers)
    host, port = brokers[leader]
    return kw.Conn(host, port)


def admin(bootstrap) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **QUIET})


def create_topic(bootstrap, name, partitions=3, config=None, timeout=20.0):
    """CreateTopics through confluent-kafka; waits until metadata shows every partition with a leader."""
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
                         operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout)
    wait_until(lambda: _ready(a, name, partitions), timeout, what=f"topic {name} in metadata with leaders")
    return name


def _ready(a, name, partitions):
    md = a.list_topics(name, timeout=5)
    t = md.topics.get(name)
    if t is None or t.error is not None or len(t.partitions) != partitions:
        return False
    return all(p.leader >= 0 for p in t.partitions.values())


def leaders(bootstrap, topic):
    """{partition: leader node id} from Metadata."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics[topic]
    assert t.error is None, t.error
    return {p: pm.leader for p, pm in t.partitions.items()}


def produce(bootstrap, topic, items, conf=None, timeout=60.0):
    """Produce [(partition, key, value)] -> list of (partition, offset, key, value) delivery reports.

    Raises if any delivery failed.
    """
    delivered, failed = [], []

    def cb(err, msg):
        if err is not None:
            failed.append((err, msg.partition(), msg.value()))
        else:
            delivered.append((msg.partition(), msg.offset(), msg.key(), msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "queue.buffering.max.messages": 1000000, **QUIET, **(conf or {})})
    for part, key, value in items:
        while True:
            try:
                if part is None:
                    p.produce(topic, value=value, key=key, on_delivery=cb)
                else:
                    p.produce(topic, value=value, key=key, partition=part, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after {timeout}s"
    assert not failed, f"{len(failed)} deliveries failed, first: {failed[:3]}"
    return delivered


def consume(bootstrap, topic, partitions, offsets=None, timeout=60.0, expect=None, conf=None):
    """Read partitions from ``offsets`` (default 0) to their end with assign() (no group coordination).

    Returns {partition: [(offset, key, value)]}.  ``expect`` = {partition: count}
    keeps reading until at least that many records arrived (else until EOF).
    """
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": unique("tests"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        **QUIET, **(conf or {}),
    })
    try:
        offsets = offsets or {}
        c.assign([TopicPartition(topic, p, offsets.get(p, 0)) for p in partitions])
        got = {p: [] for p in partitions}
        eof = set()
        deadline = time.monotonic() + timeout

        def done():
            if expect is not None:
                return all(len(got[p]) >= expect.get(p, 0) for p in partitions) and len(eof) == len(partitions)
            return len(eof) == len(partitions)

        while not done():
            if time.monotonic() > deadline:
                counts = {p: len(v) for p, v in got.items()}
                raise AssertionError(f"consume {topic}: timed out after {timeout}s; got {counts}, "
                                     f"expected {expect}, EOF on {sorted(eof)}")
            for m in c.consume(num_messages=10000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        eof.add(m.partition())
                        continue
                    raise KafkaException(err)
                eof.discard(m.partition())
                got[m.partition()].append((m.offset(), m.key(), m.value()))
        return got
    finally:
        c.close()


def watermarks(bootstrap, topic, partition, timeout=10.0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("wm"), "enable.auto.commit": False, **QUIET})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
    finally:
        c.close()
