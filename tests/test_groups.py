"""Consumer groups against the real broker, with real clients (kafka-python 3.x, confluent-kafka).

Rebalances (eager and cooperative-sticky), LeaveGroup, session expiry of a kill -9'd member,
committed offsets surviving a broker restart, static membership, lag from committed offsets,
and the group admin APIs.  Every wait is bounded; the broker's stderr is attached on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from helpers import QUIET, create_topic, produce, unique, wait_until

HERE = Path(__file__).resolve().parent
CLIENT_SCRIPT = HERE / "group_clients.py"

pytestmark = pytest.mark.timeout(120)


# ----------------------------------------------------------------- helpers ---

class ProcConsumer:
    """A confluent-kafka group consumer in its own process (tests/group_clients.py)."""

    def __init__(self, bootstrap, group, topic, conf=None, report_records=False):
        spec = {"bootstrap": bootstrap, "group": group, "topic": topic, "conf": conf or {},
                "report_records": report_records}
        self.lines: list[dict] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(CLIENT_SCRIPT), json.dumps(spec)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=str(HERE),
        )
        self._out = threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines, True), daemon=True)
        self._err = threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr, False), daemon=True)
        self._out.start()
        self._err.start()

    @staticmethod
    def _pump(stream, sink, is_json):
        for line in stream:
            line = line.strip()
            if not line:
                continue
            if is_json:
                try:
                    sink.append(json.loads(line))
                except ValueError:
                    sink.append({"raw": line})
            else:
                sink.append(line)

    def assignment(self):
        """The last assignment() the process reported (None before the first report)."""
        for obj in reversed(list(self.lines)):
            if "assignment" in obj:
                return set(obj["assignment"])
        return None

    def events(self):
        return [o for o in list(self.lines) if "event" in o]

    def last_stats(self):
        for obj in reversed(list(self.lines)):
            if "stats" in obj:
                return obj["stats"]
        return None

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self, timeout=20):
        """Ask the process to close() its consumer (LeaveGroup unless static) and exit."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("close\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise AssertionError(f"consumer process did not close within {timeout}s; stderr: {self.stderr[-20:]}")
        return self.proc.returncode

    def ensure_dead(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def describe(self):
        return f"pid {self.proc.pid} rc {self.proc.poll()} events {self.events()[-20:]} stderr {self.stderr[-10:]}"


def cf_consumer(bootstrap, group, **conf):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        **QUIET,
        **conf,
    })


def parts_of(tps):
    return {tp.partition for tp in tps}


def pump(consumers, rounds=1, timeout=0.05, sink=None):
    """Poll each in-process confluent consumer (serves rebalance callbacks); collects records."""
    for _ in range(rounds):
        for c in consumers:
            m = c.poll(timeout)
            if m is not None and m.error() is None and sink is not None:
                sink.append((m.partition(), m.offset(), m.value()))


def disjoint_cover(assignments, n):
    """True if the given sets are pairwise disjoint and together are exactly range(n)."""
    union = set()
    total = 0
    for a in assignments:
        if a is None:
            return False
        union |= a
        total += len(a)
    return union == set(range(n)) and total == n


def log_end_offsets(bootstrap, topic, partitions):
    c = cf_consumer(bootstrap, unique("wm"), **{"enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in partitions}
    finally:
        c.close()


# ------------------------------------------------ 1. kafka-python eager rebalance ---

def test_kafka_python_third_member_joins_exactly_once(broker):
    """2 kafka-python consumers on 4 partitions, a third joins while records are produced:
    each partition ends with one owner, every record is processed exactly once (manual commits)."""
    from kafka import KafkaConsumer

    b = broker
    P = 4
    topic = create_topic(b.bootstrap, unique("kp-grp"), partitions=P)
    group = unique("kp-group")

    before = produce(b.bootstrap, topic, [(i % P, None, f"pre-{i}".encode()) for i in range(400)])
    assert len(before) == 400

    lock = threading.Lock()
    processed: list[tuple[str, int, int, bytes]] = []  # (consumer, partition, offset, value)
    assignments: dict[str, set] = {}
    commit_errors: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def run(name):
        c = None
        try:
            c = KafkaConsumer(
                bootstrap_servers=b.bootstrap,
                group_id=group,
                client_id=name,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=10000,
                heartbeat_interval_ms=1000,
                max_poll_records=20,
                request_timeout_ms=15000,
            )
            c.subscribe([topic])
            while not stop.is_set():
                batch = c.poll(timeout_ms=100)
                n = 0
                for tp, recs in batch.items():
                    for r in recs:
                        with lock:
                            processed.append((name, r.partition, r.offset, r.value))
                        n += 1
                if n:
                    time.sleep(0.01 * n / 20)  # "processing": keeps the group busy through the rebalance
                    try:
                        c.commit()
                    except Exception as e:  # CommitFailedError would mean redelivery
                        with lock:
                            commit_errors.append(f"{name}: {type(e).__name__}: {e}")
                with lock:
                    assignments[name] = {tp.partition for tp in c.assignment()}
        except Exception as e:
            with lock:
                errors.append(f"{name}: {type(e).__name__}: {e}")
        finally:
            if c is not None:
                try:
                    c.close()
                except Exception as e:
                    with lock:
                        errors.append(f"{name} close: {e!r}")

    threads = {}

    def start(name):
        t = threading.Thread(target=run, args=(name,), daemon=True, name=name)
        threads[name] = t
        t.start()

    def snapshot():
        with lock:
            return {k: set(v) for k, v in assignments.items()}, len(processed), list(errors)

    try:
        start("c1")
        start("c2")
        wait_until(lambda: (lambda a: a[2] or (len(a[0]) == 2 and disjoint_cover(a[0].values(), P)
                                               and all(a[0].values())))(snapshot()),
                   timeout=30, what="c1 and c2 to share the 4 partitions")
        assert not errors, errors
        wait_until(lambda: snapshot()[1] >= 100, timeout=20, what="the first records to be processed")

        # produce more records while the third member joins
        during_result = {}

        def produce_during():
            try:
                out = []
                for k in range(6):
                    out += produce(b.bootstrap, topic,
                                   [(i % P, None, f"during-{k}-{i}".encode()) for i in range(50)])
                    time.sleep(0.3)
                during_result["delivered"] = out
            except Exception as e:  # surfaced below
                during_result["error"] = repr(e)

        pt = threading.Thread(target=produce_during, daemon=True)
        pt.start()
        time.sleep(0.3)
        start("c3")

        def three_way():
            a, _, errs = snapshot()
            if errs:
                return errs
            return len(a) == 3 and all(a.values()) and disjoint_cover(a.values(), P) and a

        final = wait_until(three_way, timeout=40, what="a rebalance over c1, c2, c3")
        assert not errors, errors
        pt.join(30)
        assert not pt.is_alive(), "producer thread did not finish"
        assert "error" not in during_result, during_result
        delivered = before + during_result["delivered"]
        want = {(p, o): v for p, o, _k, v in delivered}
        assert len(want) == 400 + 300

        def all_done():
            with lock:
                return {(p, o) for _n, p, o, _v in processed} >= set(want)

        wait_until(all_done, timeout=40, what="every produced record to be processed")
        time.sleep(1.5)  # a late duplicate would show up here
        final2, _, _ = snapshot()
    finally:
        stop.set()
        for t in threads.values():
            t.join(20)
    assert not any(t.is_alive() for t in threads.values()), "a consumer thread did not stop"
    assert not errors, errors

    # each partition has exactly one owner across the three, and it stayed so
    owners = {p: [n for n, a in final.items() if p in a] for p in range(P)}
    assert all(len(o) == 1 for o in owners.values()), owners
    assert final2 == final, f"assignment changed after the rebalance settled: {final} -> {final2}"

    with lock:
        seen: dict[tuple[int, int], list] = {}
        for name, p, o, v in processed:
            seen.setdefault((p, o), []).append((name, v))
    dups = {k: v for k, v in seen.items() if len(v) > 1}
    missing = sorted(set(want) - set(seen))
    extra = sorted(set(seen) - set(want))
    assert not dups, (f"{len(dups)} records processed more than once, e.g. {list(dups.items())[:5]}; "
                      f"commit errors: {commit_errors[:5]}")
    assert not missing, f"{len(missing)} records never processed, e.g. {missing[:10]}"
    assert not extra, f"records that were never produced: {extra[:10]}"
    for k, v in seen.items():
        assert v[0][1] == want[k], (k, v, want[k])
    # the third member really took part in consuming
    assert any(n == "c3" for n, *_ in processed), "c3 processed nothing"

    # and the group's committed offsets are the log end of every partition
    ends = log_end_offsets(b.bootstrap, topic, range(P))
    assert ends == {p: sum(1 for pp, *_ in delivered if pp == p) for p in range(P)}, ends
    ad = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})
    listed = ad.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
    assert {tp.partition: tp.offset for tp in listed.topic_partitions} == ends, listed.topic_partitions


# ---------------------------------------- 2. confluent-kafka cooperative-sticky ---

def test_cooperative_sticky_close_then_kill9(broker):
    """3 cooperative-sticky consumers on 4 partitions; one close()s (LeaveGroup): the other two
    take its partitions; one of those is kill -9'd: after session.timeout.ms the survivor has all 4."""
    b = broker
    P = 4
    topic = create_topic(b.bootstrap, unique("coop"), partitions=P)
    group = unique("coop-group")
    conf = {"partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "enable.auto.commit": False}

    events = {"A": [], "B": []}

    def cb(name, kind):
        return lambda _c, ps: events[name].append((kind, sorted(parts_of(ps)), time.monotonic()))

    a = cf_consumer(b.bootstrap, group, **conf)
    bb = cf_consumer(b.bootstrap, group, **conf)
    a.subscribe([topic], on_assign=cb("A", "assign"), on_revoke=cb("A", "revoke"), on_lost=cb("A", "lost"))
    bb.subscribe([topic], on_assign=cb("B", "assign"), on_revoke=cb("B", "revoke"), on_lost=cb("B", "lost"))
    pc = ProcConsumer(b.bootstrap, group, topic, conf=conf)
    local = [a, bb]
    try:
        def three_share():
            pump(local)
            return disjoint_cover([parts_of(a.assignment()), parts_of(bb.assignment()), pc.assignment()], P) \
                and a.assignment() and bb.assignment() and pc.assignment()

        wait_until(three_share, timeout=40, interval=0.01,
                   what=f"3 members sharing 4 partitions (A {events['A']}, B {events['B']}, C {pc.describe()})")
        a_parts = parts_of(a.assignment())
        b_before = parts_of(bb.assignment())

        # ---- A closes: LeaveGroup; B and C take over its partitions ---------------------------
        a.close()
        local = [bb]

        def two_share():
            pump(local)
            return disjoint_cover([parts_of(bb.assignment()), pc.assignment()], P)

        wait_until(two_share, timeout=30, interval=0.01,
                   what=f"B and C to take over A's partitions {a_parts} (B {events['B']}, C {pc.describe()})")
        # cooperative: B never lost what it had
        assert b_before <= parts_of(bb.assignment()), (b_before, parts_of(bb.assignment()))
        assert not [e for e in events["B"] if e[0] in ("revoke", "lost")], events["B"]
        c_parts = pc.assignment()
        assert c_parts, "C got nothing"

        # ---- C is kill -9'd: after session.timeout.ms its partitions move to B ----------------
        # (settle first so B's state is steady)
        pump(local, rounds=20)
        t_kill = time.monotonic()
        pc.kill9()

        def b_has_all():
            pump(local)
            return parts_of(bb.assignment()) == set(range(P))

        wait_until(b_has_all, timeout=25, interval=0.01,
                   what=f"B to get all 4 partitions after C (had {c_parts}) was killed (B events {events['B']})")
        took = time.monotonic() - t_kill
        # C died silently (no LeaveGroup): the broker can only notice when its session expires
        assert took >= 3.0, f"C's partitions moved {took:.1f}s after kill -9, before its 6 s session could expire"
        assert not [e for e in events["B"] if e[0] in ("revoke", "lost")], events["B"]
    finally:
        pc.ensure_dead()
        for c in local:
            c.close()


# ------------------------------------------------ 3. commit, restart, resume ---

def test_committed_offsets_survive_broker_restart(broker):
    """A consumer commits part of a topic; the broker restarts (SIGTERM); a new consumer in the
    group starts exactly at the committed offsets (first uncommitted record first, nothing before)."""
    b = broker
    P = 2
    topic = create_topic(b.bootstrap, unique("restart-grp"), partitions=P)
    group = unique("restart-group")
    produced = produce(b.bootstrap, topic, [(i % P, None, f"v-{i}".encode()) for i in range(200)])
    by_part = {p: {o: v for pp, o, _k, v in produced if pp == p} for p in range(P)}
    assert all(len(by_part[p]) == 100 for p in range(P))

    # ---- first consumer: process 60 records, commit synchronously after processing --------
    c = cf_consumer(b.bootstrap, group, **{"enable.auto.commit": False})
    c.subscribe([topic])
    processed = []
    try:
        deadline = time.monotonic() + 30
        while len(processed) < 60:
            assert time.monotonic() < deadline, f"only {len(processed)} records consumed in 30 s"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            processed.append((m.partition(), m.offset()))
        last = {}
        for p, o in processed:
            last[p] = max(last.get(p, -1), o)
        to_commit = [TopicPartition(topic, p, o + 1) for p, o in sorted(last.items())]
        res = c.commit(offsets=to_commit, asynchronous=False)
        assert all(tp.error is None for tp in res), res
        committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, p) for p in range(P)],
                                                                    timeout=10)}
    finally:
        c.close()
    expected = {p: (last[p] + 1 if p in last else -1001) for p in range(P)}
    assert committed == expected, (committed, expected)
    # make the test meaningful: something committed in the middle of at least one partition
    assert any(0 < committed[p] < 100 for p in range(P)), committed

    # ---- restart the broker -----------------------------------------------------------------
    b.stop()
    b.start()

    # ---- a new consumer in the same group resumes exactly after the committed offsets -------
    start_at = {p: (committed[p] if committed[p] >= 0 else 0) for p in range(P)}
    c2 = cf_consumer(b.bootstrap, group, **{"enable.auto.commit": False, "enable.partition.eof": True})
    c2.subscribe([topic])
    got = {p: [] for p in range(P)}
    eof = set()
    try:
        after = {tp.partition: tp.offset for tp in c2.committed([TopicPartition(topic, p) for p in range(P)],
                                                                timeout=15)}
        assert after == committed, f"committed offsets after restart {after} != before {committed}"
        deadline = time.monotonic() + 30
        while not (eof == set(range(P)) and all(len(got[p]) == 100 - start_at[p] for p in range(P))):
            assert time.monotonic() < deadline, f"resume: got {({p: len(v) for p, v in got.items()})}, eof {eof}"
            m = c2.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            got[m.partition()].append((m.offset(), m.value()))
            assert m.offset() >= start_at[m.partition()], \
                f"read offset {m.offset()} of partition {m.partition()} before the committed {start_at}"
    finally:
        c2.close()
    for p in range(P):
        offs = [o for o, _ in got[p]]
        assert offs and offs[0] == start_at[p], f"partition {p}: first record {offs[:3]}, committed {start_at[p]}"
        assert offs == list(range(start_at[p], 100)), f"partition {p}: offsets {offs[:5]}...{offs[-5:]}"
        assert [v for _, v in got[p]] == [by_part[p][o] for o in offs]


# ------------------------------------------------------ 4. static membership ---

@pytest.mark.parametrize("how", ["kill9", "close"])
def test_static_member_restart_keeps_partitions(broker, how):
    """Static members A (its own process) and B: A is kill -9'd, or close()d (a static member's
    close sends no LeaveGroup), and restarted with the same group.instance.id within the session
    timeout: it gets the same partitions back, B is never revoked, no rebalance happens (B's
    librdkafka rebalance count is unchanged, B's commits with its generation are still accepted),
    the group stays Stable."""
    b = broker
    P = 4
    topic = create_topic(b.bootstrap, unique("static"), partitions=P)
    group = unique("static-group")
    base = {"session.timeout.ms": 30000, "heartbeat.interval.ms": 1000, "enable.auto.commit": False}

    b_events = []
    b_stats = []
    cb_conf = {
        **base,
        "group.instance.id": "instance-B",
        "statistics.interval.ms": 200,
        "stats_cb": lambda raw: b_stats.append((json.loads(raw).get("cgrp") or {}).get("rebalance_cnt")),
    }
    cons_b = cf_consumer(b.bootstrap, group, **cb_conf)
    cons_b.subscribe([topic],
                     on_assign=lambda _c, ps: b_events.append(("assign", sorted(parts_of(ps)), time.monotonic())),
                     on_revoke=lambda _c, ps: b_events.append(("revoke", sorted(parts_of(ps)), time.monotonic())),
                     on_lost=lambda _c, ps: b_events.append(("lost", sorted(parts_of(ps)), time.monotonic())))
    a_conf = {**base, "group.instance.id": "instance-A"}
    pa = ProcConsumer(b.bootstrap, group, topic, conf=a_conf)
    pa2 = None
    try:
        def settled():
            pump([cons_b])
            return disjoint_cover([parts_of(cons_b.assignment()), pa.assignment()], P) \
                and cons_b.assignment() and pa.assignment()

        wait_until(settled, timeout=40, interval=0.01,
                   what=f"A and B sharing the partitions (B {b_events}, A {pa.describe()})")
        # let the group settle: no further rebalance for a couple of seconds
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            pump([cons_b])
        a_parts = pa.assignment()
        b_parts = parts_of(cons_b.assignment())
        assert disjoint_cover([a_parts, b_parts], P), (a_parts, b_parts)
        n_events_before = len(b_events)
        rebalances_before = b_stats[-1]
        assert rebalances_before is not None and rebalances_before >= 1, b_stats[-5:]
        ad = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})
        desc = ad.describe_consumer_groups([group])[group].result(15)
        assert str(desc.state).endswith("STABLE"), desc.state
        assert {m.group_instance_id for m in desc.members} == {"instance-A", "instance-B"}, desc.members
        a_member_before = next(m.member_id for m in desc.members if m.group_instance_id == "instance-A")

        # ---- A dies without LeaveGroup, and comes back with the same group.instance.id ------
        if how == "kill9":
            pa.kill9()
        else:
            assert pa.close() == 0, pa.describe()
            assert "revoke" in [e["event"] for e in pa.events()], pa.describe()
        for _ in range(10):
            pump([cons_b])
        pa2 = ProcConsumer(b.bootstrap, group, topic, conf=a_conf)

        def a_back():
            pump([cons_b])
            got = pa2.assignment()
            return got is not None and len(got) > 0 and got

        back = wait_until(a_back, timeout=25, interval=0.01,
                          what=f"restarted A to get partitions (A {pa2.describe()}, B {b_events})")
        assert back == a_parts, f"restarted static member got {back}, had {a_parts}"
        # watch a little longer for a late rebalance reaching B
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            pump([cons_b])
        assert pa2.assignment() == a_parts
        assert parts_of(cons_b.assignment()) == b_parts
        assert b_events[n_events_before:] == [], f"B saw rebalance events: {b_events[n_events_before:]}"
        assert not [e for e in b_events if e[0] in ("revoke", "lost")], b_events
        assert b_stats[-1] == rebalances_before, \
            f"B's rebalance count went {rebalances_before} -> {b_stats[-1]}"
        # B's generation is still the group's: its commit is accepted (ILLEGAL_GENERATION otherwise)
        res = cons_b.commit(offsets=[TopicPartition(topic, p, 0) for p in sorted(b_parts)], asynchronous=False)
        assert all(tp.error is None for tp in res), res
        desc2 = ad.describe_consumer_groups([group])[group].result(15)
        assert str(desc2.state).endswith("STABLE"), desc2.state
        members = {m.group_instance_id: m for m in desc2.members}
        assert set(members) == {"instance-A", "instance-B"}, desc2.members
        assert members["instance-A"].member_id != a_member_before, "a rejoining static member gets a new member id"
        assert parts_of(members["instance-A"].assignment.topic_partitions) == a_parts
        assert parts_of(members["instance-B"].assignment.topic_partitions) == b_parts
    finally:
        pa.ensure_dead()
        if pa2 is not None:
            pa2.ensure_dead()
        cons_b.close()


# ----------------------------------------------------------------- 5. lag ---

def test_lag_from_committed_offsets(broker):
    """Commit known offsets, produce N more per partition: list_consumer_group_offsets returns
    the committed offsets and log end - committed == N for every partition."""
    b = broker
    P = 3
    N = 25
    topic = create_topic(b.bootstrap, unique("lag"), partitions=P)
    group = unique("lag-group")
    counts = {0: 10, 1: 20, 2: 30}
    produce(b.bootstrap, topic, [(p, None, f"a-{p}-{i}".encode()) for p in range(P) for i in range(counts[p])])

    c = cf_consumer(b.bootstrap, group, **{"enable.auto.commit": False})
    c.subscribe([topic])
    try:
        seen = {p: 0 for p in range(P)}
        deadline = time.monotonic() + 30
        while seen != counts:
            assert time.monotonic() < deadline, f"consumed {seen} of {counts}"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                raise KafkaException(m.error())
            seen[m.partition()] += 1
        res = c.commit(asynchronous=False)  # the consumed positions: exactly counts
        assert {tp.partition: tp.offset for tp in res} == counts, res

        produce(b.bootstrap, topic, [(p, None, f"b-{p}-{i}".encode()) for p in range(P) for i in range(N)])

        ad = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})
        fut = ad.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
        listed = fut.result(15)
        committed = {tp.partition: tp.offset for tp in listed.topic_partitions if tp.topic == topic}
        assert committed == counts, committed
        assert all(tp.error is None for tp in listed.topic_partitions), listed.topic_partitions
        ends = log_end_offsets(b.bootstrap, topic, range(P))
        assert ends == {p: counts[p] + N for p in range(P)}, ends
        lag = {p: ends[p] - committed[p] for p in range(P)}
        assert lag == {p: N for p in range(P)}, lag

        # a subset query asks for exactly those partitions
        fut = ad.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 1), TopicPartition(topic, 2)])])[group]
        sub = {tp.partition: tp.offset for tp in fut.result(15).topic_partitions}
        assert sub == {1: counts[1], 2: counts[2]}, sub
    finally:
        c.close()


# ------------------------------------------ 6. kafka-python group admin APIs ---

def test_kafka_python_admin_list_describe_delete(broker):
    """kafka-python KafkaAdminClient: list / describe / delete groups; delete refused with
    GROUP_NOT_EMPTY while a member is active, accepted once the group is empty."""
    from kafka import KafkaAdminClient, KafkaConsumer

    def err_name(e):  # kafka-python 3 reports error names as strings; older versions classes
        if isinstance(e, str):
            return e
        return e.__name__ if isinstance(e, type) else type(e).__name__

    b = broker
    topic = create_topic(b.bootstrap, unique("kp-admin"), partitions=2)
    group = unique("kp-admin-group")
    produce(b.bootstrap, topic, [(i % 2, None, f"x{i}".encode()) for i in range(20)])

    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, client_id="admin-test-member",
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=10000, heartbeat_interval_ms=1000)
    adm = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    closed = False
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 20:
            assert time.monotonic() < deadline, f"consumed {got} of 20"
            got += sum(len(v) for v in c.poll(timeout_ms=200).values())
        c.commit()

        def group_ids():
            out = []
            for g in adm.list_groups():
                gid = g["group_id"] if isinstance(g, dict) else g[0]
                out.append((gid, g))
            return out

        listed = dict(group_ids())
        assert group in listed, listed
        desc = adm.describe_groups([group])
        d = desc[group] if isinstance(desc, dict) else desc[0]
        d = d if isinstance(d, dict) else d._asdict()
        assert d.get("error_code", 0) == 0, d
        assert d["group_state"] == "Stable", d
        assert d["protocol_type"] == "consumer", d
        assert len(d["members"]) == 1, d
        m = d["members"][0]
        assert m["client_id"] == "admin-test-member", m
        assigned = m["member_assignment"]["assigned_partitions"]
        assert [(a["topic"], sorted(a["partitions"])) for a in assigned] == [(topic, [0, 1])], m
        assert group in dict((g["group_id"], g) for g in adm.list_groups(states_filter=["Stable"]))
        assert group not in dict((g["group_id"], g) for g in adm.list_groups(states_filter=["Empty"]))

        # delete while a member is active: GROUP_NOT_EMPTY
        res = adm.delete_groups([group])
        errs = dict(res)
        assert err_name(errs[group]) == "NonEmptyGroupError", res
        offs = adm.list_group_offsets({group: None})[group]
        assert {tp.partition: om.offset for tp, om in offs.items()} == {0: 10, 1: 10}, offs

        c.close()
        closed = True
        d2 = adm.describe_groups([group])
        d2 = d2[group] if isinstance(d2, dict) else d2[0]
        d2 = d2 if isinstance(d2, dict) else d2._asdict()
        assert d2["group_state"] == "Empty", d2
        assert d2["members"] == [], d2

        res = adm.delete_groups([group])
        errs = dict(res)
        assert err_name(errs[group]) in ("NoError", "OK"), res
        assert group not in dict(group_ids())
        offs = adm.list_group_offsets({group: None})[group]
        assert not offs, f"offsets of a deleted group: {offs}"
        d3 = adm.describe_groups([group])
        d3 = d3[group] if isinstance(d3, dict) else d3[0]
        d3 = d3 if isinstance(d3, dict) else d3._asdict()
        assert d3["group_state"] == "Dead", d3
        assert err_name(dict(adm.delete_groups([group]))[group]) == "GroupIdNotFoundError"
    finally:
        if not closed:
            c.close()
        adm.close()


def test_kafka_python_admin_removes_static_member(broker):
    """KafkaAdminClient.remove_group_members (batched LeaveGroup v3+ by group.instance.id) takes a
    static member out at once: the group is Empty and can be deleted."""
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka.admin import MemberToRemove

    b = broker
    topic = create_topic(b.bootstrap, unique("kp-static"), partitions=2)
    group = unique("kp-static-group")
    c = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id=group, group_instance_id="inst-1",
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=30000, heartbeat_interval_ms=1000)
    adm = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=15000)
    try:
        c.subscribe([topic])
        wait_until(lambda: c.poll(timeout_ms=100) is not None and len(c.assignment()) == 2,
                   timeout=30, what="the static member's assignment")
        d = adm.describe_groups([group])[group]
        assert d["group_state"] == "Stable" and [m["group_instance_id"] for m in d["members"]] == ["inst-1"], d
        res = adm.remove_group_members(group, [MemberToRemove(group_instance_id="inst-1")])
        assert {k: getattr(v, "__name__", v) for k, v in res.items()} == {"inst-1": "NoError"}, res
        d = adm.describe_groups([group])[group]
        assert d["group_state"] == "Empty" and d["members"] == [], d
        res = adm.remove_group_members(group, [MemberToRemove(group_instance_id="inst-1")])
        assert {k: getattr(v, "__name__", v) for k, v in res.items()} == {"inst-1": "UnknownMemberIdError"}, res
    finally:
        c.close()
        adm.close()


def test_offsets_of_a_deleted_topic_are_removed(broker):
    """Deleting a topic removes every group's committed offsets for it, and the
    removal (tombstones in __consumer_offsets) survives a restart."""
    b = broker
    gone, kept = create_topic(b.bootstrap, unique("gone"), partitions=2), create_topic(b.bootstrap, unique("kept"), partitions=1)
    group = unique("g-deleted")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "enable.auto.commit": False, **QUIET})
    c.commit(offsets=[TopicPartition(gone, 0, 5), TopicPartition(gone, 1, 7), TopicPartition(kept, 0, 3)], asynchronous=False)
    c.close()
    ad = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})

    def committed():
        listed = ad.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(15)
        return {(tp.topic, tp.partition): tp.offset for tp in listed.topic_partitions if tp.offset >= 0}

    assert committed() == {(gone, 0): 5, (gone, 1): 7, (kept, 0): 3}
    ad.delete_topics([gone])[gone].result(15)
    wait_until(lambda: committed() == {(kept, 0): 3}, timeout=10, what="offsets of the deleted topic removed")
    b.stop()
    b.start()
    ad = AdminClient({"bootstrap.servers": b.bootstrap, **QUIET})
    assert committed() == {(kept, 0): 3}
