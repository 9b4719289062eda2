"""franz-go (kgo, kadm), a widely used pure-Go Kafka client, against corelog.

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
import time
from collections import defaultdict
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from helpers import unique, wait_until

GO_DIR = Path(__file__).resolve().parent / "go"
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
# What the client reports of a record, and the broker must give back unchanged.
RECORD_FIELDS = ("partition", "offset", "key", "value", "headers", "timestamp_ms", "producer_id")
# What franz-go logs (at INFO: producers run with --verbose) when the broker answers
# a produce with a sequence error the idempotent producer has to recover from
# (OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID, DUPLICATE_SEQUENCE_NUMBER...): none may appear.
PRODUCER_TROUBLE = ("failing the producer ID", "resetting all sequence numbers", "duplicate sequence number",
                    "bumping producer epoch", "unable to load producer ID", "[ERROR]")


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

    def __contains__(self, key):
        return key in self.answer


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
    """{partition: offsets in the order given} of records as franzgo prints them."""
    return pairs_by_partition((r["partition"], r["offset"]) for r in records)


def pairs_by_partition(pairs) -> dict[int, list[int]]:
    """{partition: offsets in the order given} of (partition, offset) pairs."""
    offsets = defaultdict(list)
    for partition, offset in pairs:
        offsets[partition].append(offset)
    return dict(offsets)


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
    sent_async = franzgo(broker, "produce", "--verbose", "--topic", topic, "--codec", codec, "--mode", "async",
                         "--n", "3000", "--prefix", "async")
    sent_sync = franzgo(broker, "produce", "--verbose", "--topic", topic, "--codec", codec, "--mode", "sync",
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
    # The broker stamps its leader epoch on each batch (the producer sent -1), as Metadata says.
    md = admin(broker, "metadata", topic)["topics"][topic]["partitions"]
    assert {p["leader_epoch"] for p in md.values()} == {r["leader_epoch"] for r in got["records"]} == {0}
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
    sent = franzgo(broker, "produce", "--verbose", "--topic", topic, "--n", str(n), "--partitions", "4",
                   "--prefix", "idem")
    assert sent["errors"] == []
    assert not any(word in sent.log for word in PRODUCER_TROUBLE), sent.log
    for p, offsets in by_partition(sent["records"]).items():
        # record i went to partition i % 4 and was the (i // 4)-th there
        assert offsets == list(range(n // 4)), f"partition {p}"
    got = franzgo(broker, "consume", "--topic", topic)
    assert got["errors"] == []
    assert picked(got["records"]) == picked(sent["records"])


def test_idempotent_producer_through_a_broker_crash(broker_factory):
    """The broker is killed (SIGKILL) and restarted while franz-go produces: the producer
    retries what was in flight, and the log holds every record exactly once, in order."""
    b = broker_factory(shards=2)
    topic, n = unique("fg-crash"), 40_000
    create_topic(b, topic, 2)
    # Paced to last about two seconds, so that the crash comes while it sends.
    cmd = [franzgo_bin(), "produce", "--verbose", "--brokers", b.bootstrap, "--timeout", "80s", "--topic", topic,
           "--n", str(n), "--rate", "20000", "--partitions", "2", "--prefix", "crash"]
    producer = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def written():
            ends = admin(b, "list-offsets", topic)["end"].values()
            return sum(e["offset"] for e in ends)
        at_crash = wait_until(lambda: (w := written()) > n // 10 and w, timeout=60, interval=0.02,
                              what="the producer under way")
        b.kill()
        b.start()
        out, log = producer.communicate(timeout=90)
    finally:
        producer.kill()
    assert producer.returncode == 0, log
    assert at_crash < n, "the crash came while the producer was still sending"
    sent = json.loads(out)
    assert sent["errors"] == []
    assert not any(word in log for word in PRODUCER_TROUBLE), log
    for p, offsets in by_partition(sent["records"]).items():
        assert offsets == list(range(n // 2)), f"partition {p}"
    got = franzgo(b, "consume", "--topic", topic)
    assert got["errors"] == []
    assert got["end_offsets"] == {"0": n // 2, "1": n // 2}
    assert picked(got["records"]) == picked(sent["records"])


def test_transactional_producer_is_refused_at_once(broker):
    """corelog serves no transactions. A producer with a transactional id looks for its
    transaction coordinator as it starts: it gets UNSUPPORTED_VERSION, and the transaction
    fails at once, rather than after retrying COORDINATOR_NOT_AVAILABLE until its own
    timeout; nothing is written."""
    topic = unique("fg-txn")
    create_topic(broker, topic, 1)
    started = time.monotonic()
    sent = franzgo(broker, "produce", "--topic", topic, "--n", "3", "--transactional-id", unique("txn"), timeout=40)
    assert time.monotonic() - started < 10
    (error,) = sent["errors"]
    assert error.startswith("BeginTransaction: ") and "UNSUPPORTED_VERSION" in error, error
    assert admin(broker, "list-offsets", topic)["end"]["0"]["offset"] == 0


# ------------------------------------------------------------------ consumer group ---

def test_group_two_members_commit_what_they_consumed_and_a_new_member_resumes(broker):
    """Two kgo.ConsumerGroup members share the partitions and commit each poll before a
    rebalance may go on; after they stop, the committed offsets are exactly what they
    consumed, and a new member of the group reads on from there: nothing lost, nothing twice."""
    topic, group, partitions = unique("fg-group"), unique("fg-g"), 4
    create_topic(broker, topic, partitions)
    first_n = 2000
    sent = franzgo(broker, "produce", "--topic", topic, "--n", str(first_n), "--partitions", str(partitions))
    assert sent["errors"] == []

    first = franzgo(broker, "group", "--topic", topic, "--group", group, "--members", "2", "--stop-after", "1000")
    assert not first["timed_out"]
    for m in first["members"]:
        assert m["commit_errors"] == [] and m["fetch_errors"] == [], m
        assert m["records"], "both members consumed"
    consumed = [tuple(r) for m in first["members"] for r in m["records"]]
    assert len(consumed) == len(set(consumed)) >= 1000
    consumed_to = {p: 0 for p in range(partitions)}  # partition -> offset after the last consumed
    for p, offsets in pairs_by_partition(consumed).items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p} consumed with a gap"
        consumed_to[p] = len(offsets)

    # While both members were in the group (kadm DescribeGroups, ListGroups, FindCoordinator):
    described = first["described"]
    assert (described["state"], described["protocol_type"], described["protocol"], described["err"]) == \
        ("Stable", "consumer", "cooperative-sticky", "")
    assert described["coordinator"] == first["coordinator"]
    assigned = [p for m in described["members"] for p in m["assigned"][topic]]
    assert sorted(assigned) == list(range(partitions)) and len(described["members"]) == 2
    assert {m["client_host"] for m in described["members"]} == {"/127.0.0.1"}
    assert {m["client_id"] for m in described["members"]} == {"franzgo-check"}
    listed = {g["group"]: g for g in first["listed"]}
    assert (listed[group]["state"], listed[group]["protocol_type"], listed[group]["coordinator"]) == \
        ("Stable", "consumer", first["coordinator"])
    assert len([g for g in first["listed"] if g["group"] == group]) == 1

    # What was committed is what was consumed, also once the members have left.
    committed = {p: o for p, o in consumed_to.items() if o > 0}
    assert {int(p): o for p, o in first["committed"].items()} == committed
    end = first_n // partitions
    for p, lag in first["lag"].items():
        assert (lag["committed"], lag["end"], lag["lag"], lag["err"]) == (committed.get(int(p), -1), end,
                                                                         end - committed.get(int(p), 0), ""), p
    fetched = admin(broker, "fetch-offsets", group)
    assert {int(p): c["offset"] for p, c in fetched[topic].items()} == committed
    # franz-go commits the leader epoch of the last record consumed (KIP-320).
    assert {c["leader_epoch"] for c in fetched[topic].values()} == {0}
    after = admin(broker, "describe-groups", group)[group]
    assert (after["state"], after["members"]) == ("Empty", [])

    # A new member, after more records arrive, reads exactly the rest.
    more_n = 400
    assert franzgo(broker, "produce", "--topic", topic, "--n", str(more_n), "--partitions", str(partitions),
                   "--prefix", "more")["errors"] == []
    rest = first_n + more_n - len(consumed)
    second = franzgo(broker, "group", "--topic", topic, "--group", group, "--members", "1",
                     "--stop-after", str(rest))
    assert not second["timed_out"]
    (member,) = second["members"]
    assert member["commit_errors"] == [] and member["fetch_errors"] == []
    resumed = pairs_by_partition(member["records"])
    for p in range(partitions):
        assert resumed.get(p) == list(range(consumed_to[p], end + more_n // partitions)), f"partition {p}"
    assert {int(p): o for p, o in second["committed"].items()} == {p: end + more_n // partitions
                                                                   for p in range(partitions)}


def test_static_members_restart_without_a_rebalance(broker):
    """Static members (KIP-345) stop without leaving; restarted under the same instance ids
    they get their partitions back in the same generation, and read on from their commits."""
    topic, group, partitions = unique("fg-static"), unique("fg-g"), 4
    create_topic(broker, topic, partitions)
    static = ("--members", "2", "--instance-prefix", "instance-")
    runs = []
    for batch in range(2):
        assert franzgo(broker, "produce", "--topic", topic, "--n", "400", "--partitions", str(partitions),
                       "--prefix", f"static{batch}")["errors"] == []
        run = franzgo(broker, "group", "--topic", topic, "--group", group, *static, "--stop-after", "400")
        assert not run["timed_out"]
        for m in run["members"]:
            assert m["commit_errors"] == [] and m["fetch_errors"] == [], m
        runs.append(run)
        # The members are gone but the group keeps them: still Stable with both instances.
        described = admin(broker, "describe-groups", group)[group]
        assert described["state"] == "Stable"
        assert sorted(m["instance_id"] for m in described["members"]) == ["instance-0", "instance-1"]

    first, second = runs
    # One generation, each instance with the same partitions (assigned once per run), new member ids.
    assert [m["generation"] for m in first["members"] + second["members"]] == [1, 1, 1, 1]
    assert [m["assigned"] for m in second["members"]] == [m["assigned"] for m in first["members"]]
    assert all(len(m["assigned"]) == 1 for m in second["members"])
    assert {m["member_id"] for m in first["members"]}.isdisjoint(m["member_id"] for m in second["members"])
    # Each run read its 400 records: 100 per partition, the second from where the first committed.
    for run, start in ((first, 0), (second, 100)):
        read = pairs_by_partition(r for m in run["members"] for r in m["records"])
        assert read == {p: list(range(start, start + 100)) for p in range(partitions)}
    assert {p: o for p, o in second["committed"].items()} == {str(p): 200 for p in range(partitions)}


# ------------------------------------------------------------------ kadm ---

def test_admin_topics_configs_offsets_delete(broker):
    topic = unique("fg-admin")
    created = create_topic(broker, topic, 3, "retention.ms=86400000", "cleanup.policy=delete")
    assert (created["num_partitions"], created["replication_factor"]) == (3, 1)
    # CreateTopics v5+ answers the new topic's configs, as DescribeConfigs would (KIP-525).
    assert created["configs"]["retention.ms"] == "86400000"
    assert created["configs"]["cleanup.policy"] == "delete"
    assert created["configs"]["segment.bytes"] == "1073741824"
    again = admin(broker, "create-topics", "--partitions", "3", topic)[topic]
    assert "TOPIC_ALREADY_EXISTS" in again["err"]

    md = admin(broker, "metadata", topic)
    assert md["brokers"] == [{"node_id": s, "host": broker.host, "port": broker.shard_port(s)} for s in range(2)]
    assert md["cluster"] and md["controller"] in (0, 1)
    t = md["topics"][topic]
    assert (t["err"], t["internal"], sorted(t["partitions"])) == ("", False, ["0", "1", "2"])
    for p in t["partitions"].values():
        assert p["err"] == "" and p["leader"] in (0, 1) and p["replicas"] == p["isr"] == [p["leader"]]
    assert t["id"] == created["id"]
    listed = admin(broker, "list-topics")
    assert topic in listed and "__consumer_offsets" not in listed
    assert admin(broker, "list-topics", "--internal")["__consumer_offsets"]["internal"] is True

    def configs():
        described = admin(broker, "describe-topic-configs", topic)[topic]
        assert described["err"] == ""
        return {k: (v["value"], v["source"]) for k, v in described["configs"].items()}

    before = configs()
    assert created["configs"] == {k: value for k, (value, _source) in before.items()}
    assert before["retention.ms"] == ("86400000", "DYNAMIC_TOPIC_CONFIG")
    assert before["cleanup.policy"] == ("delete", "DYNAMIC_TOPIC_CONFIG")
    assert before["segment.bytes"] == ("1073741824", "DEFAULT_CONFIG")
    assert before["max.message.bytes"] == ("1048588", "DEFAULT_CONFIG")
    # IncrementalAlterConfigs: set one, set another, remove a third (back to its default).
    altered = admin(broker, "alter-topic-configs", topic, "set:retention.ms=3600000",
                    "set:max.message.bytes=2000000", "delete:cleanup.policy")
    assert altered.answer == {topic: ""}
    after = configs()
    assert after["retention.ms"] == ("3600000", "DYNAMIC_TOPIC_CONFIG")
    assert after["max.message.bytes"] == ("2000000", "DYNAMIC_TOPIC_CONFIG")
    assert after["cleanup.policy"] == ("delete", "DEFAULT_CONFIG")
    assert {k: v for k, v in after.items() if k not in ("retention.ms", "max.message.bytes", "cleanup.policy")} == \
        {k: v for k, v in before.items() if k not in ("retention.ms", "max.message.bytes", "cleanup.policy")}
    bad = admin(broker, "alter-topic-configs", topic, "set:retention.ms=soon")
    assert "INVALID_CONFIG" in bad[topic]

    sent = franzgo(broker, "produce", "--topic", topic, "--n", "300", "--partitions", "3")
    assert sent["errors"] == []
    first_ts = min(r["timestamp_ms"] for r in sent["records"])
    last_ts = max(r["timestamp_ms"] for r in sent["records"])
    offsets = admin(broker, "list-offsets", "--after-ms", str(first_ts), topic)
    assert {p: o["offset"] for p, o in offsets["start"].items()} == {"0": 0, "1": 0, "2": 0}
    assert {p: o["offset"] for p, o in offsets["end"].items()} == {"0": 100, "1": 100, "2": 100}
    assert {p: o["offset"] for p, o in offsets["after"].items()} == {"0": 0, "1": 0, "2": 0}
    # Past the last record: none found, which kadm answers with the end offset.
    later = admin(broker, "list-offsets", "--after-ms", str(last_ts + 1), topic)
    assert {p: o["offset"] for p, o in later["after"].items()} == {"0": 100, "1": 100, "2": 100}

    deleted = admin(broker, "delete-records", topic, "0=40", "1=100")
    assert deleted.answer == {"0": {"low_watermark": 40, "err": ""}, "1": {"low_watermark": 100, "err": ""}}
    beyond = admin(broker, "delete-records", topic, "2=101")
    assert "OFFSET_OUT_OF_RANGE" in beyond["2"]["err"]
    starts = admin(broker, "list-offsets", topic)["start"]
    assert {p: o["offset"] for p, o in starts.items()} == {"0": 40, "1": 100, "2": 0}
    got = franzgo(broker, "consume", "--topic", topic)
    assert got["errors"] == []
    assert by_partition(got["records"]) == {0: list(range(40, 100)), 2: list(range(100))}

    assert admin(broker, "delete-topics", topic).answer == {topic: ""}
    assert topic not in admin(broker, "list-topics").answer
    gone = admin(broker, "metadata", topic)["topics"][topic]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in gone["err"]
    assert "UNKNOWN_TOPIC_OR_PARTITION" in admin(broker, "delete-topics", topic)[topic]


def test_admin_commit_offsets_then_a_member_starts_there(broker):
    """kadm CommitOffsets for a group with no members (an operator resetting it), FetchOffsets
    reads them back with their metadata, and the group's next member starts from them.
    That member asks for a KIP-848 group (ServerSideBalancer): corelog does not serve
    ConsumerGroupHeartbeat, so franz-go joins with the classic protocol instead."""
    topic, group = unique("fg-commit"), unique("fg-g")
    create_topic(broker, topic, 2)
    assert franzgo(broker, "produce", "--topic", topic, "--n", "100", "--partitions", "2")["errors"] == []
    committed = admin(broker, "commit-offsets", group, topic, "0=10", "1=20")
    assert committed[topic] == {
        "0": {"offset": 10, "leader_epoch": -1, "metadata": "committed by franzgo admin", "err": ""},
        "1": {"offset": 20, "leader_epoch": -1, "metadata": "committed by franzgo admin", "err": ""},
    }
    assert admin(broker, "fetch-offsets", group)[topic] == committed[topic]
    listed = {g["group"]: g for g in admin(broker, "list-groups").answer}
    assert listed[group]["state"] == "Empty"
    described = admin(broker, "describe-groups", group)[group]
    assert (described["state"], described["members"], described["err"]) == ("Empty", [], "")

    run = franzgo(broker, "group", "--topic", topic, "--group", group, "--members", "1", "--stop-after", "70",
                  "--server-side-balancer")
    assert (run["described"]["state"], run["described"]["protocol"]) == ("Stable", "range")
    assert {g["group"]: g["group_type"] for g in run["listed"]}[group] == "classic"
    (member,) = run["members"]
    assert member["commit_errors"] == [] and member["fetch_errors"] == [] and not run["timed_out"]
    assert pairs_by_partition(member["records"]) == \
        {0: list(range(10, 50)), 1: list(range(20, 50))}
    assert {p: o for p, o in run["committed"].items()} == {"0": 50, "1": 50}
