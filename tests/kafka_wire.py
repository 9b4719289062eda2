"""Just enough of the Kafka wire protocol to send the frames real clients never send.

Used only where the tests need a malformed or deliberately misdirected request
(corrupt batches, oversized frames, produce to the wrong shard, unsupported
versions).  Everything else in the suite goes through real clients
(kafka-python, confluent-kafka, kcat).

Only non-flexible request versions are encoded here (request header v1), which
is why the version pickers below stay below each API's first flexible version.
"""

from __future__ import annotations

import socket
import struct
import time

# ---------------------------------------------------------------- CRC32C ---
# Castagnoli polynomial, reflected.  Python's stdlib only has CRC-32 (zlib).


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value

# ------------------------------------------------------------ primitives ---

API_PRODUCE = 0
API_FETCH = 1
API_METADATA = 3
API_API_VERSIONS = 18
API_CREATE_TOPICS = 19

NONE = 0
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
NOT_LEADER_OR_FOLLOWER = 6
MESSAGE_TOO_LARGE = 10
INVALID_TOPIC_EXCEPTION = 17
UNSUPPORTED_VERSION = 35
INVALID_REPLICATION_FACTOR = 38
INVALID_RECORD = 87


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def u32(v):
    return struct.pack(">I", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    if s is None:
        return i16(-1)
    b = s.encode() if isinstance(s, str) else s
    return i16(len(b)) + b


def nbytes(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items, enc):
    if items is None:
        return i32(-1)
    return i32(len(items)) + b"".join(enc(x) for x in items)


def uvarint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(n):
    return uvarint((n << 1) ^ (n >> 63))


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError(f"response truncated: need {n} bytes at {self.pos}, have {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self._take(1))[0]

    def i16(self):
        return struct.unpack(">h", self._take(2))[0]

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def string(self):
        n = self.i16()
        return None if n < 0 else self._take(n).decode()

    def bytes(self):
        n = self.i32()
        return None if n < 0 else self._take(n)

    def array(self, fn):
        n = self.i32()
        return None if n < 0 else [fn(self) for _ in range(n)]

    def remaining(self):
        return len(self.data) - self.pos


# ------------------------------------------------------------ RecordBatch ---


def encode_record(offset_delta, key, value, timestamp_delta=0, headers=()):
    body = bytearray()
    body += i8(0)  # attributes
    body += varint(timestamp_delta)
    body += varint(offset_delta)
    if key is None:
        body += varint(-1)
    else:
        body += varint(len(key)) + key
    if value is None:
        body += varint(-1)
    else:
        body += varint(len(value)) + value
    body += varint(len(headers))
    for hk, hv in headers:
        hk = hk.encode()
        body += varint(len(hk)) + hk
        body += varint(-1) if hv is None else varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records, base_offset=0, timestamp_ms=None, attributes=0):
    """A RecordBatch v2 (magic 2) with a correct CRC32C.

    ``records`` is a list of (key, value) byte pairs.  Returns the bytes.
    """
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    recs = b"".join(encode_record(i, k, v) for i, (k, v) in enumerate(records))
    after_crc = (
        i16(attributes)
        + i32(len(records) - 1)  # last_offset_delta
        + i64(timestamp_ms)  # base_timestamp
        + i64(timestamp_ms)  # max_timestamp
        + i64(-1)  # producer_id
        + i16(-1)  # producer_epoch
        + i32(-1)  # base_sequence
        + i32(len(records))
        + recs
    )
    crc = crc32c(after_crc)
    # batch_length counts everything after the length field itself.
    after_len = i32(-1) + i8(2) + u32(crc) + after_crc  # partition_leader_epoch, magic, crc
    return i64(base_offset) + i32(len(after_len)) + after_len


BATCH_HEADER_BYTES = 61
CRC_OFFSET = 17
CRC_START = 21


def batch_crc_ok(batch: bytes) -> bool:
    stored = struct.unpack(">I", batch[CRC_OFFSET:CRC_OFFSET + 4])[0]
    return stored == crc32c(batch[CRC_START:])


def is_block_padding(rest: bytes) -> bool:
    """What may follow the last whole batch of a segment file: nothing, or the
    zeros that pad corelog's last 4 KiB block until the segment is sealed or
    closed (its writes are whole blocks, for O_DIRECT)."""
    return len(rest) < 4096 and not rest.strip(b"\0")


def split_batches(data: bytes):
    """Walk a log segment (concatenated RecordBatch v2) -> [(position, size, base_offset, last_offset_delta)]."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        base_offset, length = struct.unpack(">qi", data[pos:pos + 12])
        if length <= 0 or pos + 12 + length > len(data):
            break
        lod = struct.unpack(">i", data[pos + 23:pos + 27])[0]
        out.append((pos, 12 + length, base_offset, lod))
        pos += 12 + length
    return out


# ------------------------------------------------------------- connection ---


class ConnectionClosed(Exception):
    pass


class Conn:
    def __init__(self, host, port, timeout=10.0, client_id="corelog-tests", sock=None):
        self.host, self.port = host, port
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock.settimeout(timeout)
        self.sock = sock
        self.client_id = client_id
        self.corr = 0
        self._versions = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError as e:
                raise ConnectionClosed(str(e)) from e
            if not chunk:
                raise ConnectionClosed(f"EOF after {len(buf)} of {n} bytes")
            buf += chunk
        return bytes(buf)

    def recv_frame(self) -> bytes:
        size = struct.unpack(">i", self._recv_exact(4))[0]
        return self._recv_exact(size)

    def frame(self, api_key, api_version, body, corr=None, flexible_header=False):
        if corr is None:
            self.corr += 1
            corr = self.corr
        hdr = i16(api_key) + i16(api_version) + i32(corr) + string(self.client_id)
        if flexible_header:
            hdr += b"\x00"  # empty tagged fields (request header v2)
        payload = hdr + body
        return corr, i32(len(payload)) + payload

    def call(self, api_key, api_version, body, flexible_header=False) -> Reader:
        corr, data = self.frame(api_key, api_version, body, flexible_header=flexible_header)
        self.send_raw(data)
        r = Reader(self.recv_frame())
        got = r.i32()
        if got != corr:
            raise AssertionError(f"correlation id mismatch: sent {corr}, got {got}")
        return r

    def wait_closed(self, timeout=5.0) -> bool:
        """True if the peer closes (EOF or reset) within ``timeout``; responses are drained."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True

    # ------------------------------------------------------------ APIs ---

    def api_versions(self):
        """ApiVersions v0 -> (error_code, {api_key: (min, max)})."""
        r = self.call(API_API_VERSIONS, 0, b"")
        err = r.i16()
        apis = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
        self._versions = {k: (lo, hi) for k, lo, hi in apis or []}
        return err, self._versions

    def pick_version(self, api_key, lo, hi):
        if self._versions is None:
            self.api_versions()
        if api_key not in self._versions:
            raise AssertionError(f"broker does not advertise api key {api_key}: {self._versions}")
        blo, bhi = self._versions[api_key]
        v = min(hi, bhi)
        if v < max(lo, blo):
            raise AssertionError(
                f"no common version for api {api_key}: tests speak {lo}..{hi}, broker {blo}..{bhi}")
        return v

    def produce(self, topic, partition, records: bytes, acks=-1, timeout_ms=10000, version=None):
        """Produce v3..v8 of one batch -> (error_code, base_offset)."""
        v = version if version is not None else self.pick_version(API_PRODUCE, 3, 8)
        body = (
            string(None)  # transactional_id
            + i16(acks)
            + i32(timeout_ms)
            + array([(topic, [(partition, records)])],
                    lambda t: string(t[0]) + array(t[1], lambda p: i32(p[0]) + nbytes(p[1])))
        )
        r = self.call(API_PRODUCE, v, body)
        result = {}

        def part(r):
            idx = r.i32()
            err = r.i16()
            base = r.i64()
            r.i64()  # log_append_time_ms (v2+)
            if v >= 5:
                r.i64()  # log_start_offset
            if v >= 8:
                r.array(lambda r: (r.i32(), r.string()))  # record_errors
                r.string()  # error_message
            return idx, err, base

        for name, parts in r.array(lambda r: (r.string(), r.array(part))):
            for idx, err, base in parts:
                result[(name, idx)] = (err, base)
        r.i32()  # throttle_time_ms
        return result[(topic, partition)]

    def metadata(self, topics=None, version=None):
        """Metadata v1..v8 -> (brokers {id: (host, port)}, {topic: (error, {partition: (error, leader)})})."""
        v = version if version is not None else self.pick_version(API_METADATA, 1, 8)
        body = array(topics, string)
        if v >= 4:
            body += i8(1)  # allow_auto_topic_creation
        if v >= 8:
            body += i8(0) + i8(0)  # include cluster / topic authorized operations
        r = self.call(API_METADATA, v, body)
        if v >= 3:
            r.i32()  # throttle
        brokers = {}
        for node, host, port, _rack in r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string())):
            brokers[node] = (host, port)
        if v >= 2:
            r.string()  # cluster_id
        r.i32()  # controller_id

        def part(r):
            err = r.i16()
            idx = r.i32()
            leader = r.i32()
            if v >= 7:
                r.i32()  # leader_epoch
            r.array(lambda r: r.i32())
            r.array(lambda r: r.i32())
            if v >= 5:
                r.array(lambda r: r.i32())
            return idx, err, leader

        def topic(r):
            err = r.i16()
            name = r.string()
            r.i8()  # is_internal
            parts = r.array(part)
            if v >= 8:
                r.i32()
            return name, err, {idx: (perr, leader) for idx, perr, leader in parts}

        out = {}
        for name, err, parts in r.array(topic):
            out[name] = (err, parts)
        return brokers, out

    def create_topic(self, name, num_partitions=1, replication_factor=1, configs=None, version=None):
        """CreateTopics v0..v4 -> error_code for ``name``."""
        v = version if version is not None else self.pick_version(API_CREATE_TOPICS, 0, 4)
        cfgs = list((configs or {}).items())
        body = array(
            [name],
            lambda n: string(n) + i32(num_partitions) + i16(replication_factor)
            + array([], lambda a: b"") + array(cfgs, lambda kv: string(kv[0]) + string(kv[1])),
        ) + i32(10000)
        if v >= 1:
            body += i8(0)  # validate_only
        r = self.call(API_CREATE_TOPICS, v, body)
        if v >= 2:
            r.i32()

        def topic(r):
            n = r.string()
            err = r.i16()
            if v >= 1:
                r.string()
            return n, err

        res = dict(r.array(topic))
        return res[name]
