"""A topic's compression.type names the codec its log holds: batches produced
with another codec are recompressed by the broker, and consumers read them
back unchanged."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import kafka_wire as kw
from helpers import consume, create_topic, produce, unique

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored_codecs(data_dir: str, topic: str, partition: int = 0) -> set[int]:
    codecs = set()
    for seg in sorted((Path(data_dir) / f"{topic}-{partition}").glob("*.log")):
        data = seg.read_bytes()
        for pos, _size, _base, _lod in kw.split_batches(data):
            (attributes,) = struct.unpack(">h", data[pos + 21:pos + 23])
            codecs.add(attributes & 0x7)
    return codecs


@pytest.mark.parametrize("sent,wanted", [("none", "zstd"), ("gzip", "lz4"), ("lz4", "uncompressed")])
def test_broker_recompresses_to_the_topic_codec(broker, sent, wanted):
    topic = create_topic(broker.bootstrap, unique("codec"), partitions=1, config={"compression.type": wanted})
    values = [f"{i:05d}-".encode() + b"v" * 100 for i in range(3000)]
    produce(broker.bootstrap, topic, [(0, f"k{i}".encode(), v) for i, v in enumerate(values)],
            conf={"compression.type": sent})
    got = consume(broker.bootstrap, topic, [0], expect={0: len(values)})
    assert [o for o, _, _ in got[0]] == list(range(len(values)))
    assert [v for _, _, v in got[0]] == values
    assert [k for _, k, _ in got[0]] == [f"k{i}".encode() for i in range(len(values))]
    target = CODEC_IDS["none" if wanted == "uncompressed" else wanted]
    assert stored_codecs(broker.data_dir, topic) == {target}


def test_producer_codec_is_kept_by_default(broker):
    topic = create_topic(broker.bootstrap, unique("codec"), partitions=1)
    produce(broker.bootstrap, topic, [(0, None, b"x" * 200) for _ in range(500)], conf={"compression.type": "snappy"})
    consume(broker.bootstrap, topic, [0], expect={0: 500})
    assert stored_codecs(broker.data_dir, topic) == {CODEC_IDS["snappy"]}
