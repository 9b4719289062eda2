"""A confluent-kafka group consumer run as a separate process by tests/test_groups.py.

    python3 group_clients.py '{"bootstrap": ..., "group": ..., "topic": ..., "conf": {...}}'

It subscribes, polls, and writes one JSON object per line on stdout:

    {"event": "assign"|"revoke"|"lost", "partitions": [..], "t": ...}  from the rebalance callbacks
    {"assignment": [..], "t": ...}     whenever consumer.assignment() changes
    {"stats": {"rebalance_cnt": n, "state": s, "join_state": j}}  from librdkafka statistics
    {"record": [partition, offset, value]}   for every record consumed (if "report_records")

A line "close" on stdin makes it close() the consumer and exit 0; the tests
kill -9 it otherwise.
"""

from __future__ import annotations

import json
import select
import sys
import time

from confluent_kafka import Consumer


def out(obj):
    obj.setdefault("t", time.monotonic())
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    spec = json.loads(sys.argv[1])
    report_records = spec.get("report_records", False)

    def on_stats(raw):
        try:
            cg = json.loads(raw).get("cgrp") or {}
        except ValueError:
            return
        out({"stats": {"rebalance_cnt": cg.get("rebalance_cnt"), "state": cg.get("state"),
                       "join_state": cg.get("join_state"), "assignment_size": cg.get("assignment_size")}})

    conf = {
        "bootstrap.servers": spec["bootstrap"],
        "group.id": spec["group"],
        "auto.offset.reset": "earliest",
        "log_level": 3,
        "stats_cb": on_stats,
        "statistics.interval.ms": 500,
        **spec.get("conf", {}),
    }
    c = Consumer(conf)

    def parts(ps):
        return sorted(p.partition for p in ps)

    c.subscribe([spec["topic"]],
                on_assign=lambda _c, ps: out({"event": "assign", "partitions": parts(ps)}),
                on_revoke=lambda _c, ps: out({"event": "revoke", "partitions": parts(ps)}),
                on_lost=lambda _c, ps: out({"event": "lost", "partitions": parts(ps)}))
    out({"event": "started"})
    last = None
    deadline = time.monotonic() + spec.get("max_seconds", 120)
    while time.monotonic() < deadline:
        m = c.poll(0.1)
        if m is not None and m.error() is None and report_records:
            out({"record": [m.partition(), m.offset(), m.value().decode()]})
        now = parts(c.assignment())
        if now != last:
            out({"assignment": now})
            last = now
        r, _, _ = select.select([sys.stdin], [], [], 0)
        if r:
            line = sys.stdin.readline()
            if not line or line.strip() == "close":
                c.close()
                out({"event": "closed"})
                return 0
    c.close()
    out({"event": "timeout"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
