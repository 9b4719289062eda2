"""Black-box protocol fuzzing of the running broker (issue 13).

With a fixed seed and for a bounded time, many connections to both shards of
a 2-shard broker send mutated versions of real clients' request frames (the
corpus fuzz/capture_corpus.py recorded: every API the broker advertises, in
old non-flexible and new flexible versions, from kafka-python, confluent-kafka
and kcat), frames moved to another version of their API, truncated frames,
bit flips, huge lengths and counts, random bytes, lying size prefixes and
connections that never read, interleaved with the seeds themselves. Then:

- the broker is alive and answered ApiVersions on both shards throughout;
- a confluent-kafka produce/consume round trip works on every shard;
- the records produced before the fuzzing are all there, unchanged;
- no "panicked" or "BUG" line in its log;
- its RSS (VmRSS) stayed under RSS_BYTES_MAX.

A failure prints the seed and the last frames each worker sent, so it
replays: FUZZ_SEED=<seed> FUZZ_SECONDS=<s> pytest tests/test_protocol_fuzz.py.
"""

import os
import random
import socket
import struct
import threading
import time
from collections import deque
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

import kafka_wire
from helpers import create_topic, leaders, produce, unique

SEED = int(os.environ.get("FUZZ_SEED", "13"))
FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "25"))
WORKERS = 8
RSS_BYTES_MAX = 1 << 30
# A shard must answer an ApiVersions within this, even while being fuzzed.
CANARY_TIMEOUT_S = 10.0
CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus" / "request_frame"
# The API versions the broker advertises (api/mod.rs HANDLERS), to move a
# frame to another version of its API: the body then decodes with another
# schema, flexible or not.
INTERESTING_I32 = [0, -1, 1, 0x7F, 0x80, 0xFF, 0x7FFF, -0x8000, 0xFFFF, 0x7FFFFFFF, -0x80000000, 0x10000000]
FRAME_BYTES_MAX = 64 * 1024


def load_seeds():
    seeds = [p.read_bytes() for p in sorted(CORPUS.iterdir())]
    assert len(seeds) >= 50, f"the corpus in {CORPUS} is missing"
    return seeds


def advertised_versions(conn):
    err, apis = conn.api_versions()
    assert err == 0
    return apis


class Mutator:
    def __init__(self, rng: random.Random, seeds, versions):
        self.rng, self.seeds, self.versions = rng, seeds, versions

    def frame(self) -> bytes:
        rng = self.rng
        choice = rng.randrange(100)
        if choice < 10:
            return rng.choice(self.seeds)  # a real request, untouched
        if choice < 15:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        frame = bytearray(rng.choice(self.seeds))
        if choice < 30:
            self.other_version(frame)
            if rng.random() < 0.5:
                return bytes(frame)
        for _ in range(rng.randrange(1, 5)):
            self.mutate(frame)
        return bytes(frame[:FRAME_BYTES_MAX])

    def other_version(self, frame: bytearray):
        key = struct.unpack(">h", frame[:2])[0]
        if key in self.versions and len(frame) >= 4:
            lo, hi = self.versions[key]
            version = self.rng.randint(lo - 1, hi + 1)
            frame[2:4] = struct.pack(">h", version)

    def mutate(self, frame: bytearray):
        rng = self.rng
        at = rng.randrange(len(frame) + 1)
        kind = rng.randrange(8)
        if kind == 0 and frame:
            frame[min(at, len(frame) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1 and frame:
            frame[min(at, len(frame) - 1)] = rng.randrange(256)
        elif kind in (2, 3):  # huge or negative counts and lengths, 2 or 4 bytes wide
            value = rng.choice(INTERESTING_I32)
            packed = struct.pack(">i", value) if kind == 2 else struct.pack(">h", max(-0x8000, min(0x7FFF, value)))
            frame[at:at + len(packed)] = packed
        elif kind == 4:  # a huge unsigned varint (compact array / string length)
            frame[at:at] = bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x07])
        elif kind == 5:
            del frame[at:]
        elif kind == 6:  # a span repeated
            end = min(len(frame), at + rng.randrange(1, 64))
            frame[at:at] = frame[at:end] * rng.randrange(1, 8)
        else:
            frame[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))


def send_all(sock, data):
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def drain(sock, seconds):
    """Reads whatever answers come within `seconds`; False once closed."""
    sock.settimeout(seconds)
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return False
    except socket.timeout:
        return True
    except OSError:
        return False


def framing(rng, frame):
    """The frame with its size prefix, usually honest."""
    style = rng.randrange(100)
    if style < 85:
        return struct.pack(">i", len(frame)) + frame
    if style < 90:  # the size prefix promises more than comes
        return struct.pack(">i", len(frame) + rng.randrange(1, 1 << 20)) + frame
    if style < 95:  # a huge or negative size prefix
        return struct.pack(">i", rng.choice([0x7FFFFFFF, -1, -0x80000000, 104857601, 0])) + frame[:32]
    full = struct.pack(">i", len(frame)) + frame  # cut anywhere, even inside the size prefix
    return full[:rng.randrange(len(full) + 1)]


def worker(index, host, ports, seeds, versions, deadline, history, stats):
    rng = random.Random(SEED * 1000 + index)
    mutator = Mutator(rng, seeds, versions)
    while time.monotonic() < deadline:
        port = rng.choice(ports)
        try:
            sock = socket.create_connection((host, port), timeout=5)
        except OSError:
            stats["connect_failed"] += 1
            time.sleep(0.05)
            continue
        # Everything this connection sends is drawn before it sends: which
        # frames a seed makes does not depend on the broker's timing.
        wires = [framing(rng, mutator.frame()) for _ in range(rng.randrange(1, 12))]
        pauses = [rng.random() < 0.3 for _ in wires]
        read_at_end = rng.random() < 0.7
        with sock:
            for wire, pause in zip(wires, pauses):
                history.append((port, wire[:200].hex()))
                stats["frames"] += 1
                if not send_all(sock, wire):
                    break
                if pause and not drain(sock, 0.02):
                    break
            if read_at_end:
                drain(sock, 0.05)  # else close without reading the answers


def canary(host, ports, stop, failures):
    """Every shard keeps answering a valid request while it is fuzzed."""
    while not stop.is_set():
        for shard, port in enumerate(ports):
            started = time.monotonic()
            try:
                with kafka_wire.Conn(host, port, timeout=CANARY_TIMEOUT_S) as conn:
                    err, apis = conn.api_versions()
                    if err != 0 or not apis:
                        failures.append(f"shard {shard}: ApiVersions error {err}")
            except (OSError, kafka_wire.ConnectionClosed, ValueError) as e:
                failures.append(f"shard {shard}: no ApiVersions answer after "
                                f"{time.monotonic() - started:.1f}s: {e!r}")
        stop.wait(0.5)


def rss_monitor(pid, stop, peak):
    while not stop.is_set():
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except OSError:
            return
        stop.wait(0.1)


def consume_all(bootstrap, topic, partitions, expected_count, timeout=60.0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("fuzz-check"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got, deadline = {}, time.time() + timeout
    try:
        while len(got) < expected_count and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            assert not m.error(), m.error()
            got[(m.partition(), m.offset())] = (m.key(), m.value())
    finally:
        c.close()
    return got


def test_protocol_fuzz_keeps_broker_serving_with_bounded_memory(broker_factory):
    broker = broker_factory(shards=2)
    bootstrap = broker.bootstrap
    ports = [broker.shard_port(s) for s in range(broker.shards)]

    # Data acknowledged before the fuzzing, on partitions of both shards.
    topic = unique("fuzz-intact")
    create_topic(bootstrap, topic, partitions=4)
    owners = leaders(bootstrap, topic)
    assert set(owners.values()) == {0, 1}, owners
    items = [(p % 4, f"key-{p}".encode(), f"value-{p}-".encode() * (1 + p % 7)) for p in range(400)]
    produce(bootstrap, topic, items)
    before = consume_all(bootstrap, topic, 4, len(items))
    assert len(before) == len(items)

    seeds = load_seeds()
    with broker.wire(0) as conn:
        versions = advertised_versions(conn)
    seeded = {struct.unpack(">h", frame[:2])[0] for frame in seeds}
    assert set(versions) <= seeded, f"APIs without a recorded frame: {sorted(set(versions) - seeded)}"

    deadline = time.monotonic() + FUZZ_SECONDS
    stop = threading.Event()
    canary_failures, peak_rss = [], [0]
    histories = [deque(maxlen=8) for _ in range(WORKERS)]
    stats = {"frames": 0, "connect_failed": 0}
    helpers = [threading.Thread(target=canary, args=(broker.host, ports, stop, canary_failures), daemon=True),
               threading.Thread(target=rss_monitor, args=(broker.proc.pid, stop, peak_rss), daemon=True)]
    workers = [threading.Thread(target=worker, daemon=True,
                                args=(i, broker.host, ports, seeds, versions, deadline, histories[i], stats))
               for i in range(WORKERS)]
    for t in helpers + workers:
        t.start()
    for t in workers:
        t.join(FUZZ_SECONDS + 60)
    stop.set()
    for t in helpers:
        t.join(CANARY_TIMEOUT_S * 2 + 5)

    print(f"protocol fuzz: seed {SEED}, {stats}, peak RSS {peak_rss[0] >> 20} MiB, "
          f"{len(canary_failures)} canary failures")
    last_frames = "\n".join(f"worker {i}: port {port} {wire}" for i, h in enumerate(histories) for port, wire in h)
    context = f"seed {SEED}, {stats}; last frames per worker (hex, first 200 bytes):\n{last_frames}"
    assert broker.running(), f"the broker died ({context}):\n{broker.run_log()[-5000:]}"
    assert not canary_failures, f"a shard stopped answering: {canary_failures[:5]} ({context})"
    assert stats["frames"] > 1000, stats
    assert 0 < peak_rss[0] < RSS_BYTES_MAX, f"peak RSS {peak_rss[0] >> 20} MiB ({context})"

    # A round trip on every shard, and the earlier data unchanged.
    after_items = [(p, b"after", f"after-fuzz-{p}".encode()) for p in range(4)]
    produce(bootstrap, topic, after_items)
    after = consume_all(bootstrap, topic, 4, len(items) + len(after_items))
    assert {k: v for k, v in after.items() if k in before} == before
    assert sorted(v[1] for k, v in after.items() if k not in before) == sorted(v for _, _, v in after_items)
    assert len(after) == len(items) + len(after_items)

    log = broker.run_log()
    bad = [line for line in log.splitlines() if "panicked" in line or "BUG" in line]
    assert not bad, f"{context}\n" + "\n".join(bad[:20])
