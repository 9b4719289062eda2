"""Checks the suite's own raw-frame encoder against kafka-python's codecs (no broker needed)."""

from __future__ import annotations

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import kafka_wire as kw


def test_crc32c_check_value():
    assert kw.crc32c(b"123456789") == 0xE3069283
    assert kw.crc32c(b"") == 0


def test_record_batch_parses_with_kafka_python():
    records = [(b"k0", b"v0"), (None, b"value-1"), (b"k2", None), (b"", b"x" * 300)]
    raw = kw.record_batch(records, base_offset=42, timestamp_ms=1_700_000_000_000)
    batch = DefaultRecordBatch(bytearray(raw))
    assert batch.validate_crc()
    assert batch.base_offset == 42
    got = [(r.offset, r.key, r.value) for r in batch]
    assert got == [(42 + i, k, v) for i, (k, v) in enumerate(records)]
    assert kw.split_batches(raw + raw) == [(0, len(raw), 42, 3), (len(raw), len(raw), 42, 3)]


def test_record_batch_matches_kafka_python_builder():
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(3):
        b.append(i, timestamp=1_700_000_000_000, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[])
    theirs = bytes(b.build())
    ours = kw.record_batch([(f"k{i}".encode(), f"v{i}".encode()) for i in range(3)], timestamp_ms=1_700_000_000_000)
    # identical except partition_leader_epoch (bytes 12..16): ours -1, kafka-python's builder 0
    assert ours[:12] == theirs[:12] and ours[16:] == theirs[16:]


def test_flipped_byte_breaks_crc():
    raw = bytearray(kw.record_batch([(None, b"hello")]))
    raw[-2] ^= 1
    assert not kw.batch_crc_ok(bytes(raw))
    assert not DefaultRecordBatch(raw).validate_crc()


# ---- request encoders / response decoders against kafka-python's generated codecs, over a socketpair ----

import socket  # noqa: E402
import struct  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402
from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse  # noqa: E402
from kafka.protocol.metadata import MetadataRequest, MetadataResponse  # noqa: E402
from kafka.protocol.producer import ProduceRequest, ProduceResponse  # noqa: E402


def fake_peer(handler):
    """A Conn whose peer decodes one request with kafka-python and answers handler(request, version)."""
    a, b = socket.socketpair()
    seen = {}

    def serve():
        size = struct.unpack(">i", b.recv(4, socket.MSG_WAITALL))[0]
        frame = b.recv(size, socket.MSG_WAITALL)
        api_key, version, corr = struct.unpack(">hhi", frame[:8])
        cls = {0: ProduceRequest, 3: MetadataRequest, 19: CreateTopicsRequest}[api_key]
        req = cls.decode(frame, version=version, header=True)
        seen["req"], seen["version"] = req, version
        body = bytes(handler(req, version).encode(version=version))
        b.sendall(struct.pack(">ii", 4 + len(body), corr) + body)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return kw.Conn("fake", 0, sock=a), seen, t


@pytest.mark.parametrize("version", range(3, 9))
def test_produce_codec(version):
    R = ProduceResponse

    def handler(req, v):
        td = req.topic_data[0]
        assert (td.name, td.partition_data[0].index, td.partition_data[0].records) == ("topic-a", 2, b"BATCH")
        assert req.acks == -1
        part = R.TopicProduceResponse.PartitionProduceResponse(
            index=2, error_code=6, base_offset=1234, log_append_time_ms=-1, log_start_offset=0,
            record_errors=[], error_message=None)
        return R(responses=[R.TopicProduceResponse(name="topic-a", partition_responses=[part])], throttle_time_ms=0)

    c, seen, t = fake_peer(handler)
    assert c.produce("topic-a", 2, b"BATCH", version=version) == (6, 1234)
    t.join(5)
    assert seen["version"] == version


@pytest.mark.parametrize("version", range(1, 9))
def test_metadata_codec(version):
    R = MetadataResponse
    P = R.MetadataResponseTopic.MetadataResponsePartition

    def handler(req, v):
        assert [t.name for t in req.topics] == ["t1"]
        return R(throttle_time_ms=0, cluster_id="c", controller_id=0,
                 brokers=[R.MetadataResponseBroker(node_id=i, host="127.0.0.1", port=9000 + i, rack=None)
                          for i in range(2)],
                 topics=[R.MetadataResponseTopic(error_code=0, name="t1", is_internal=False, partitions=[
                     P(error_code=0, partition_index=i, leader_id=i % 2, leader_epoch=0, replica_nodes=[i % 2],
                       isr_nodes=[i % 2], offline_replicas=[]) for i in range(3)])])

    c, seen, t = fake_peer(handler)
    brokers, topics = c.metadata(["t1"], version=version)
    t.join(5)
    assert brokers == {0: ("127.0.0.1", 9000), 1: ("127.0.0.1", 9001)}
    assert topics == {"t1": (0, {0: (0, 0), 1: (0, 1), 2: (0, 0)})}


@pytest.mark.parametrize("version", range(0, 5))
def test_create_topics_codec(version):
    R = CreateTopicsResponse

    def handler(req, v):
        t = req.topics[0]
        assert (t.name, t.num_partitions, t.replication_factor) == ("bad/name", 3, 1)
        assert [(c.name, c.value) for c in t.configs] == [("retention.ms", "5")]
        return R(throttle_time_ms=0, topics=[R.CreatableTopicResult(name="bad/name", error_code=17,
                                                                    error_message="invalid")])

    c, seen, t = fake_peer(handler)
    assert c.create_topic("bad/name", 3, 1, {"retention.ms": "5"}, version=version) == 17
    t.join(5)
