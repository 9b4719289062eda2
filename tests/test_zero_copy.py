"""Fetch sends record bytes without copying them in user space: by splice from the page cache
(--log-direct-io false), or straight from the memory they were written from or read into with
O_DIRECT (the default). The broker's own counters, logged at clean shutdown, prove it."""

from __future__ import annotations

import re

import pytest

from helpers import consume, create_topic, produce, unique

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SPLICED = re.compile(r"fetch_bytes_spliced=(\d+)")
MEMORY = re.compile(r"fetch_bytes_from_memory=(\d+)")


def shutdown_counters(log: str):
    """(spliced, from memory) per shard."""
    rows = []
    for line in ANSI.sub("", log).splitlines():
        s, m = SPLICED.search(line), MEMORY.search(line)
        if s and m:
            rows.append((int(s.group(1)), int(m.group(1))))
    return rows


@pytest.mark.parametrize("direct_io", ["true", "false"])
def test_fetch_is_not_copied_in_user_space(broker_factory, direct_io):
    b = broker_factory(log_direct_io=direct_io)
    partitions = 4
    topic = create_topic(b.bootstrap, unique("zc"), partitions=partitions)
    n = 20_000
    value = lambda i: (f"{i:08d}|" + "z" * 300).encode()  # noqa: E731
    produce(b.bootstrap, topic, [(i % partitions, None, value(i)) for i in range(n)],
            conf={"compression.type": "none"})
    expect = {p: len(range(p, n, partitions)) for p in range(partitions)}
    got = consume(b.bootstrap, topic, list(range(partitions)), expect=expect)
    consumed_bytes = 0
    for p, recs in got.items():
        assert [o for o, _, _ in recs] == list(range(expect[p]))
        assert [v for _, _, v in recs] == [value(i) for i in range(p, n, partitions)]
        consumed_bytes += sum(len(v) for _, _, v in recs)
    assert consumed_bytes == n * len(value(0))

    log = b.stop()
    assert b.returncode == 0, f"exit status {b.returncode} after SIGTERM"
    rows = shutdown_counters(log)
    assert len(rows) == b.shards, f"expected one fetch counters line per shard, found {rows}:\n{log[-4000:]}"
    # O_DIRECT logs send from memory; page-cache logs splice.
    way = 1 if direct_io == "true" else 0
    sent = sum(r[way] for r in rows)
    assert sent >= consumed_bytes, f"{sent} bytes sent ({direct_io=}) < {consumed_bytes} record bytes consumed"
    assert sum(r[1 - way] for r in rows) == 0, rows
    # both shards led partitions, so both should have sent something
    assert all(r[way] > 0 for r in rows), rows


def test_a_consumer_catching_up_from_the_disk_gets_every_record_in_order(broker_factory):
    """With a 1 MiB hot tail, 24 MB are read back with O_DIRECT: through reused read buffers and
    read-ahead (each answer's next bytes read while it is sent), by librdkafka's own fetches."""
    b = broker_factory(shards=1, log_hot_tail_bytes=1 << 20)
    topic = create_topic(b.bootstrap, unique("disk"), partitions=1)
    n = 40_000
    value = lambda i: (f"{i:08d}|" + "d" * 600).encode()  # noqa: E731
    produce(b.bootstrap, topic, [(0, None, value(i)) for i in range(n)], conf={"compression.type": "none"})
    for conf in ({}, {"max.partition.fetch.bytes": 64 << 10}):
        got = consume(b.bootstrap, topic, [0], expect={0: n}, conf=conf)[0]
        assert [o for o, _, _ in got] == list(range(n)), conf
        assert all(v == value(i) for i, (_, _, v) in enumerate(got)), conf
    # From the middle too: the read-ahead of the last pass is for another offset.
    middle = consume(b.bootstrap, topic, [0], offsets={0: n // 2}, expect={0: n - n // 2})[0]
    assert [v for _, _, v in middle] == [value(i) for i in range(n // 2, n)]
    log = b.stop()
    assert b.returncode == 0, log[-2000:]
    assert "fetch failed" not in log, "a fetch got KAFKA_STORAGE_ERROR (the client retried):\n" + log[-3000:]
    (spliced, from_memory), = shutdown_counters(log)
    assert spliced == 0 and from_memory >= 2 * n * len(value(0))
