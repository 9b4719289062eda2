"""Hostile JoinGroup sequences against the real broker (issue 13): they get
Kafka's error codes, and real consumer groups on the same shard keep working.

Raw wire for the hostile requests (tests/kafka_wire.py), kafka-python for the
consumer group that must still join and consume afterwards.
"""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

import kafka_wire as kw
from helpers import create_topic, produce, unique

pytestmark = pytest.mark.timeout(120)

API_JOIN_GROUP = 11
JOIN_GROUP_V5 = 5  # the last version before flexible encoding: has group.instance.id and MEMBER_ID_REQUIRED
UNKNOWN_SERVER_ERROR = -1
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81


def join_request(group, member_id="", instance_id=None, protocol="range", session_ms=10000):
    """JoinGroup v5: group, session timeout, rebalance timeout, member id, instance id, type, protocols."""
    return (kw.string(group) + kw.i32(session_ms) + kw.i32(session_ms) + kw.string(member_id)
            + kw.string(instance_id) + kw.string("consumer")
            + kw.array([(protocol, b"\x00\x01")], lambda p: kw.string(p[0]) + kw.nbytes(p[1])))


def send_join(conn, group, **kwargs):
    """Sends a JoinGroup without waiting for its answer (joins wait for the join phase)."""
    _, frame = conn.frame(API_JOIN_GROUP, JOIN_GROUP_V5, join_request(group, **kwargs))
    conn.send_raw(frame)


def read_join(conn):
    """The answer to the JoinGroup sent last -> (error code, generation, member id)."""
    r = kw.Reader(conn.recv_frame())
    r.i32()  # correlation id
    r.i32()  # throttle time
    error, generation = r.i16(), r.i32()
    r.string()  # protocol name
    r.string()  # leader
    return error, generation, r.string()


def join(conn, group, **kwargs):
    send_join(conn, group, **kwargs)
    return read_join(conn)


def consume_as_group(bootstrap, topic, group, want, timeout_s=60):
    """A kafka-python group consumer subscribed to `topic` -> the values it reads."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        consumer_timeout_ms=timeout_s * 1000,
    )
    try:
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == want:
                break
        return values
    finally:
        consumer.close()


def test_three_joins_do_not_stop_the_shards_groups(broker_factory):
    """Defect 6: a static member, a MEMBER_ID_REQUIRED join and its rejoin with the static member's
    group.instance.id and a protocol nobody else supports. The rejoin used to be accepted and the
    next join phase panicked the shard's group timer task: no group on the shard completed a join
    again. Now the rejoin gets UNKNOWN_SERVER_ERROR (Kafka's answer) and every group goes on."""
    broker = broker_factory(shards=1)  # every group on one coordinator
    group = unique("hostile")
    with broker.wire() as static_conn, broker.wire() as pending_conn:
        send_join(static_conn, group, instance_id="ia", protocol="range")
        error, _, pending_id = join(pending_conn, group)
        assert error == MEMBER_ID_REQUIRED and pending_id
        error, _, _ = join(pending_conn, group, member_id=pending_id, instance_id="ia", protocol="nobody-else")
        assert error == UNKNOWN_SERVER_ERROR
        # The static member's join completes after group.initial.rebalance.delay.ms (3 s).
        error, generation, member_id = read_join(static_conn)
        assert (error, generation) == (0, 1) and member_id.startswith("ia-")

    topic = unique("after-hostile")
    create_topic(broker.bootstrap, topic, partitions=1)
    values = [f"v{i}".encode() for i in range(20)]
    produce(broker.bootstrap, topic, [(0, None, v) for v in values])
    assert consume_as_group(broker.bootstrap, topic, unique("real"), len(values)) == values
    log = broker.stop()
    assert "panicked" not in log and "BUG" not in log, log[-3000:]


def test_group_max_size_refuses_joins_past_it(broker_factory):
    """--group-max-size counts members and pending MEMBER_ID_REQUIRED ids: a flood of first joins
    gets GROUP_MAX_SIZE_REACHED past it, and the group's own members still complete their join."""
    broker = broker_factory(shards=1, **{"group-max-size": 3, "group-initial-rebalance-delay-ms": 0})
    group = unique("bounded")
    with broker.wire() as conn:
        pending = []
        for _ in range(3):
            error, _, member_id = join(conn, group)
            assert error == MEMBER_ID_REQUIRED
            pending.append(member_id)
        for _ in range(20):
            assert join(conn, group)[0] == GROUP_MAX_SIZE_REACHED
            assert join(conn, group, instance_id=unique("i"))[0] == GROUP_MAX_SIZE_REACHED
    # The three pending ids are let in, and their join phase completes.
    conns = [broker.wire() for _ in pending]
    try:
        for conn, member_id in zip(conns, pending):
            send_join(conn, group, member_id=member_id)
        answers = [read_join(conn) for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert sorted(answers) == sorted((0, 1, m) for m in pending)
