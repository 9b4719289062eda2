"""A segment file deleted or damaged by hand while the broker is stopped.

Start-up logs which partition and which offsets are affected, keeps serving
everything else (the partition's other segments and other partitions), and
does not crash. A gap in the middle of a partition stays a gap: as with Kafka,
a fetch inside it continues at the next offset that exists.
"""

from __future__ import annotations

import re
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from helpers import QUIET, consume, create_topic, produce, unique, watermarks
from test_corruption import segment_files

RECORDS = 300


def base_of(path):
    return int(path.stem)


@pytest.mark.parametrize("damage", ["middle-missing", "first-missing", "sealed-cut-short"])
def test_damaged_segment_is_reported_and_the_rest_served(broker, damage):
    b = broker
    topic = create_topic(b.bootstrap, unique("damaged"), partitions=2, config={"segment.bytes": "16384"})
    items = [(i % 2, None, f"r{i // 2}-".encode().ljust(200, b"x")) for i in range(2 * RECORDS)]
    produce(b.bootstrap, topic, items, conf={"linger.ms": 0, "batch.num.messages": 10})
    b.stop()

    segs = segment_files(b.data_dir, topic, 0)
    assert len(segs) >= 4, f"expected several segments, got {[s.name for s in segs]}"
    target = segs[0] if damage == "first-missing" else segs[1]
    lost_from, next_base = base_of(target), base_of(segs[segs.index(target) + 1])
    if damage == "sealed-cut-short":
        data = target.read_bytes()
        target.write_bytes(data[:len(data) // 2])
    else:
        target.unlink()  # its .index and .timeindex stay behind, as after a careless rm

    b.start()
    log = b.run_log()
    part = f"{topic}-0"
    said = "\n".join(line for line in log.splitlines() if part in line)  # what start-up says of the partition
    if damage == "first-missing":
        assert re.search(rf"{target.name} is missing.*offsets from {lost_from}", said), log[-3000:]
        expect_offsets = list(range(next_base, RECORDS))
        assert watermarks(b.bootstrap, topic, 0) == (next_base, RECORDS)
    else:
        m = re.search(rf"offsets (\d+)\.\.{next_base - 1} are lost", said)
        assert m, f"no line naming {part}, {target.name} and the lost offsets:\n{log[-3000:]}"
        first_lost = int(m.group(1))
        if damage == "middle-missing":
            assert first_lost == lost_from
            assert re.search(rf"{target.name} is missing", said), said
        else:
            assert re.search(rf"{target.name} is damaged at byte \d+", said), said
            assert lost_from < first_lost < next_base, "half the segment's batches should remain"
        expect_offsets = list(range(first_lost)) + list(range(next_base, RECORDS))
        assert watermarks(b.bootstrap, topic, 0) == (0, RECORDS)

    got = consume(b.bootstrap, topic, [0, 1], expect={0: len(expect_offsets), 1: RECORDS},
                  conf={"check.crcs": True})
    assert [o for o, _, _ in got[0]] == expect_offsets
    assert all(v.startswith(f"r{o}-".encode()) for o, _, v in got[0])
    assert [o for o, _, _ in got[1]] == list(range(RECORDS)), "the other partition is untouched"

    if damage != "first-missing":
        # A consumer positioned inside the gap continues at the next offset that exists.
        got = consume(b.bootstrap, topic, [0], offsets={0: next_base - 1}, expect={0: RECORDS - next_base})
        assert [o for o, _, _ in got[0]][:1] == [next_base]

    after = produce(b.bootstrap, topic, [(0, None, b"after")])
    assert after[0][1] == RECORDS, "appends continue at the old log end"
    b.stop()
    b.start()  # the gap stays a gap (and is logged again), the rest stays served
    assert watermarks(b.bootstrap, topic, 0)[1] == RECORDS + 1


@pytest.mark.parametrize("direct_io", ["true", "false"])
def test_a_segment_cut_under_a_running_broker_fails_fetches_with_an_error_and_a_log_line(broker_factory, direct_io):
    """Someone truncates a sealed segment while the broker serves it: a fetch
    there gets KAFKA_STORAGE_ERROR and one log line (not one per retry), the
    shard does not fall over, and everything else is still served."""
    b = broker_factory(log_direct_io=direct_io)
    topic = create_topic(b.bootstrap, unique("cut-live"), partitions=2, config={"segment.bytes": "16384"})
    items = [(i % 2, None, f"r{i // 2}-".encode().ljust(200, b"x")) for i in range(2 * RECORDS)]
    produce(b.bootstrap, topic, items, conf={"linger.ms": 0, "batch.num.messages": 10})
    segs = segment_files(b.data_dir, topic, 0)
    target = segs[1]
    data = target.read_bytes()
    with open(target, "r+b") as f:
        f.truncate(len(data) // 2)

    # The segment's first half is still whole batches; past the cut, fetches
    # fail and librdkafka retries them by itself: nothing more arrives.
    got = read_for(b.bootstrap, topic, 0, base_of(target), seconds=5)
    offsets = [o for o, _ in got]
    assert offsets == list(range(base_of(target), base_of(target) + len(offsets))), offsets[:5]
    assert base_of(target) + len(offsets) < base_of(segs[2]), "records served from past the cut"
    assert all(v.startswith(f"r{o}-".encode()) for o, v in got)
    lines = [line for line in b.run_log().splitlines() if "fetch failed" in line]
    assert lines, b.run_log()[-3000:]
    if direct_io == "true":
        # Read into memory first, so the fetch knows which partition failed.
        assert topic in lines[0] and "partition=0" in lines[0], lines[0]
    else:
        # Spliced: found short mid-response, so the connection closes.
        assert "segment file shorter" in lines[0] and "closing the connection" in lines[0], lines[0]
    assert len(lines) <= 2, f"a retrying consumer floods the log: {len(lines)} lines"

    # The rest of partition 0, the other partition and new appends are served.
    got = consume(b.bootstrap, topic, [0, 1], offsets={0: base_of(segs[2]), 1: 0},
                  expect={0: RECORDS - base_of(segs[2]), 1: RECORDS})
    assert [o for o, _, _ in got[1]] == list(range(RECORDS))
    assert [o for o, _, _ in got[0]] == list(range(base_of(segs[2]), RECORDS))
    after = produce(b.bootstrap, topic, [(0, None, b"after")])
    assert after[0][1] == RECORDS


def read_for(bootstrap, topic, partition, offset, seconds):
    """[(offset, value)] a consumer gets from `offset` in `seconds`, errors aside."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("cut"), "enable.auto.commit": False, **QUIET})
    try:
        c.assign([TopicPartition(topic, partition, offset)])
        got, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            got += [(m.offset(), m.value()) for m in c.consume(num_messages=1000, timeout=0.5) if m.error() is None]
        return got
    finally:
        c.close()
