"""Requests kafka_wire does not encode, for hostile-input tests: group offsets,
configs, partitions and a raw Fetch, plus the compact (flexible) encodings a
group id longer than an i16 length needs.  Answers are parsed only as far as
the tests look.
"""

from __future__ import annotations

import re
import socket

import kafka_wire as kw
from kafka_wire import array, i8, i16, i32, i64, nbytes, string, uvarint

API_LIST_OFFSETS = 2
API_OFFSET_COMMIT = 8
API_OFFSET_FETCH = 9
API_DESCRIBE_GROUPS = 15
API_CREATE_TOPICS = 19
API_DELETE_TOPICS = 20
API_DELETE_RECORDS = 21
API_DESCRIBE_CONFIGS = 32
API_ALTER_CONFIGS = 33
API_CREATE_PARTITIONS = 37
API_INCREMENTAL_ALTER_CONFIGS = 44

INVALID_TOPIC_EXCEPTION = 17
NOT_COORDINATOR = 16
INVALID_GROUP_ID = 24
INVALID_COMMIT_OFFSET_SIZE = 28
INVALID_REQUEST = 42
POLICY_VIOLATION = 44

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
OP_SET = 0


# ------------------------------------------------------ compact encodings ---

def cstring(s):
    if s is None:
        return uvarint(0)
    b = s.encode() if isinstance(s, str) else s
    return uvarint(len(b) + 1) + b


def carray(items, enc):
    return uvarint(len(items) + 1) + b"".join(enc(x) for x in items)


TAGS = b"\x00"


def read_uvarint(r: kw.Reader) -> int:
    shift = value = 0
    while True:
        b = r.i8() & 0xFF
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value
        shift += 7


def read_cstring(r: kw.Reader):
    n = read_uvarint(r) - 1
    return None if n < 0 else r._take(n).decode()


def read_carray(r: kw.Reader, fn):
    n = read_uvarint(r) - 1
    return None if n < 0 else [fn(r) for _ in range(n)]


def skip_tags(r: kw.Reader):
    for _ in range(read_uvarint(r)):
        read_uvarint(r)
        r._take(read_uvarint(r))


# ------------------------------------------------------------- the broker ---

def rss_bytes(broker) -> int:
    return _status(broker, "VmRSS")


def peak_rss_bytes(broker) -> int:
    return _status(broker, "VmHWM")


def _status(broker, field) -> int:
    with open(f"/proc/{broker.proc.pid}/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


def java_hash_partition(group: str, partitions: int = 50) -> int:
    """Kafka's abs(groupId.hashCode) % partitions, for ASCII ids."""
    h = 0
    for b in group.encode():
        h = (h * 31 + b) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


def coordinator_shard(conn: kw.Conn, group: str) -> int:
    """The shard that leads the group's __consumer_offsets partition."""
    _, topics = conn.metadata(["__consumer_offsets"])
    _err, partitions = topics["__consumer_offsets"]
    return partitions[java_hash_partition(group)][1]


def unread_conn(broker, shard=0) -> kw.Conn:
    """A connection with a tiny receive buffer, for a client that never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((broker.host, broker.shard_port(shard)))
    return kw.Conn(broker.host, broker.shard_port(shard), sock=s)


# ---------------------------------------------------------------- requests ---

def metadata_v1(conn: kw.Conn, names):
    """Metadata v1 -> (answer bytes, [(name, error, partition count)])."""
    corr, frame = conn.frame(kw.API_METADATA, 1, array(names, string))
    conn.send_raw(frame)
    data = conn.recv_frame()
    r = kw.Reader(data)
    assert r.i32() == corr
    r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))
    r.i32()  # controller

    def part(r):
        r.i16(), r.i32(), r.i32()
        r.array(lambda r: r.i32())
        r.array(lambda r: r.i32())

    def topic(r):
        err, name, _internal = r.i16(), r.string(), r.i8()
        return name, err, len(r.array(part))

    return len(data), r.array(topic)


def offset_commit_v2(conn: kw.Conn, group, topics, generation=-1, member=""):
    """OffsetCommit v2 of topics=[(name, [(partition, offset, metadata)])] -> (answer bytes, [(name, [(p, err)])])."""
    body = (string(group) + i32(generation) + string(member) + i64(-1)
            + array(topics, lambda t: string(t[0]) + array(
                t[1], lambda p: i32(p[0]) + i64(p[1]) + string(p[2]))))
    corr, frame = conn.frame(API_OFFSET_COMMIT, 2, body)
    conn.send_raw(frame)
    data = conn.recv_frame()
    r = kw.Reader(data)
    assert r.i32() == corr
    return len(data), r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16()))))


def offset_commit_v8(conn: kw.Conn, group, topics):
    """OffsetCommit v8 (flexible: compact strings, so any group id length) -> [(name, [(p, err)])]."""
    body = (cstring(group) + i32(-1) + cstring("") + cstring(None)
            + carray(topics, lambda t: cstring(t[0]) + carray(
                t[1], lambda p: i32(p[0]) + i64(p[1]) + i32(-1) + cstring(p[2]) + TAGS) + TAGS)
            + TAGS)
    corr, frame = conn.frame(API_OFFSET_COMMIT, 8, body, flexible_header=True)
    conn.send_raw(frame)
    r = kw.Reader(conn.recv_frame())
    assert r.i32() == corr
    skip_tags(r)
    r.i32()  # throttle

    def part(r):
        p, err = r.i32(), r.i16()
        skip_tags(r)
        return p, err

    def topic(r):
        name, parts = read_cstring(r), read_carray(r, part)
        skip_tags(r)
        return name, parts

    return read_carray(r, topic)


def offset_fetch_v1(conn: kw.Conn, group, topics):
    """OffsetFetch v1 of topics=[(name, [partitions])] -> (answer bytes, [(name, [(p, offset, metadata, err)])])."""
    body = string(group) + array(topics, lambda t: string(t[0]) + array(t[1], i32))
    corr, frame = conn.frame(API_OFFSET_FETCH, 1, body)
    conn.send_raw(frame)
    data = conn.recv_frame()
    r = kw.Reader(data)
    assert r.i32() == corr
    part = lambda r: (r.i32(), r.i64(), r.string(), r.i16())  # noqa: E731
    return len(data), r.array(lambda r: (r.string(), r.array(part)))


def describe_groups_v0(conn: kw.Conn, groups):
    """DescribeGroups v0 -> (answer bytes, [(error, group, state, member count)])."""
    corr, frame = conn.frame(API_DESCRIBE_GROUPS, 0, array(groups, string))
    conn.send_raw(frame)
    data = conn.recv_frame()
    r = kw.Reader(data)
    assert r.i32() == corr
    member = lambda r: (r.string(), r.string(), r.string(), r.bytes(), r.bytes())  # noqa: E731

    def group(r):
        err, group_id, state, _ptype, _pdata = r.i16(), r.string(), r.string(), r.string(), r.string()
        return err, group_id, state, len(r.array(member))

    return len(data), r.array(group)


def list_offsets_v1(conn: kw.Conn, entries):
    """ListOffsets v1 of entries=[(topic, partition, timestamp)], each its own topic entry
    -> [(topic, partition, error, timestamp, offset)]."""
    body = i32(-1) + array(entries, lambda e: string(e[0]) + array([e[1:]], lambda p: i32(p[0]) + i64(p[1])))
    r = conn.call(API_LIST_OFFSETS, 1, body)
    answers = r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i16(), r.i64(), r.i64()))))
    return [(topic, *partition) for topic, partitions in answers for partition in partitions]


def alter_configs_v0(conn: kw.Conn, resources, validate_only=False):
    """AlterConfigs v0 of resources=[(type, name, {key: value})] -> [(error, message, type, name)]."""
    body = array(resources, lambda res: i8(res[0]) + string(res[1]) + array(
        list(res[2].items()), lambda kv: string(kv[0]) + string(kv[1]))) + i8(int(validate_only))
    r = conn.call(API_ALTER_CONFIGS, 0, body)
    r.i32()
    return r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string()))


def incremental_alter_configs_v0(conn: kw.Conn, resources, validate_only=False):
    """IncrementalAlterConfigs v0 of resources=[(type, name, {key: value})], all SET -> [(error, message, type, name)]."""
    body = array(resources, lambda res: i8(res[0]) + string(res[1]) + array(
        list(res[2].items()), lambda kv: string(kv[0]) + i8(OP_SET) + string(kv[1]))) + i8(int(validate_only))
    r = conn.call(API_INCREMENTAL_ALTER_CONFIGS, 0, body)
    r.i32()
    return r.array(lambda r: (r.i16(), r.string(), r.i8(), r.string()))


def describe_configs_v1(conn: kw.Conn, resources):
    """DescribeConfigs v1 of resources=[(type, name)] -> (answer bytes, [(error, type, name, config count)])."""
    body = array(resources, lambda res: i8(res[0]) + string(res[1]) + i32(-1)) + i8(0)
    corr, frame = conn.frame(API_DESCRIBE_CONFIGS, 1, body)
    conn.send_raw(frame)
    data = conn.recv_frame()
    r = kw.Reader(data)
    assert r.i32() == corr
    r.i32()

    def config(r):
        name, value, _ro, _source, _sensitive = r.string(), r.string(), r.i8(), r.i8(), r.i8()
        r.array(lambda r: (r.string(), r.string(), r.i8()))  # synonyms
        return name, value

    def result(r):
        err, _msg, rtype, name = r.i16(), r.string(), r.i8(), r.string()
        return err, rtype, name, len(r.array(config))

    return len(data), r.array(result)


def create_topics_v4(conn: kw.Conn, topics, validate_only=False):
    """CreateTopics v4 of topics=[(name, partitions)] -> [(name, error)]."""
    body = array(topics, lambda t: string(t[0]) + i32(t[1]) + i16(1) + array([], None) + array([], None))
    r = conn.call(API_CREATE_TOPICS, 4, body + i32(10000) + i8(int(validate_only)))
    r.i32()
    return r.array(lambda r: (r.string(), r.i16(), r.string())[:2])


def create_partitions_v0(conn: kw.Conn, name, count):
    body = array([name], lambda n: string(n) + i32(count) + i32(-1)) + i32(10000) + i8(0)
    r = conn.call(API_CREATE_PARTITIONS, 0, body)
    r.i32()
    return r.array(lambda r: (r.string(), r.i16(), r.string()))


def delete_topics_v1(conn: kw.Conn, names):
    r = conn.call(API_DELETE_TOPICS, 1, array(names, string) + i32(10000))
    r.i32()
    return r.array(lambda r: (r.string(), r.i16()))


def delete_records_v0(conn: kw.Conn, name, partition, offset):
    body = array([name], lambda n: string(n) + array([(partition, offset)], lambda p: i32(p[0]) + i64(p[1])))
    r = conn.call(API_DELETE_RECORDS, 0, body + i32(10000))
    r.i32()
    return r.array(lambda r: (r.string(), r.array(lambda r: (r.i32(), r.i64(), r.i16()))))


def fetch_v4_frame(conn: kw.Conn, topics, max_bytes=100 << 20, max_wait_ms=0, min_bytes=0):
    """Fetch v4 of topics=[(name, [(partition, offset, partition_max_bytes)])] -> (correlation id, frame)."""
    body = (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(0)
            + array(topics, lambda t: string(t[0]) + array(t[1], lambda p: i32(p[0]) + i64(p[1]) + i32(p[2]))))
    return conn.frame(kw.API_FETCH, 4, body)


def read_fetch_v4(conn: kw.Conn, corr):
    """-> (answer bytes, [(name, [(partition, error, high watermark, records bytes)])])."""
    data = conn.recv_frame()
    r = kw.Reader(data)
    assert r.i32() == corr
    r.i32()

    def part(r):
        p, err, hw, _lso = r.i32(), r.i16(), r.i64(), r.i64()
        r.array(lambda r: (r.i64(), r.i64()))
        return p, err, hw, r.bytes() or b""

    return len(data), r.array(lambda r: (r.string(), r.array(part)))


def fetch_v4(conn: kw.Conn, topics, **kwargs):
    corr, frame = fetch_v4_frame(conn, topics, **kwargs)
    conn.send_raw(frame)
    return read_fetch_v4(conn, corr)


def batches_of(size, count, value_bytes):
    """``count`` record batches of ``size`` records of ``value_bytes`` each, concatenated."""
    return b"".join(kw.record_batch([(None, b"v" * value_bytes)] * size) for _ in range(count))


__all__ = [name for name in dir() if not name.startswith("_")] + ["nbytes"]
