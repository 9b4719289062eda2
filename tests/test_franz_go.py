"""franz-go (kgo, kadm), the Go client most Go services use, against corelog.

tests/go is a Go module (franz-go and kadm pinned in go.mod / go.sum, fetched
from the Go module proxy into ~/go/pkg/mod); its one binary, `franzgo`, has a
subcommand per thing a Go service does with the client and prints what the
client saw as JSON. tests/run.sh builds it and passes its path in FRANZGO_BIN;
run alone, this module builds it with `go build` (cached by Go).

Every client here runs with franz-go's defaults, so every producer is
idempotent with acks=all and up to five requests in flight per broker.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from helpers import unique

GO_DIR = Path(__file__).resolve().parent / "go"
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# What the client reports of a record, and the broker must give back unchanged.
RECORD_FIELDS = ("partition", "offset", "key", "value", "headers", "timestamp_ms", "producer_id")
# What franz-go logs (at WARN) when the broker answers a produce with an error
# the idempotent producer has to recover from: none may appear.
PRODUCER_TROUBLE = ("OUT_OF_ORDER_SEQUENCE", "DUPLICATE_SEQUENCE", "UNKNOWN_PRODUCER_ID",
                    "INVALID_PRODUCER_EPOCH", "reset", "[ERROR]")


@functools.cache
def franzgo_bin() -> str:
    path = os.environ.get("FRANZGO_BIN")
    if path:
        return path
    if shutil.which("go") is None:
        pytest.skip("no FRANZGO_BIN and no `go` to build tests/go: run the suite through tests/run.sh")
    out = GO_DIR / "target" / "franzgo"
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=GO_DIR, check=True)
    return str(out)


class Run:
    """One finished franzgo command: its JSON answer and what the client logged."""

    def __init__(self, answer, log: str):
        self.answer = answer
        self.log = log

    def __getitem__(self, key):
        return self.answer[key]


def franzgo(broker, command: str, *args: str, timeout: float = 90) -> Run:
    cmd = [franzgo_bin(), command, "--brokers", broker.bootstrap, "--timeout", f"{timeout - 10:.0f}s", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\nstderr:\n{res.stderr}")
    return Run(json.loads(res.stdout), res.stderr)


def admin(broker, operation: str, *args: str) -> Run:
    return franzgo(broker, "admin", operation, *args)


def create_topic(broker, topic: str, partitions: int, *configs: str) -> dict:
    config_args = [a for kv in configs for a in ("--config", kv)]
    created = admin(broker, "create-topics", "--partitions", str(partitions), *config_args, topic)[topic]
    assert created["err"] == "", created
    return created


def picked(records):
    return sorted(tuple(json.dumps(r[f]) for f in RECORD_FIELDS) for r in records)


def by_partition(records) -> dict[int, list[int]]:
    offsets = defaultdict(list)
    for r in records:
        offsets[r["partition"]].append(r["offset"])
    return offsets


def kafka_partition(key: str, partitions: int) -> int:
    """Apache Kafka's default partitioner for a keyed record: toPositive(murmur2(key)) % n."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@pytest.fixture(scope="module")
def broker(module_broker_factory):
    return module_broker_factory(shards=2)


# ------------------------------------------------------------------ produce and consume ---

@pytest.mark.parametrize("codec", list(CODECS))
def test_produce_consume_every_codec(broker, codec):
    """Async (keyed, franz-go's partitioner) then sync (one record at a time) produce;
    a read from the start gives back every record exactly, in the codec it was sent in."""
    topic = unique(f"fg-{codec}")
    create_topic(broker, topic, 3)
    sent_async = franzgo(broker, "produce", "--topic", topic, "--codec", codec, "--mode", "async",
                         "--n", "3000", "--prefix", "async")
    sent_sync = franzgo(broker, "produce", "--topic", topic, "--codec", codec, "--mode", "sync",
                        "--n", "150", "--prefix", "sync", "--partitions", "3")
    for run in (sent_async, sent_sync):
        assert run["errors"] == []
        assert not any(word in run.log for word in PRODUCER_TROUBLE), run.log
    produced = sent_async["records"] + sent_sync["records"]

    # Keyed records land where Kafka's own partitioner puts them; the sync run chose i % 3.
    for r in sent_async["records"]:
        if r["key"] is not None:
            assert r["partition"] == kafka_partition(r["key"], 3), r
    assert [r["partition"] for r in sent_sync["records"]] == [i % 3 for i in range(150)]
    # Each run is one idempotent producer; offsets are dense per partition, in send order for sync.
    assert len({r["producer_id"] for r in sent_async["records"]}) == 1
    assert len({r["producer_id"] for r in sent_sync["records"]}) == 1
    assert sent_async["records"][0]["producer_id"] >= 0
    assert sent_async["records"][0]["producer_id"] != sent_sync["records"][0]["producer_id"]
    produced_offsets = by_partition(produced)
    for p, offsets in produced_offsets.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p}"
    sync_offsets = by_partition(sent_sync["records"])
    assert all(offsets == sorted(offsets) for offsets in sync_offsets.values())

    got = franzgo(broker, "consume", "--topic", topic)
    assert got["errors"] == []
    assert got["start_offsets"] == {str(p): 0 for p in range(3)}
    assert got["end_offsets"] == {str(p): len(produced_offsets[p]) for p in range(3)}
    for p, offsets in by_partition(got["records"]).items():
        assert offsets == list(range(len(produced_offsets[p]))), f"partition {p} read out of order"
    assert picked(got["records"]) == picked(produced)
    # franz-go sends a batch uncompressed where compressing would not make it smaller
    # (a record alone); of the async run's many-record batches nearly all are compressed.
    assert {r["codec"] for r in got["records"]} <= {0, CODECS[codec]}
    async_values = {r["value"] for r in sent_async["records"]}
    compressed = sum(r["codec"] == CODECS[codec] for r in got["records"] if r["value"] in async_values)
    assert compressed >= 0.9 * len(async_values)
    # Tombstones (null values), null keys, empty and repeated headers all came back.
    assert sum(r["value"] is None for r in got["records"]) == 3000 // 50 + 150 // 50
    assert any(r["key"] is None for r in got["records"])
    assert any(["empty", ""] in r["headers"] for r in got["records"])


def test_idempotent_producer_five_in_flight_per_shard(broker):
    """Many small batches with five produce requests in flight to each shard: every record
    lands once, in order, with no sequence error the producer would have to recover from."""
    topic = unique("fg-idem")
    create_topic(broker, topic, 4)
    md = admin(broker, "metadata", topic)["topics"][topic]["partitions"]
    assert {p["leader"] for p in md.values()} == {0, 1}, md  # both shards take produce requests
    n = 20000
    sent = franzgo(broker, "produce", "--topic", topic, "--n", str(n), "--partitions", "4", "--prefix", "idem")
    assert sent["errors"] == []
    assert not any(word in sent.log for word in PRODUCER_TROUBLE), sent.log
    for p, offsets in by_partition(sent["records"]).items():
        # record i went to partition i % 4 and was the (i // 4)-th there
        assert offsets == list(range(n // 4)), f"partition {p}"
    got = franzgo(broker, "consume", "--topic", topic)
    assert got["errors"] == []
    assert picked(got["records"]) == picked(sent["records"])
