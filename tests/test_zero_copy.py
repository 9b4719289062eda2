"""Fetch sends record bytes by splice: the broker's own counters, logged at clean shutdown, prove it."""

from __future__ import annotations

import re

from helpers import consume, create_topic, produce, unique

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SPLICED = re.compile(r"fetch_bytes_spliced=(\d+)")
COPIED = re.compile(r"fetch_bytes_copied=(\d+)")


def shutdown_counters(log: str):
    rows = []
    for line in ANSI.sub("", log).splitlines():
        s, c = SPLICED.search(line), COPIED.search(line)
        if s and c:
            rows.append((int(s.group(1)), int(c.group(1))))
    return rows


def test_fetch_is_spliced_not_copied(broker):
    b = broker
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
    assert len(rows) == b.shards, \
        f"expected one fetch_bytes_spliced=/fetch_bytes_copied= line per shard, found {rows}:\n{log[-4000:]}"
    spliced = sum(s for s, _ in rows)
    copied = sum(c for _, c in rows)
    assert spliced >= consumed_bytes, f"spliced {spliced} bytes < {consumed_bytes} record bytes consumed"
    assert copied == 0, f"{copied} fetch bytes went through user space (per shard: {rows})"
    # both shards led partitions, so both should have spliced something
    assert all(s > 0 for s, _ in rows), rows
