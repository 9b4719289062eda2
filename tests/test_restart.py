"""Data survives a clean restart; acknowledged data survives kill -9 in durable mode."""

from __future__ import annotations

import threading

from confluent_kafka import Producer
from kafka import KafkaProducer

from helpers import QUIET, consume, create_topic, produce, unique, wait_until


def test_clean_restart_keeps_everything(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("rs-clean"), partitions=3)
    p = KafkaProducer(bootstrap_servers=b.bootstrap, acks="all", linger_ms=2)
    futs = [(i, p.send(topic, key=f"k{i % 11}".encode(), value=f"before-{i}".encode())) for i in range(3000)]
    p.flush(30)
    sent = {(md.partition, md.offset): f"before-{i}".encode()
            for i, md in ((i, f.get(30)) for i, f in futs)}
    p.close(10)

    log = b.stop()
    assert b.returncode == 0, f"SIGTERM exit status {b.returncode}:\n{log}"
    b.start()

    ends = {}
    for part in range(3):
        ends[part] = sum(1 for (pp, _) in sent if pp == part)
    got = consume(b.bootstrap, topic, [0, 1, 2], expect=ends, timeout=60)
    for part, recs in got.items():
        assert [o for o, _, _ in recs] == list(range(ends[part])), f"partition {part} offsets after restart"
        for o, _, v in recs:
            assert sent[(part, o)] == v

    # appends continue after the recovered end
    after = produce(b.bootstrap, topic, [(part, None, f"after-{part}".encode()) for part in range(3)])
    for part, off, _, _ in after:
        assert off == ends[part], f"partition {part}: first offset after restart {off}, expected {ends[part]}"
    got = consume(b.bootstrap, topic, [0, 1, 2], offsets=ends, expect={p: 1 for p in range(3)})
    assert {part: [v for _, _, v in recs] for part, recs in got.items()} == \
        {part: [f"after-{part}".encode()] for part in range(3)}


def test_restart_twice_and_topic_metadata_survives(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("rs-meta"), partitions=5, config={"retention.ms": "86400000"})
    produce(b.bootstrap, topic, [(i % 5, None, f"r{i}".encode()) for i in range(100)])
    for _ in range(2):
        b.stop()
        b.start()
    from helpers import leaders
    ls = leaders(b.bootstrap, topic)
    assert sorted(ls) == [0, 1, 2, 3, 4]
    got = consume(b.bootstrap, topic, list(range(5)), expect={p: 20 for p in range(5)})
    assert {p: [v for _, _, v in r] for p, r in got.items()} == \
        {p: [f"r{i}".encode() for i in range(p, 100, 5)] for p in range(5)}


def test_durable_mode_survives_kill_9(broker):
    """flush.messages=1: every record whose ack the producer saw is on disk after SIGKILL."""
    b = broker
    partitions = 3
    topic = create_topic(b.bootstrap, unique("rs-durable"), partitions=partitions, config={"flush.messages": "1"})

    acked = []  # (partition, offset, seq)
    failed = []
    lock = threading.Lock()
    stop = threading.Event()

    def on_delivery(err, msg):
        with lock:
            if err is None:
                acked.append((msg.partition(), msg.offset(), int(msg.value().split(b"-")[1])))
            else:
                failed.append(err)

    p = Producer({
        "bootstrap.servers": b.bootstrap,
        "acks": "all",
        "linger.ms": 1,
        "message.timeout.ms": 4000,
        "request.timeout.ms": 3000,
        "reconnect.backoff.max.ms": 500,
        **QUIET,
    })

    def run():
        i = 0
        while not stop.is_set():
            try:
                p.produce(topic, value=f"seq-{i}".encode(), partition=i % partitions, on_delivery=on_delivery)
                i += 1
            except BufferError:
                pass
            p.poll(0.001 if i % 50 == 0 else 0)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        wait_until(lambda: len(acked) >= 3000, timeout=60, interval=0.05, what="3000 acknowledged records")
    finally:
        kill_log = b.kill()  # SIGKILL while the producer is still producing
        stop.set()
        t.join(10)
    # let librdkafka give up on everything in flight (message.timeout.ms) before the broker returns
    left = p.flush(15)
    assert left == 0, f"{left} messages neither delivered nor failed"
    p = None  # destroy the producer: it must not reconnect to the restarted broker
    with lock:
        acked_now = list(acked)
    assert len(acked_now) >= 3000

    b.start()
    expect = {}
    for part, off, _ in acked_now:
        expect[part] = max(expect.get(part, 0), off + 1)
    got = consume(b.bootstrap, topic, list(range(partitions)), expect=expect, timeout=60)

    print(f"durable: {len(acked_now)} acknowledged before SIGKILL, "
          f"{sum(len(r) for r in got.values())} records after restart")
    for part in range(partitions):
        recs = got[part]
        offsets = [o for o, _, _ in recs]
        assert offsets == list(range(len(offsets))), f"partition {part}: offsets not contiguous from 0"
        seqs = [int(v.split(b"-")[1]) for _, _, v in recs]
        assert len(seqs) == len(set(seqs)), f"partition {part}: duplicated records"
        assert seqs == sorted(seqs), f"partition {part}: records out of order"
        assert all(s % partitions == part for s in seqs), f"partition {part}: foreign records"
        at = {o: s for o, _, s in ((o, k, int(v.split(b'-')[1])) for o, k, v in recs)}
        for pp, off, seq in acked_now:
            if pp == part:
                assert at.get(off) == seq, \
                    f"acknowledged seq {seq} at {part}/{off} lost or moved (found {at.get(off)})\n{kill_log[-3000:]}"


def test_leader_epoch_checkpoint_is_written_and_survives_kill_9(broker):
    """Each partition directory holds Kafka's leader-epoch-checkpoint (epoch 0
    from offset 0), which a SIGKILL and restart leave as it was; a directory
    from before the file existed gets one starting at its log end."""
    b = broker
    topic = create_topic(b.bootstrap, unique("rs-epoch"), partitions=2)
    produce(b.bootstrap, topic, [(i % 2, None, f"e{i}".encode()) for i in range(10)])
    checkpoints = [b.data_dir / f"{topic}-{p}" / "leader-epoch-checkpoint" for p in range(2)]
    for path in checkpoints:
        assert path.read_text() == "0\n1\n0 0\n", path

    b.kill()
    b.start()
    for path in checkpoints:
        assert path.read_text() == "0\n1\n0 0\n", f"{path} after SIGKILL and restart"
    assert not list(b.data_dir.glob(f"{topic}-*/leader-epoch-checkpoint.tmp"))

    b.stop()
    checkpoints[1].unlink()  # as a data directory written before the checkpoint existed
    b.start()
    assert checkpoints[1].read_text() == "0\n1\n0 5\n", "epoch 0 begins at the log end"
    after = produce(b.bootstrap, topic, [(p, None, b"after") for p in range(2)])
    assert sorted((part, off) for part, off, _, _ in after) == [(0, 5), (1, 5)]
    got = consume(b.bootstrap, topic, [0, 1], expect={0: 6, 1: 6})
    assert {p: len(r) for p, r in got.items()} == {0: 6, 1: 6}
