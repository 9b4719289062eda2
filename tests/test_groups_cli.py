"""`corelog groups ...` against a running broker, with confluent-kafka consumers."""

from __future__ import annotations

import os
import re
import subprocess
import time
from datetime import datetime, timezone

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from helpers import QUIET, create_topic, produce, unique, wait_until

OFFSET_HEADER = ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]
MEMBER_HEADER = ["CONSUMER-ID", "GROUP-INSTANCE-ID", "CLIENT-ID", "HOST", "#PARTITIONS", "ASSIGNMENT"]
JOIN_TIMEOUT = 30.0  # librdkafka waits group.initial.rebalance.delay (3 s) on a join


def groups(b, *args, check=True, timeout=60):
    r = subprocess.run([b.binary, "groups", *args, "--bootstrap-server", b.bootstrap],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "RUST_BACKTRACE": "0", "RUST_LIB_BACKTRACE": "0"})
    if check:
        assert r.returncode == 0, f"corelog groups {' '.join(args)} exited {r.returncode}:\n" \
                                  f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def table_after(lines, header):
    """Rows (split on whitespace) of the table whose header is ``header``."""
    for i, line in enumerate(lines):
        if line.split() == header:
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                cells = row.split()
                assert len(cells) == len(header), f"ragged row {row!r}"
                rows.append(cells)
            return rows
    return None


def describe(b, group):
    """(header fields, member rows, {(topic, partition): offset row}, stdout)."""
    out = groups(b, "describe", group).stdout
    lines = out.splitlines()
    fields = dict(re.findall(r"(\w+): (\S+)", lines[0]))
    members = table_after(lines, MEMBER_HEADER) or []
    rows = table_after(lines, OFFSET_HEADER) or []
    offsets = {(r[0], int(r[1])): r for r in rows}
    return fields, members, offsets, out


def listed(b):
    out = groups(b, "list").stdout.splitlines()
    assert out[0].split() == ["GROUP", "STATE", "PROTOCOL-TYPE"], out
    return {cells[0]: cells[1:] for cells in (line.split() for line in out[1:])}


def plan(b, group, *args, check=True):
    r = groups(b, "reset-offsets", group, *args, check=check)
    if not check and r.returncode != 0:
        return None, r
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["TOPIC", "PARTITION", "NEW-OFFSET"], r.stdout
    return {(c[0], int(c[1])): int(c[2]) for c in (line.split() for line in lines[1:])}, r


def consumer(b, group, **conf):
    return Consumer({
        "bootstrap.servers": b.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        **QUIET, **conf,
    })


def join(c, topic, timeout=JOIN_TIMEOUT):
    """Subscribe and poll until the group assigned partitions; returns the messages read on the way."""
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout
    while not c.assignment():
        assert time.monotonic() < deadline, f"no assignment within {timeout}s"
        m = c.poll(0.2)
        if m is not None and m.error() is None:
            got.append(m)
    return got


def commit_and_close(b, group, topic, offsets):
    """A group member that subscribes, reads a little, commits ``offsets`` {partition: offset}, leaves."""
    c = consumer(b, group)
    try:
        join(c, topic)
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def wait_state(b, group, state, timeout=20.0):
    return wait_until(lambda: describe(b, group)[0].get("State") == state, timeout,
                      what=f"group {group} in state {state}")


def first_offsets(b, group, topic, partitions, timeout=JOIN_TIMEOUT):
    """The offset a new member of ``group`` starts at, per partition (auto.offset.reset=latest would hide 0)."""
    c = consumer(b, group, **{"auto.offset.reset": "latest"})
    first = {}
    try:
        for m in join(c, topic, timeout):
            first.setdefault(m.partition(), m.offset())
        deadline = time.monotonic() + timeout
        while len(first) < len(partitions):
            assert time.monotonic() < deadline, f"only read from {sorted(first)}"
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                first.setdefault(m.partition(), m.offset())
    finally:
        c.close()
    return first


def test_describe_shows_committed_offsets_log_end_and_lag(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("gdesc"), partitions=3)
    group = unique("gdesc-g")
    produce(b.bootstrap, topic, [(p, None, f"{p}-{i}".encode()) for p in range(3) for i in range(20)])
    commit_and_close(b, group, topic, {0: 10, 1: 10, 2: 10})
    more = {0: 5, 1: 0, 2: 12}
    produce(b.bootstrap, topic, [(p, None, b"more") for p, n in more.items() for _ in range(n)])

    wait_state(b, group, "Empty")
    fields, members, offsets, out = describe(b, group)
    assert fields["Group"] == group, out
    assert fields["ProtocolType"] == "consumer", out
    assert fields["Members"] == "0" and members == [], out
    assert sorted(offsets) == [(topic, p) for p in range(3)], out
    for p, n in more.items():
        row = offsets[(topic, p)]
        assert row[2:5] == ["10", str(20 + n), str(10 + n)], f"partition {p}:\n{out}"
        assert row[5:] == ["-", "-", "-"], out

    assert listed(b)[group] == ["Empty", "consumer"]


def test_describe_and_list_an_active_group(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("gact"), partitions=3)
    group = unique("gact-g")
    produce(b.bootstrap, topic, [(p, None, b"x") for p in range(3) for _ in range(4)])
    c = consumer(b, group, **{"client.id": "cli-test-client"})
    try:
        join(c, topic)
        c.commit(offsets=[TopicPartition(topic, p, 3) for p in range(3)], asynchronous=False)
        wait_state(b, group, "Stable")
        fields, members, offsets, out = describe(b, group)
        assert fields["Protocol"] in ("range", "roundrobin", "cooperative-sticky"), out
        assert fields["Members"] == "1", out
        assert len(members) == 1, out
        member_id, instance_id, client_id, host, count, assignment = members[0]
        assert client_id == "cli-test-client", out
        assert count == "3" and assignment == f"{topic}(0,1,2)", out
        assert instance_id == "-", out
        for p in range(3):
            assert offsets[(topic, p)] == [topic, str(p), "3", "4", "1", member_id, host, client_id], out
        assert listed(b)[group][0] == "Stable"

        # Kafka refuses to move the offsets of a group with members, dry run or not.
        _, r = plan(b, group, "--topic", topic, "--to-earliest", "--execute", check=False)
        assert r.returncode != 0, r.stdout
        assert f"group {group} has active members; stop them first (state: Stable)" in r.stderr, r.stderr
        assert describe(b, group)[2][(topic, 0)][2] == "3", "offsets were changed anyway"

        r = groups(b, "delete", group, check=False)
        assert r.returncode != 0, r.stdout
        assert "NON_EMPTY_GROUP" in r.stderr, r.stderr
        assert "Deleted group" not in r.stdout
    finally:
        c.close()

    wait_state(b, group, "Empty")
    r = groups(b, "delete", group)
    assert r.stdout.strip() == f"Deleted group {group}.", r.stdout
    assert group not in listed(b)
    r = groups(b, "describe", group, check=False)
    assert r.returncode != 0 and "GROUP_ID_NOT_FOUND" in r.stderr, (r.stdout, r.stderr)
    r = groups(b, "delete", group, check=False)
    assert r.returncode != 0 and "GROUP_ID_NOT_FOUND" in r.stderr, (r.stdout, r.stderr)


def test_reset_offsets_plans_and_execute(broker):
    b = broker
    topic = create_topic(b.bootstrap, unique("greset"), partitions=3)
    group = unique("greset-g")
    # record i of every partition has timestamp t0 + i seconds, each in its
    # own batch (corelog answers ListOffsets by timestamp per batch)
    t0 = (int(time.time()) - 3600) * 1000
    pr = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0, **QUIET})
    for i in range(20):
        for p in range(3):
            pr.produce(topic, value=f"{p}-{i}".encode(), partition=p, timestamp=t0 + i * 1000)
        assert pr.flush(30) == 0
    commit_and_close(b, group, topic, {0: 10, 1: 10, 2: 10})
    wait_state(b, group, "Empty")
    parts = [(topic, p) for p in range(3)]

    def iso(ms, zone="Z"):
        text = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        return text + zone

    # dry runs print the plan and commit nothing
    new, r = plan(b, group, "--topic", topic, "--to-offset", "5")
    assert new == {tp: 5 for tp in parts}, r.stdout
    assert "--execute" in r.stderr
    new, _ = plan(b, group, "--topic", topic, "--to-latest")
    assert new == {tp: 20 for tp in parts}
    new, _ = plan(b, group, "--topic", topic, "--to-earliest")
    assert new == {tp: 0 for tp in parts}
    new, _ = plan(b, group, "--topic", topic, "--to-offset", "500")
    assert new == {tp: 20 for tp in parts}, "past the end: the log end offset"
    new, _ = plan(b, group, "--topic", f"{topic}:0,2", "--to-offset", "7")
    assert new == {(topic, 0): 7, (topic, 2): 7}
    new, _ = plan(b, group, "--topic", f"{topic}:1", "--topic", f"{topic}:2", "--to-latest")
    assert new == {(topic, 1): 20, (topic, 2): 20}
    new, r = plan(b, group, "--topic", topic, "--to-datetime", iso(t0 + 5500))
    assert new == {tp: 6 for tp in parts}, r.stdout
    new, _ = plan(b, group, "--topic", topic, "--to-datetime", iso(t0 + 5000))
    assert new == {tp: 5 for tp in parts}
    # the same instant written with an offset from UTC
    new, _ = plan(b, group, "--topic", topic, "--to-datetime", iso(t0 + 5000 + 2 * 3600_000, "+02:00"))
    assert new == {tp: 5 for tp in parts}
    new, _ = plan(b, group, "--topic", topic, "--to-datetime", iso(t0 - 60_000))
    assert new == {tp: 0 for tp in parts}
    new, _ = plan(b, group, "--topic", topic, "--to-datetime", iso(t0 + 3600_000))
    assert new == {tp: 20 for tp in parts}, "nothing at or after the time: the log end offset"
    offsets = describe(b, group)[2]
    assert all(offsets[tp][2] == "10" for tp in parts), "a dry run committed"

    # unknown topics and partitions are refused
    r = groups(b, "reset-offsets", group, "--topic", unique("nosuch"), "--to-earliest", check=False)
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr, r.stderr
    r = groups(b, "reset-offsets", group, "--topic", f"{topic}:9", "--to-earliest", check=False)
    assert r.returncode != 0 and "UNKNOWN_TOPIC_OR_PARTITION" in r.stderr, r.stderr

    # --execute commits: some partitions only, then the rest
    new, _ = plan(b, group, "--topic", f"{topic}:1", "--to-offset", "15", "--execute")
    assert new == {(topic, 1): 15}
    offsets = describe(b, group)[2]
    assert [offsets[tp][2] for tp in parts] == ["10", "15", "10"]
    assert [offsets[tp][4] for tp in parts] == ["10", "5", "10"]

    new, _ = plan(b, group, "--topic", topic, "--to-earliest", "--execute")
    assert new == {tp: 0 for tp in parts}
    offsets = describe(b, group)[2]
    assert [offsets[tp][2:5] for tp in parts] == [["0", "20", "20"]] * 3

    # a new member of the group starts where the reset put it
    assert first_offsets(b, group, topic, range(3)) == {0: 0, 1: 0, 2: 0}

    wait_state(b, group, "Empty")
    new, _ = plan(b, group, "--topic", topic, "--to-datetime", iso(t0 + 12_000), "--execute")
    assert new == {tp: 12 for tp in parts}
    assert first_offsets(b, group, topic, range(3)) == {0: 12, 1: 12, 2: 12}


def test_reset_offsets_of_a_new_group_and_delete_several(broker):
    """A group that never had members can get offsets (a "simple" commit), be listed and deleted."""
    b = broker
    topic = create_topic(b.bootstrap, unique("gnew"), partitions=2)
    produce(b.bootstrap, topic, [(p, None, b"x") for p in range(2) for _ in range(6)])
    g1, g2 = unique("gnew-a"), unique("gnew-b")
    for g in (g1, g2):
        new, _ = plan(b, g, "--topic", topic, "--to-offset", "4", "--execute")
        assert new == {(topic, 0): 4, (topic, 1): 4}
    offsets = describe(b, g1)[2]
    assert [offsets[(topic, p)][2:5] for p in range(2)] == [["4", "6", "2"]] * 2
    names = listed(b)
    assert g1 in names and g2 in names, names
    r = groups(b, "delete", g1, g2)
    assert r.stdout.splitlines() == [f"Deleted group {g1}.", f"Deleted group {g2}."]
    names = listed(b)
    assert g1 not in names and g2 not in names, names


def test_groups_list_asks_every_broker(broker_factory):
    """Groups live on different shards (coordinators): list merges what every shard says, sorted."""
    b = broker_factory(shards=3)
    topic = create_topic(b.bootstrap, unique("glist"), partitions=1)
    produce(b.bootstrap, topic, [(0, None, b"x")])
    names = sorted(unique("glist-g") for _ in range(12))
    coordinators = set()
    for g in names:
        plan(b, g, "--topic", topic, "--to-earliest", "--execute")
        coordinators.add(describe(b, g)[0]["Coordinator"])
    assert len(coordinators) > 1, "all groups on one coordinator: the test proves nothing"
    out = groups(b, "list").stdout.splitlines()
    rows = [line.split() for line in out[1:]]
    assert [r[0] for r in rows] == names, out
    assert all(r[1] == "Empty" for r in rows), out


def test_to_datetime_inside_one_batch(broker):
    """ListOffsets by timestamp answers the first *record* at or after the time, even inside a
    batch (as Kafka does), not the batch's base offset."""
    b = broker
    topic = create_topic(b.bootstrap, unique("gbatch"), partitions=1)
    group = unique("gbatch-g")
    t0 = (int(time.time()) - 3600) * 1000
    pr = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 1000, **QUIET})
    for i in range(20):
        pr.produce(topic, value=b"x", partition=0, timestamp=t0 + i * 1000)
    assert pr.flush(30) == 0
    when = datetime.fromtimestamp((t0 + 5500) / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    new, r = plan(b, group, "--topic", topic, "--to-datetime", when)
    assert new == {(topic, 0): 6}, r.stdout
