"""kcat (Debian's, on librdkafka 2.0.2) against the real broker."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers import create_topic, unique

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (tests/run.sh installs it with apt-get)")


def kcat(*args, input=None, timeout=30):
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    r = subprocess.run([KCAT, *args], capture_output=True, timeout=timeout, **stdin)
    assert r.returncode == 0, f"kcat {' '.join(args)} exited {r.returncode}:\n{r.stderr.decode(errors='replace')}"
    return r.stdout


def test_metadata_lists_one_broker_per_shard(module_broker):
    b = module_broker
    topic = create_topic(b.bootstrap, unique("kcat-md"), partitions=4)
    md = json.loads(kcat("-b", b.bootstrap, "-L", "-J", "-m", "20"))
    brokers = {br["id"]: br["name"] for br in md["brokers"]}
    assert brokers == {0: f"127.0.0.1:{b.port}", 1: f"127.0.0.1:{b.port + 1}"}, md["brokers"]
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, list(topics)
    parts = topics[topic]["partitions"]
    assert sorted(p["partition"] for p in parts) == [0, 1, 2, 3]
    assert all(p["leader"] in (0, 1) for p in parts), parts
    # the plain text listing says the same
    text = kcat("-b", b.bootstrap, "-L", "-t", topic).decode()
    assert " 2 brokers:" in text, text
    assert f'topic "{topic}" with 4 partitions' in text, text


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4"])
def test_produce_consume_lines(module_broker, codec):
    b = module_broker
    topic = create_topic(b.bootstrap, unique(f"kcat-{codec}"), partitions=2)
    lines = [f"line {i} " + "x" * (i % 50) for i in range(2000)] + ["ünïcødé ☃", "tab\there", " leading space"]
    payload = ("\n".join(lines) + "\n").encode()
    for part in (0, 1):
        kcat("-b", b.bootstrap, "-P", "-t", topic, "-p", str(part), "-z", codec, "-X", "acks=all",
             input=payload)
    for part in (0, 1):
        out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-p", str(part), "-o", "beginning", "-e", "-q")
        assert out == payload, f"partition {part}: {len(out)} bytes back, {len(payload)} sent"
        offs = kcat("-b", b.bootstrap, "-C", "-t", topic, "-p", str(part), "-o", "beginning", "-e", "-q",
                    "-f", "%o\n").decode().split()
        assert [int(o) for o in offs] == list(range(len(lines)))


def test_keyed_produce_and_offset_ranges(module_broker):
    b = module_broker
    topic = create_topic(b.bootstrap, unique("kcat-keys"), partitions=1)
    lines = [f"k{i % 7}:value-{i}" for i in range(500)]
    kcat("-b", b.bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":", input=("\n".join(lines) + "\n").encode())
    # absolute offsets: no ListOffsets round trip (test_produce_consume_lines covers "-o beginning")
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "0", "-e", "-q",
               "-f", "%o|%k|%s\n").decode().splitlines()
    assert out == [f"{i}|k{i % 7}|value-{i}" for i in range(500)]
    # start in the middle, stop after a count
    out = kcat("-b", b.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "250", "-c", "10", "-q",
               "-f", "%o %s\n").decode().splitlines()
    assert out == [f"{i} value-{i}" for i in range(250, 260)]
