"""Compacted topics (cleanup.policy=compact) with the real binary: the per-shard
cleaner keeps the latest record per key, drops tombstones after
delete.retention.ms, keeps offsets (gaps), survives restarts and crashes, and
the offsets topic uses it too. Read back with confluent-kafka, kafka-python and kcat."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
from confluent_kafka import KafkaError, Producer
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from helpers import QUIET, admin, consume, create_topic, produce, unique, wait_until, watermarks

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
USERS = [f"user-{i}" for i in range(10)]
DELETED = {"user-3", "user-7"}
UPDATES = 200
# Small segments that roll fast, cleaned at the least dirt, every 200 ms.
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "4096",
    "segment.ms": "300",
    "min.cleanable.dirty.ratio": "0.01",
}
BROKER = {"log_cleaner_backoff_ms": 200}


def profile(user, version):
    return f'{{"user":"{user}","version":{version}}}'.encode()


def produce_profiles(bootstrap, topic, first_version=0, updates=UPDATES, conf=None):
    """UPDATES versions of every user's profile, interleaved as they would arrive."""
    items = [(0, u.encode(), profile(u, v)) for v in range(first_version, first_version + updates) for u in USERS]
    return produce(bootstrap, topic, items, conf=conf)


ROLL = b"roll-"


def roll(bootstrap, topic):
    """An append after segment.ms rolls the active segment: what came before becomes cleanable.
    Its key is new each time, so it supersedes nothing; reads leave these records out."""
    time.sleep(0.4)
    produce(bootstrap, topic, [(0, ROLL + unique("r").encode(), b"roll")])


def view(records):
    """{key: value} a consumer ends up with, and the offsets it saw."""
    latest = {}
    for _, key, value in records:
        latest[key] = value
    return latest, [o for o, _, _ in records]


def compacted_read(b, topic):
    """The partition from the beginning, without the records that only rolled segments."""
    return [r for r in consume(b.bootstrap, topic, [0])[0] if not r[1].startswith(ROLL)]


def expected(version, tombstones_gone):
    want = {u.encode(): profile(u, version) for u in USERS if u not in DELETED}
    if not tombstones_gone:
        want.update({u.encode(): None for u in DELETED})
    return want


def wait_compacted(b, topic, want, timeout=30.0):
    """Waits until a read from the beginning holds exactly one record per wanted key."""
    last = []

    def done():
        last[:] = compacted_read(b, topic)
        latest, _ = view(last)
        return list(last) if latest == want and len(last) == len(want) else None
    try:
        return wait_until(done, timeout, interval=0.3, what=f"{topic} compacted to {len(want)} records")
    except AssertionError as e:
        raise AssertionError(f"{e}; last read {len(last)} records: {last[:30]}") from None


def kafka_python_read(b, topic):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=None, enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=2000)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        got = []
        deadline = time.monotonic() + 30
        while c.position(tp) < end and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value) for r in records)
        assert c.position(tp) == end, f"kafka-python stuck at {c.position(tp)} of {end}"
        return got
    finally:
        c.close()


def kcat_read(b, topic):
    out = subprocess.run([KCAT, "-b", b.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q",
                          "-Z", "-f", "%o|%k|%S\n"], capture_output=True, timeout=30, check=True).stdout.decode()
    rows = []
    for line in out.splitlines():
        offset, key, size = line.split("|")
        rows.append((int(offset), key.encode(), int(size)))
    return rows


def log_bytes(b, topic):
    return sum(p.stat().st_size for p in (b.data_dir / f"{topic}-0").glob("*.log"))


def test_user_profiles_compact_to_the_latest_value_per_key(broker_factory):
    b = broker_factory(shards=2, **BROKER)
    topic = create_topic(b.bootstrap, unique("profiles"), partitions=1,
                         config={**COMPACTED, "delete.retention.ms": "4000"})
    # Half of the history lz4-compressed, half plain: both kinds of batch get rebuilt.
    produce_profiles(b.bootstrap, topic, 0, UPDATES // 2, conf={"compression.type": "lz4"})
    produce_profiles(b.bootstrap, topic, UPDATES // 2, UPDATES // 2 - 1)
    last = UPDATES - 1
    produce(b.bootstrap, topic, [(0, u.encode(), None if u in DELETED else profile(u, last)) for u in USERS])
    high = len(USERS) * UPDATES
    before = log_bytes(b, topic)
    roll(b.bootstrap, topic)

    records = wait_compacted(b, topic, expected(last, tombstones_gone=False))
    _, offsets = view(records)
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert offsets == list(range(high - len(USERS), high)), "the latest values keep their offsets, after a gap"
    assert watermarks(b.bootstrap, topic, 0) == (0, high + 1), "compaction moves neither end of the log"
    assert log_bytes(b, topic) < before / 10
    assert "cleaned log" in b.log()

    # kafka-python and kcat see the same compacted partition.
    assert [r for r in kafka_python_read(b, topic) if not r[1].startswith(ROLL)] == records
    if KCAT:
        rows = [r for r in kcat_read(b, topic) if not r[1].startswith(ROLL)]
        assert [(o, k) for o, k, _ in rows] == [(o, k) for o, k, _ in records]
        assert all((size == -1) == (k.decode() in DELETED) for _, k, size in rows), "tombstones read as null"

    # Produce and fetch keep working while the cleaner runs rounds beside them.
    stop = threading.Event()
    reads = []

    def reader():
        while not stop.is_set():
            reads.append(len(compacted_read(b, topic)))

    cleanings = b.log().count("cleaned log")
    t = threading.Thread(target=reader)
    t.start()
    try:
        for round_ in range(3):
            produce_profiles(b.bootstrap, topic, UPDATES + 20 * round_, 20)
            time.sleep(0.35)
    finally:
        stop.set()
        t.join(60)
    assert reads and min(reads) >= len(USERS) - len(DELETED)
    assert b.log().count("cleaned log") > cleanings, "the cleaner ran while clients produced and fetched"
    newest = UPDATES + 59
    roll(b.bootstrap, topic)
    # The deleted users came back with new values; the tombstones were superseded.
    want = {u.encode(): profile(u, newest) for u in USERS}
    wait_compacted(b, topic, want)

    # Delete two users again and let delete.retention.ms pass: the tombstones go too.
    produce(b.bootstrap, topic, [(0, u.encode(), None) for u in sorted(DELETED)])
    roll(b.bootstrap, topic)
    with_tombstones = {**want, **{u.encode(): None for u in DELETED}}
    wait_compacted(b, topic, with_tombstones)
    gone = {k: v for k, v in want.items() if k.decode() not in DELETED}
    records = wait_compacted(b, topic, gone, timeout=30)

    # A clean restart and a crash both keep the compacted log as it is.
    b.stop()
    b.start()
    assert compacted_read(b, topic) == records
    b.kill()
    b.start()
    assert compacted_read(b, topic) == records
    produce(b.bootstrap, topic, [(0, b"user-0", b"after restart")])
    assert view(compacted_read(b, topic))[0][b"user-0"] == b"after restart"


def test_tombstones_stay_before_delete_retention(broker_factory):
    b = broker_factory(shards=1, **BROKER)
    topic = create_topic(b.bootstrap, unique("keep-tombstones"), partitions=1, config=COMPACTED)
    produce(b.bootstrap, topic, [(0, b"k", b"v1"), (0, b"k", b"v2"), (0, b"k", None), (0, b"other", b"x")])
    roll(b.bootstrap, topic)
    want = {b"k": None, b"other": b"x"}
    wait_compacted(b, topic, want)
    time.sleep(1.0)  # several cleaner rounds: the default delete.retention.ms is a day
    assert view(compacted_read(b, topic))[0] == want


def test_disabled_cleaner_leaves_compacted_topics_alone(broker_factory):
    b = broker_factory(shards=1, log_cleaner_enable="false", **BROKER)
    topic = create_topic(b.bootstrap, unique("not-cleaned"), partitions=1, config=COMPACTED)
    produce(b.bootstrap, topic, [(0, b"k", b"v%d" % i) for i in range(50)])
    roll(b.bootstrap, topic)
    time.sleep(1.0)  # five backoffs
    assert len(compacted_read(b, topic)) == 50
    assert "cleaned log" not in b.log()


def test_compaction_configs_are_described_and_checked(broker_factory):
    from confluent_kafka.admin import ConfigResource, NewTopic
    b = broker_factory(shards=1)
    topic = create_topic(b.bootstrap, unique("described"), partitions=1,
                         config={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.25"})
    a = admin(b.bootstrap)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = a.describe_configs([resource])[resource].result(10)
    values = {name: entry.value for name, entry in entries.items()}
    assert values["min.cleanable.dirty.ratio"] == "0.25"
    assert values["delete.retention.ms"] == "86400000"
    assert values["min.compaction.lag.ms"] == "0"
    assert values["max.compaction.lag.ms"] == str(2**63 - 1)
    bad = unique("bad-ratio")
    future = a.create_topics([NewTopic(bad, 1, 1, config={"min.cleanable.dirty.ratio": "2"})])[bad]
    with pytest.raises(Exception) as refused:
        future.result(10)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG


def test_keyless_record_into_compacted_topic_is_refused(broker_factory):
    b = broker_factory(shards=1)
    topic = create_topic(b.bootstrap, unique("keyless"), partitions=1, config={"cleanup.policy": "compact,delete"})
    errors = []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0, **QUIET})
    p.produce(topic, value=b"no key", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    assert "without a key" in b.log()
    delivered = produce(b.bootstrap, topic, [(0, b"key", b"value")])
    assert delivered[0][1] == 0, "the refused record took no offset"
    assert compacted_read(b, topic) == [(0, b"key", b"value")]


def offsets_partition(group):
    """The __consumer_offsets partition of a group: Java's String.hashCode, as Kafka and corelog use."""
    h = 0
    for unit in group.encode("utf-16-be").hex(" ", 2).split():
        h = (h * 31 + int(unit, 16)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % 50


def group_records(b, group):
    """Records of the offsets topic whose key names `group`."""
    records = consume(b.bootstrap, "__consumer_offsets", [offsets_partition(group)])[offsets_partition(group)]
    return [r for r in records if group.encode() in r[1]]


def commit(b, group, tp, offsets):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        for i, offset in enumerate(offsets):
            c.commit({tp: OffsetAndMetadata(offset, "", -1)})
            if i % 20 == 19:
                time.sleep(0.35)  # segment.ms passes: the offsets log rolls with the next commit
    finally:
        c.close()


def committed(b, group, tp):
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return c.committed(tp)
    finally:
        c.close()


def test_offsets_topic_is_compacted_and_replays_after_restart(broker_factory):
    b = broker_factory(shards=1, log_segment_ms=300, log_cleaner_min_cleanable_ratio=0.01,
                       log_cleaner_delete_retention_ms=1000, **BROKER)
    topic = create_topic(b.bootstrap, unique("committed"), partitions=1)
    produce(b.bootstrap, topic, [(0, b"k", b"v%d" % i) for i in range(10)])
    tp = TopicPartition(topic, 0)
    group = unique("g")
    neighbour = next(g for g in (unique("h") for _ in range(10_000))
                     if offsets_partition(g) == offsets_partition(group))
    commit(b, group, tp, [i % 10 + 1 for i in range(60)] + [7])
    time.sleep(0.4)
    commit(b, neighbour, tp, [3])  # rolls the offsets log past the last commit of `group`
    wait_until(lambda: len(group_records(b, group)) == 1, 20, what="one committed offset left for the group")
    assert any("cleaned log" in line and "__consumer_offsets" in line for line in b.log().splitlines())
    b.kill()
    b.start()
    assert committed(b, group, tp) == 7, "replay of the compacted offsets log"

    # Deleting the group writes tombstones; after delete.retention.ms they go too.
    a = admin(b.bootstrap)
    a.delete_consumer_groups([group], request_timeout=10)[group].result(10)
    time.sleep(0.4)
    commit(b, neighbour, tp, [4])
    wait_until(lambda: not group_records(b, group), 20, what="the group's tombstones removed")
    b.kill()
    b.start()
    assert committed(b, group, tp) is None
    assert committed(b, neighbour, tp) == 4
