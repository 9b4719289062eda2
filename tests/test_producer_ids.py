"""Producer ids never repeat (issue 13, defect 9): not after 2^20 InitProducerId calls, not across
shards, not across restarts (SIGTERM or SIGKILL). A repeated id had made a new producer's first batch
look like a retry of the old producer's: acknowledged at the old offset and never stored.

Raw wire InitProducerId (v1) and idempotent batches, and a confluent-kafka idempotent producer.
"""

from __future__ import annotations

import struct

import pytest

import kafka_wire as kw
from helpers import consume, create_topic, leaders, produce, unique, watermarks

pytestmark = pytest.mark.timeout(300)

API_INIT_PRODUCER_ID = 22
# The old allocator repeated ids after 2^20 calls spread over the shards: 2^19 on one shard of two.
CALLS_PAST_THE_OLD_WRAP = (1 << 19) + 5_000
PIPELINE = 4096
RESPONSE_BYTES = 24  # size, correlation id, throttle time, error, producer id, epoch


def init_producer_id_frame(conn):
    """InitProducerId v1 without a transactional id."""
    return conn.frame(API_INIT_PRODUCER_ID, 1, kw.string(None) + kw.i32(60000))[1]


def init_producer_ids(conn, n):
    """n InitProducerId calls, pipelined -> [(error, producer id, epoch)] in order."""
    frame = init_producer_id_frame(conn)  # one correlation id for all: answers come in order anyway
    answers = []
    while len(answers) < n:
        batch = min(PIPELINE, n - len(answers))
        conn.send_raw(frame * batch)
        data = conn._recv_exact(batch * RESPONSE_BYTES)
        for size, _corr, _throttle, error, producer_id, epoch in struct.iter_unpack(">iiihqh", data):
            assert size == RESPONSE_BYTES - 4
            answers.append((error, producer_id, epoch))
    return answers


def ids_of(answers):
    assert all(error == 0 and epoch == 0 for error, _, epoch in answers), answers[:5]
    return [producer_id for _, producer_id, _ in answers]


def idempotent_batch(value: bytes, producer_id: int, sequence=0, epoch=0) -> bytes:
    batch = bytearray(kw.record_batch([(None, value)]))
    struct.pack_into(">qhi", batch, 43, producer_id, epoch, sequence)  # after max_timestamp
    struct.pack_into(">I", batch, kw.CRC_OFFSET, kw.crc32c(bytes(batch[kw.CRC_START:])))
    return bytes(batch)


def fresh_ids(broker, per_shard=200):
    ids = []
    for shard in range(broker.shards):
        with broker.wire(shard) as conn:
            ids += ids_of(init_producer_ids(conn, per_shard))
    return ids


def test_producer_ids_never_repeat_across_calls_shards_and_restarts(broker_factory):
    broker = broker_factory(shards=2)
    topic = unique("pids")
    create_topic(broker.bootstrap, topic, partitions=1)
    leader = leaders(broker.bootstrap, topic)[0]

    with broker.wire(leader) as conn:
        first = ids_of(init_producer_ids(conn, 1))[0]
        assert conn.produce(topic, 0, idempotent_batch(b"first", first)) == (0, 0)

    with broker.wire(0) as conn:
        many = ids_of(init_producer_ids(conn, CALLS_PAST_THE_OLD_WRAP))
    seen = [first] + many + fresh_ids(broker)
    assert len(set(seen)) == len(seen), "a producer id was handed out twice"

    # A new producer's first batch is stored at the next offset, not taken for the first producer's retry.
    with broker.wire(leader) as conn:
        assert conn.produce(topic, 0, idempotent_batch(b"second", seen[-1])) == (0, 1)

    for restart in ("SIGKILL", "SIGTERM"):
        if restart == "SIGKILL":
            broker.kill()
        else:
            broker.stop()
        broker.start()
        after = fresh_ids(broker)
        assert len(set(after)) == len(after)
        assert min(after) > max(seen), f"after {restart}: ids start past every id handed out before"
        seen += after

    with broker.wire(leader) as conn:
        assert conn.produce(topic, 0, idempotent_batch(b"third", seen[-1])) == (0, 2)
    # A real idempotent producer gets its id from the same allocator and stores every record once.
    values = [f"v{i}".encode() for i in range(50)]
    delivered = produce(broker.bootstrap, topic, [(0, None, v) for v in values], conf={"enable.idempotence": True})
    assert sorted(offset for _, offset, _, _ in delivered) == list(range(3, 53))
    assert watermarks(broker.bootstrap, topic, 0) == (0, 53)
    stored = [value for _, _, value in consume(broker.bootstrap, topic, [0], expect={0: 53})[0]]
    assert stored == [b"first", b"second", b"third"] + values
