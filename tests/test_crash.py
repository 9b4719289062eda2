"""Crashes: SIGKILL at random moments while clients produce with acks=all, and
power failures simulated by cutting every segment back to its last fdatasync.

What is asserted about each partition after the crashes:
- every acknowledged record is at the offset its ack named, with its value;
- no value was acknowledged twice, and acknowledged values are in the order
  the producer sent them;
- the offsets are contiguous from 0 and every batch passes the consumer's
  CRC check (nothing corrupt is served);
- after SIGKILLs, no value is stored twice: a batch written just before a
  crash whose ack never reached the producer is retried by it after the
  restart, and the producer table corelog rebuilds from the log's batch
  headers at start-up answers the retry as a duplicate.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer

from helpers import QUIET, consume, create_topic, produce, unique, wait_until

CYCLES = 20
PARTITIONS = 4
CHECK_CRCS = {"check.crcs": True}


class Acks:
    """Delivery reports of one test: (partition, offset) -> value, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.at = {}
        self.failed = 0
        self.twice = []  # (partition, offset) acknowledged twice: asserted by the test thread

    def ok(self, partition, offset, value):
        with self.lock:
            if (partition, offset) in self.at:
                self.twice.append((partition, offset))
            self.at[(partition, offset)] = value

    def count(self):
        with self.lock:
            return len(self.at)

    def snapshot(self):
        with self.lock:
            assert not self.twice, f"offsets acknowledged twice: {self.twice[:5]}"
            return dict(self.at)


def seq_of(value: bytes) -> int:
    return int(value.split(b"-")[-1])


class ConfluentLoad:
    """An idempotent librdkafka producer that outlives every broker restart."""

    def __init__(self, bootstrap, topic, partitions, acks, conf=None, name="cf"):
        self.topic, self.partitions, self.acks, self.name = topic, partitions, acks, name
        self.stop = threading.Event()
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
            "linger.ms": 2, "message.timeout.ms": 60000, "retry.backoff.ms": 50,
            "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 200, "log_level": 0, **(conf or {}),
        })
        self.thread = threading.Thread(target=self.run, daemon=True)

    def on_delivery(self, err, msg):
        if err is None:
            self.acks.ok(msg.partition(), msg.offset(), msg.value())
        else:
            with self.acks.lock:
                self.acks.failed += 1

    def run(self):
        seq = 0
        while not self.stop.is_set():
            part = self.partitions[seq % len(self.partitions)]
            try:
                self.producer.produce(self.topic, value=f"{self.name}-{part}-{seq}".encode(), partition=part,
                                      on_delivery=self.on_delivery)
                seq += 1
            except BufferError:
                self.producer.poll(0.01)
            if seq % 20 == 0:
                self.producer.poll(0.001)

    def finish(self, timeout):
        self.stop.set()
        self.thread.join(10)
        return self.producer.flush(timeout)


class KafkaPythonLoad:
    """kafka-python 3 (idempotent by default), also kept across restarts."""

    def __init__(self, bootstrap, topic, partitions, acks):
        self.topic, self.partitions, self.acks = topic, partitions, acks
        self.stop = threading.Event()
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2,
                                      retry_backoff_ms=50, reconnect_backoff_max_ms=200,
                                      request_timeout_ms=5000, delivery_timeout_ms=60000)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        seq = 0
        while not self.stop.is_set():
            part = self.partitions[seq % len(self.partitions)]
            value = f"kp-{part}-{seq}".encode()
            fut = self.producer.send(self.topic, value=value, partition=part)
            fut.add_callback(lambda md, v=value: self.acks.ok(md.partition, md.offset, v))
            fut.add_errback(lambda _e: self._failed())
            seq += 1
            if seq % 200 == 0:
                time.sleep(0.005)  # leave the shared cores some air

    def _failed(self):
        with self.acks.lock:
            self.acks.failed += 1

    def finish(self, timeout):
        self.stop.set()
        self.thread.join(10)
        self.producer.flush(timeout)
        self.producer.close(5)


def log_ends(bootstrap, topic, partitions):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("ends"), **QUIET})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in partitions}
    finally:
        c.close()


def check_log(bootstrap, topic, partitions, acked, no_copies=False):
    """Consumes every partition from 0 and checks it against the acks;
    `no_copies`: no value may be stored twice. Returns {partition: records}.
    """
    ends = log_ends(bootstrap, topic, partitions)
    got = consume(bootstrap, topic, partitions, expect=ends, timeout=90, conf=CHECK_CRCS)
    for part in partitions:
        recs = got[part]
        assert [o for o, _, _ in recs] == list(range(ends[part])), f"partition {part}: offsets not contiguous from 0"
        value_at = {o: v for o, _, v in recs}
        mine = sorted((o, v) for (p, o), v in acked.items() if p == part)
        for offset, value in mine:
            assert value_at.get(offset) == value, \
                f"acknowledged {value!r} at {part}/{offset} is lost or moved (found {value_at.get(offset)!r})"
        values = [v for _, v in mine]
        assert len(values) == len(set(values)), f"partition {part}: a value was acknowledged twice"
        for prefix in {v.rsplit(b"-", 1)[0] for v in values}:
            seqs = [seq_of(v) for v in values if v.rsplit(b"-", 1)[0] == prefix]
            assert seqs == sorted(seqs), f"partition {part}: acknowledged {prefix!r} records out of order"
        if no_copies:
            offsets_of = defaultdict(list)
            for o, _, v in recs:
                offsets_of[v].append(o)
            copies = {v: o for v, o in offsets_of.items() if len(o) > 1}
            assert not copies, f"partition {part}: values stored twice (retries not deduplicated): {copies}"
    return got


def test_sigkill_cycles_keep_every_acknowledged_record(broker):
    """20 SIGKILLs at random moments under two idempotent producers; default flush policy.

    A process crash keeps the page cache, so even without fdatasync every
    acknowledged record must come back.
    """
    b = broker
    rng = random.Random()
    parts = list(range(PARTITIONS))
    topic = create_topic(b.bootstrap, unique("crash"), partitions=PARTITIONS, config={"segment.bytes": "262144"})
    acks = Acks()
    loads = [ConfluentLoad(b.bootstrap, topic, [0, 1], acks), KafkaPythonLoad(b.bootstrap, topic, [2, 3], acks)]
    for load in loads:
        load.thread.start()
    started = time.monotonic()
    try:
        for cycle in range(CYCLES):
            target = acks.count() + rng.randint(50, 400)
            wait_until(lambda: acks.count() >= target, timeout=30, interval=0.01,
                       what=f"cycle {cycle}: {target} acknowledged records")
            time.sleep(rng.uniform(0, 0.3))
            b.kill()
            b.start()
    finally:
        left = [load.finish(60) for load in loads]
    assert left[0] == 0, f"{left[0]} librdkafka messages neither delivered nor failed"
    elapsed = time.monotonic() - started
    acked = acks.snapshot()
    got = check_log(b.bootstrap, topic, parts, acked, no_copies=True)
    stored = [v for recs in got.values() for _, _, v in recs]
    print(f"{CYCLES} SIGKILL cycles in {elapsed:.0f}s: {len(acked)} acknowledged, {len(stored)} stored, "
          f"{acks.failed} failed deliveries")
    assert len(acked) >= CYCLES * 50
    assert all(len(r) > 0 for r in got.values())


# ------------------------------------------------ lost unsynced writes ---

def cut_to_last_sync(data_dir: Path, topic: str, journal: Path, rng: random.Random, garbage: bool):
    """A power failure: every segment of `topic` loses what was not fdatasynced.

    The broker wrote "<path> <length>" to the journal after each fdatasync; a
    file is cut to its last journaled length (0 if never synced), and the last
    segment of a partition may get a tail of garbage (a torn page). Returns the
    bytes dropped.
    """
    synced = {}
    if journal.exists():
        for line in journal.read_text().splitlines():
            path, length = line.rsplit(" ", 1)
            synced[path] = int(length)
    dropped = 0
    for part_dir in sorted(Path(data_dir).glob(f"{topic}-*")):
        segments = sorted(part_dir.glob("*.log"))
        for seg in segments:
            size = seg.stat().st_size
            keep = min(size, synced.get(str(seg.resolve()), 0))
            with open(seg, "r+b") as f:
                f.truncate(keep)
                if garbage and seg == segments[-1] and rng.random() < 0.7:
                    f.seek(keep)
                    f.write(rng.randbytes(rng.randint(1, 4096)))
            dropped += size - keep
    return dropped


def produce_until_killed(b, topic, parts, acks, rng, records, name):
    """A new idempotent producer writes; SIGKILL once `records` more acks arrived."""
    load = ConfluentLoad(b.bootstrap, topic, parts, acks, name=name,
                         conf={"linger.ms": 1, "message.timeout.ms": 3000, "request.timeout.ms": 2000})
    load.thread.start()
    target = acks.count() + records
    try:
        wait_until(lambda: acks.count() >= target, timeout=30, interval=0.01, what=f"{target} acknowledged")
        time.sleep(rng.uniform(0, 0.05))
    finally:
        log = b.kill()
        load.finish(10)
    return log


def test_durable_mode_survives_lost_unsynced_writes(broker_factory, tmp_path, monkeypatch):
    """flush.messages=1: after SIGKILL plus the loss of every unsynced byte, all acks hold."""
    journal = tmp_path / "sync-journal"
    monkeypatch.setenv("CORELOG_TEST_SYNC_JOURNAL", str(journal))
    b = broker_factory()
    rng = random.Random()
    parts = [0, 1, 2]
    # Small segments: rolls (and their directory fsyncs) happen during the test.
    topic = create_topic(b.bootstrap, unique("durable-cut"), partitions=3,
                         config={"flush.messages": "1", "segment.bytes": "65536"})
    acks = Acks()
    dropped = 0
    for cycle in range(5):
        produce_until_killed(b, topic, parts, acks, rng, rng.randint(200, 800), name=f"c{cycle}")
        dropped += cut_to_last_sync(b.data_dir, topic, journal, rng, garbage=True)
        b.start()
        check_log(b.bootstrap, topic, parts, acks.snapshot())
    assert journal.exists() and journal.stat().st_size > 0, "the broker wrote no sync journal"
    rolled = [p for p in Path(b.data_dir).glob(f"{topic}-*/*.log") if p.name != "0".zfill(20) + ".log"]
    assert rolled, "no segment was rolled"
    print(f"durable: {acks.count()} acknowledged, {dropped} unsynced bytes dropped")


def test_default_mode_can_lose_acknowledged_records_on_power_failure(broker_factory, tmp_path, monkeypatch):
    """No flush policy: acks precede any fdatasync, so a power failure loses them (as
    the README says) -- but what a clean shutdown synced stays, and the log comes back
    clean: contiguous, CRC-valid, and writable from its recovered end."""
    journal = tmp_path / "sync-journal"
    monkeypatch.setenv("CORELOG_TEST_SYNC_JOURNAL", str(journal))
    b = broker_factory()
    rng = random.Random()
    parts = [0, 1]
    topic = create_topic(b.bootstrap, unique("default-cut"), partitions=2)
    before = produce(b.bootstrap, topic, [(i % 2, None, f"synced-{i}".encode()) for i in range(400)])
    b.stop()  # a clean shutdown fsyncs everything
    b.start()
    acks = Acks()
    produce_until_killed(b, topic, parts, acks, rng, 500, name="lost")
    dropped = cut_to_last_sync(b.data_dir, topic, journal, rng, garbage=True)
    b.start()

    ends = log_ends(b.bootstrap, topic, parts)
    got = consume(b.bootstrap, topic, parts, expect=ends, conf=CHECK_CRCS)
    for part in parts:
        assert [o for o, _, _ in got[part]] == list(range(ends[part])), f"partition {part}: not contiguous"
        value_at = {o: v for o, _, v in got[part]}
        for p, o, _, v in before:
            if p == part:
                assert value_at.get(o) == v, f"{v!r}, synced by the clean shutdown, is lost"
    after = acks.snapshot()
    lost = [(p, o) for (p, o), v in after.items() if {o: v for o, _, v in got[p]}.get(o) != v]
    print(f"default mode: {len(after)} acknowledged after the clean restart, {len(lost)} lost, "
          f"{dropped} bytes dropped")
    assert dropped > 0 and lost, "acknowledged but unsynced records were expected to be lost"
    # The recovered log takes new records right at its end.
    more = produce(b.bootstrap, topic, [(p, None, f"after-{p}".encode()) for p in parts])
    assert sorted((p, o) for p, o, _, _ in more) == sorted(ends.items())
