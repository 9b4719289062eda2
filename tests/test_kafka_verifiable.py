"""Kafka's system-test clients against corelog: VerifiableProducer (acks=all,
so idempotent by the Java default) and VerifiableConsumer in a group, as
Kafka's own system tests run them (their JSON-lines events are the record of
what was acknowledged and consumed), and ProducerPerformance /
ConsumerPerformance as a smoke run.

Every acknowledged record must be consumed exactly as acknowledged: the same
partition, offset, key and value, once.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading

import pytest

from helpers import create_topic, unique, wait_until, watermarks
from kafka_java import kafka_tool, start_tool


@pytest.fixture(scope="module")
def b(module_broker_factory):
    # As Kafka's own config/server.properties for a single node: groups form at once.
    return module_broker_factory(**{"num-partitions": 3, "group-initial-rebalance-delay-ms": 0})


def events(text: str) -> list[dict]:
    """The JSON events of a Verifiable* tool's stdout (anything else is skipped)."""
    parsed = []
    for line in text.splitlines():
        if line.startswith("{"):
            parsed.append(json.loads(line))
    return parsed


class EventStream:
    """A running VerifiableConsumer: its events as they arrive, stderr to a file."""

    def __init__(self, log_path, *args):
        self.stderr = open(log_path, "w")
        self.proc = start_tool("kafka-verifiable-consumer", *args, stdout=subprocess.PIPE, stderr=self.stderr)
        self.events: list[dict] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def named(self, name: str) -> list[dict]:
        return [e for e in list(self.events) if e["name"] == name]

    def assignment(self) -> set[int]:
        """Partitions held now (the eager RangeAssignor revokes everything before each assignment)."""
        held: set[int] = set()
        for e in list(self.events):
            if e["name"] == "partitions_assigned":
                held = {p["partition"] for p in e["partitions"]}
            elif e["name"] == "partitions_revoked":
                held -= {p["partition"] for p in e["partitions"]}
        return held

    def rebalances(self) -> int:
        return len(self.named("partitions_assigned")) + len(self.named("partitions_revoked"))

    def records(self) -> list[tuple[int, int, str, str]]:
        return [(e["partition"], e["offset"], e["key"], e["value"]) for e in self.named("record_data")]

    def stop(self):
        """SIGTERM, as the system tests stop it: it leaves the group and reports shutdown_complete."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.reader.join(10)
        self.stderr.close()


def verifiable_produce(b, topic, count, prefix) -> dict[tuple[int, int], tuple[str, str]]:
    """VerifiableProducer with acks=all -> {(partition, offset): (key, value)} of what it acknowledged."""
    out = kafka_tool("kafka-verifiable-producer", "--bootstrap-server", b.bootstrap, "--topic", topic,
                     "--acks", "-1", "--max-messages", str(count), "--repeating-keys", "30",
                     "--value-prefix", prefix).stdout
    produced = events(out)
    assert not [e for e in produced if e["name"] == "producer_send_error"], out[-3000:]
    summary = [e for e in produced if e["name"] == "tool_data"]
    assert summary and summary[-1]["sent"] == count and summary[-1]["acked"] == count, summary
    acked = {(e["partition"], e["offset"]): (e["key"], e["value"])
             for e in produced if e["name"] == "producer_send_success"}
    assert len(acked) == count, "two acknowledgements for one offset"
    assert {v for _, v in acked.values()} == {f"{prefix}.{i}" for i in range(count)}
    return acked


def test_verifiable_producer_and_consumers_in_a_group_every_ack_consumed_once(b, tmp_path):
    topic, group = create_topic(b.bootstrap, unique("verifiable"), partitions=3), unique("verifiable-group")
    args = ("--bootstrap-server", b.bootstrap, "--topic", topic, "--group-id", group, "--verbose")
    first = EventStream(tmp_path / "consumer1.stderr", *args)
    second = EventStream(tmp_path / "consumer2.stderr", *args)
    consumers = [first, second]
    try:
        # Two members share the three partitions before anything is produced.
        wait_until(lambda: first.assignment() and second.assignment()
                   and sorted(first.assignment() | second.assignment()) == [0, 1, 2]
                   and not first.assignment() & second.assignment(),
                   timeout=60, what="two members sharing partitions 0-2")
        rebalances = [c.rebalances() for c in consumers]

        acked = verifiable_produce(b, topic, 3000, "1")
        assert {p for p, _ in acked} == {0, 1, 2}
        wait_until(lambda: sum(len(c.records()) for c in consumers) >= len(acked), timeout=60,
                   what=f"{len(acked)} records consumed")
        # No rebalance while consuming, so each record was delivered once, by the member holding its partition.
        assert [c.rebalances() for c in consumers] == rebalances
        for c in consumers:
            assert {p for p, _, _, _ in c.records()} <= c.assignment()
        consumed = first.records() + second.records()
        assert len(consumed) == len(acked)
        assert {(p, o): (k, v) for p, o, k, v in consumed} == acked

        # Every batch was committed (synchronously, after it was consumed) up to the end of each partition.
        ends = {p: max(o for q, o in acked if q == p) + 1 for p in range(3)}
        committed = {}
        for c in consumers:
            for e in c.named("offsets_committed"):
                assert e["success"], e
                committed.update({o["partition"]: o["offset"] for o in e["offsets"]})
        assert committed == ends

        # One member leaves; the other takes over its partitions from the committed offsets.
        second.stop()
        assert second.named("shutdown_complete")
        wait_until(lambda: first.assignment() == {0, 1, 2}, timeout=60, what="the remaining member holding 0-2")
        before = len(first.records())
        more = verifiable_produce(b, topic, 1000, "2")
        wait_until(lambda: len(first.records()) - before >= len(more), timeout=60,
                   what=f"{len(more)} more records consumed")
        after = first.records()[before:]
        assert len(after) == len(more), "records consumed twice after the rebalance"
        assert {(p, o): (k, v) for p, o, k, v in after} == more
        assert [watermarks(b.bootstrap, topic, p)[1] for p in range(3)] == \
            [max(o for q, o in (acked | more) if q == p) + 1 for p in range(3)]
    finally:
        for c in consumers:
            c.stop()


def test_producer_and_consumer_performance_smoke(b):
    topic, count = create_topic(b.bootstrap, unique("perf"), partitions=3), 100_000
    out = kafka_tool("kafka-producer-perf-test", "--topic", topic, "--num-records", str(count), "--record-size", "100",
                     "--throughput", "-1", "--producer-props", f"bootstrap.servers={b.bootstrap}", "acks=1").stdout
    final = re.search(r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                      r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th\.$",
                      out, re.MULTILINE)
    assert final and int(final[1]) == count, out
    print(f"ProducerPerformance: {final[0]}")
    assert sum(watermarks(b.bootstrap, topic, p)[1] for p in range(3)) == count

    out = kafka_tool("kafka-consumer-perf-test", "--bootstrap-server", b.bootstrap, "--topic", topic,
                     "--messages", str(count)).stdout
    header, row = [line.split(", ") for line in out.strip().splitlines()[-2:]]
    result = dict(zip(header, row))
    print(f"ConsumerPerformance: {result}")
    assert int(result["data.consumed.in.nMsg"]) == count, out
    assert float(result["data.consumed.in.MB"]) == pytest.approx(count * 100 / (1 << 20), abs=1e-4), out
