"""corelog-load against the real broker: the counts it reports must be what the broker holds.

The load generator is built next to the broker by tests/run.sh (cargo build --release
builds every binary), so its path is derived from CORELOG_BIN.  Each run writes --json;
the tests compare its counts with the log end offsets that confluent-kafka sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from helpers import consume, leaders, unique, watermarks

RUN_TIMEOUT = 120
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PRODUCE_TIME = re.compile(r"produce request time: n=(\d+) p50=(\d+)us p99=(\d+)us p99.9=(\d+)us max=(\d+)us")


@pytest.fixture(scope="session")
def load_bin(corelog):
    path = os.environ.get("CORELOG_LOAD_BIN") or os.path.join(os.path.dirname(corelog), "corelog-load")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"no corelog-load binary at {path}: build with cargo build --release")
    return path


def run_load(load_bin, tmp_path, *args, expect_rc=0):
    out = tmp_path / f"load-{unique('r')}.json"
    r = subprocess.run([load_bin, *map(str, args), "--json", str(out)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == expect_rc, \
        f"corelog-load {' '.join(map(str, args))} exited {r.returncode}:\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return json.loads(out.read_text()), r


def end_offsets(bootstrap, topic, partitions):
    """{partition: (low, high)} from confluent-kafka."""
    return {p: watermarks(bootstrap, topic, p) for p in range(partitions)}


def check_latency(lat):
    assert lat is not None and lat["count"] > 0, lat
    keys = ["min", "p50", "p90", "p99", "p99.9", "p99.99", "max"]
    values = [lat[k] for k in keys]
    assert values == sorted(values), lat


def test_more_producers_than_partitions_share_them(broker, load_bin, tmp_path):
    """--producers 3 on 2 partitions: producer i writes partition i % 2, so partition 0 has two
    writers; the counts still add up exactly, and librdkafka reads every record."""
    topic, n = unique("shared"), 90_001
    result, _ = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                         "--partitions", 2, "--producers", 3, "--consumers", 1, "--messages", n,
                         "--record-bytes", 100, "--quiet")
    assert result["ok"], result
    assert result["produce"]["messages"] == n and result["consume"]["messages"] == n
    wm = end_offsets(broker.bootstrap, topic, 2)
    # Quotas 30,001 / 30,000 / 30,000: producers 0 and 2 write partition 0.
    assert (wm[0][1], wm[1][1]) == (60_001, 30_000), wm
    got = consume(broker.bootstrap, topic, [0], expect={0: 60_001})
    assert [o for o, _, _ in got[0]] == list(range(60_001))


def test_messages_run_produces_and_consumes_exactly(broker, load_bin, tmp_path):
    """--messages N with 2 producers and 2 consumers over both shards: N produced, N in the log, N consumed."""
    topic, n, parts = unique("load"), 200_003, 4  # N is no multiple of the batch: exercises the tail batch
    result, _ = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                         "--partitions", parts, "--producers", 2, "--consumers", 2, "--messages", n,
                         "--key-bytes", 8, "--record-bytes", 100, "--quiet")
    assert result["ok"], result
    assert result["produce"]["messages"] == n
    assert result["consume"]["messages"] == n
    assert result["produce"]["errors"] == {} and result["consume"]["errors"] == {}
    assert result["effective"]["partitions"] == parts
    check_latency(result["produce"]["ack_latency_us"])
    check_latency(result["consume"]["e2e_latency_us"])

    # The topic it created lives on both shards, and holds exactly N records.
    assert len(set(leaders(broker.bootstrap, topic).values())) == 2
    wm = end_offsets(broker.bootstrap, topic, parts)
    assert all(low == 0 for low, _ in wm.values()), wm
    assert sum(high for _, high in wm.values()) == n, wm
    # Producer i owns partitions p % 2 == i, and the quota is split evenly.
    assert wm[0][1] + wm[2][1] == (n + 1) // 2 and wm[1][1] + wm[3][1] == n // 2, wm

    # Records are real Kafka records that librdkafka reads: 8-byte keys, 100-byte values.
    got = consume(broker.bootstrap, topic, [0], expect={0: wm[0][1]})
    assert len(got[0]) == wm[0][1]
    assert [o for o, _, _ in got[0]] == list(range(wm[0][1]))
    assert all(len(k) == 8 and len(v) == 100 for _, k, v in got[0])

    # Each shard logs at shutdown how long it held the Produce requests it
    # answered (frame read to answer written): every request, no other.
    log = broker.stop()
    times = [tuple(map(int, m)) for m in PRODUCE_TIME.findall(ANSI.sub("", log))]
    assert len(times) == 2, f"one produce time line per shard expected:\n{log[-3000:]}"
    assert sum(n for n, *_ in times) == result["produce"]["requests"], (times, result["produce"])
    assert all(p50 <= p99 <= p999 <= mx for n, p50, p99, p999, mx in times if n), times


def test_timed_run_counts_match_the_log(broker, load_bin, tmp_path):
    """A ~3 s closed-loop run with warm-up: the total it reports is what the broker holds, and
    consumers that read from the beginning read all of it."""
    topic, parts = unique("load"), 3
    result, r = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                         "--partitions", parts, "--consumers", 1, "--duration", 2, "--warmup", 1,
                         "--batch-bytes", 16384)
    assert result["ok"], result
    produced = result["produce"]["messages"]
    assert produced > 0
    wm = end_offsets(broker.bootstrap, topic, parts)
    assert sum(high for _, high in wm.values()) == produced, (wm, produced)
    assert result["consume"]["messages"] == produced

    measured = result["produce"]["measured"]
    assert 0 < measured["messages"] <= produced
    assert measured["seconds"] == pytest.approx(2.0, abs=0.01)
    assert measured["msgs_per_s"] == pytest.approx(measured["messages"] / measured["seconds"])
    check_latency(result["produce"]["ack_latency_us"])
    check_latency(result["consume"]["e2e_latency_us"])
    # One progress line a second on stderr, a summary on stdout.
    assert sum("produce" in line and "msg/s" in line for line in r.stderr.splitlines()) >= 2, r.stderr
    assert r.stdout.startswith("corelog-load") and "ack latency" in r.stdout, r.stdout


def test_open_loop_rate_and_compression(broker, load_bin, tmp_path):
    """--rate sends on a schedule (about rate x duration messages), zstd batches are accepted
    by the broker as they are, and the counts still match the log."""
    topic, parts, rate = unique("load"), 2, 20_000
    result, _ = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                         "--partitions", parts, "--consumers", 1, "--rate", rate, "--duration", 2,
                         "--linger-ms", 5, "--compression", "zstd", "--acks", "all", "--quiet")
    assert result["ok"], result
    assert result["effective"]["loop"] == "open"
    assert result["effective"]["records_per_batch"] == rate * 5 // 1000
    produced = result["produce"]["messages"]
    assert produced == pytest.approx(rate * 2, rel=0.1)
    assert sum(high for _, high in end_offsets(broker.bootstrap, topic, parts).values()) == produced
    assert result["consume"]["messages"] == produced
    got = consume(broker.bootstrap, topic, [1], expect={1: 10})
    assert all(len(v) == 100 for _, _, v in got[1])


def test_existing_topic_keeps_its_partitions_and_consumers_start_at_latest(broker, load_bin, tmp_path):
    topic = unique("load")
    first, _ = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                        "--partitions", 2, "--messages", 5000, "--quiet")
    second, _ = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                         "--partitions", 5, "--messages", 7000, "--consumers", 1, "--from-latest", "--quiet")
    assert second["effective"]["partitions"] == 2
    assert second["consume"]["messages"] == 7000  # not the 5000 written before it started
    assert sum(high for _, high in end_offsets(broker.bootstrap, topic, 2).values()) == 12000
    assert first["produce"]["messages"] == 5000


def test_sink_reports_the_generator_ceiling(load_bin, tmp_path):
    """--sink needs no broker: it generates, stamps and discards batches."""
    result, r = run_load(load_bin, tmp_path, "--sink", "--duration", 1, "--quiet")
    assert result["ok"], result
    assert result["consume"] is None
    assert result["produce"]["measured"]["msgs_per_s"] > 1_000_000, result["produce"]
    assert "SINK" in r.stdout


def committed_offsets(bootstrap, group, topic, partitions):
    """{partition: committed offset} as confluent-kafka reads the group's commits."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def test_group_consumers_split_the_topic_commit_and_resume(broker, load_bin, tmp_path):
    """--group: the group's consumers read every message once, commit the end offsets, and a
    second run in the same group resumes from the commits (reads only what came after)."""
    topic, group, parts = unique("lg"), unique("grp"), 4
    common = ["--bootstrap-server", broker.bootstrap, "--topic", topic, "--group", group, "--quiet"]
    result, _ = run_load(load_bin, tmp_path, *common, "--partitions", parts, "--producers", 1,
                         "--consumers", 2, "--messages", 50_000)
    assert result["ok"], result
    assert result["produce"]["messages"] == 50_000 and result["consume"]["messages"] == 50_000
    ends = end_offsets(broker.bootstrap, topic, parts)
    assert committed_offsets(broker.bootstrap, group, topic, parts) == {p: hi for p, (_, hi) in ends.items()}

    result, _ = run_load(load_bin, tmp_path, *common, "--producers", 1, "--consumers", 0, "--messages", 7_000)
    assert result["ok"], result
    result, _ = run_load(load_bin, tmp_path, *common, "--producers", 0, "--consumers", 3, "--messages", 7_000)
    assert result["ok"], result
    assert result["consume"]["messages"] == 7_000
    ends = end_offsets(broker.bootstrap, topic, parts)
    assert sum(hi for _, hi in ends.values()) == 57_000
    assert committed_offsets(broker.bootstrap, group, topic, parts) == {p: hi for p, (_, hi) in ends.items()}


def test_unreachable_broker_fails_with_a_message(load_bin, tmp_path):
    r = subprocess.run([load_bin, "--bootstrap-server", "127.0.0.1:1", "--duration", "1"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "127.0.0.1:1" in r.stderr


def test_idle_connections_are_held_while_the_load_runs(broker, load_bin, tmp_path):
    """--idle-connections N: N served connections stay open beside the load (the broker's
    open descriptors grow by at least N while it runs) and the counts still match the log."""
    import threading
    import time
    topic, n = unique("idle"), 500

    def open_fds():
        return len(os.listdir(f"/proc/{broker.proc.pid}/fd"))

    # Connections of the fixture's own clients close in the background: the
    # baseline is the fewest descriptors seen over a second.
    before = open_fds()
    for _ in range(10):
        time.sleep(0.1)
        before = min(before, open_fds())
    peak = [before]

    def watch():
        end = time.time() + 8
        while time.time() < end:
            peak[0] = max(peak[0], open_fds())
            time.sleep(0.1)

    w = threading.Thread(target=watch)
    w.start()
    result, _ = run_load(load_bin, tmp_path, "--bootstrap-server", broker.bootstrap, "--topic", topic,
                         "--producers", 1, "--consumers", 1, "--duration", 3, "--idle-connections", n, "--quiet")
    w.join()
    assert result["ok"], result
    assert result["effective"]["idle_connections"] == n
    # a few of the baseline's descriptors may still close while the load runs
    assert peak[0] - before >= n - n // 50, (before, peak[0])
    held = sum(hi for _, hi in end_offsets(broker.bootstrap, topic, 1).values())
    assert result["produce"]["messages"] == held == result["consume"]["messages"] > 0
