#!/usr/bin/env python3
"""Records the request frames real clients send, as the seed corpus of the
request decoder's fuzz target (fuzz/corpus/request_frame/) and of the
black-box protocol fuzzer (tests/test_protocol_fuzz.py).

A 2-shard broker listens on 127.0.0.2 and advertises 127.0.0.1; a proxy on
127.0.0.1 forwards each shard's port and writes every request frame (size
prefix removed) it sees. kafka-python, confluent-kafka and kcat then produce,
consume in groups, commit, and run every admin call the broker serves.

    python3 fuzz/capture_corpus.py target/release/corelog

Keeps at most FRAMES_PER_KIND frames per (API, version, client), so the
corpus stays small and rewriting it gives the same set of kinds.
"""

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FRAMES_PER_KIND = 2
PRODUCE_FRAMES_PER_KIND = 8  # every codec's batches
BROKER_HOST, PROXY_HOST = "127.0.0.2", "127.0.0.1"
CORPUS = Path(__file__).resolve().parent / "corpus"
OUT = CORPUS / "request_frame"
BATCHES = CORPUS / "record_batch"
sys.path.insert(0, str(CORPUS.parent.parent / "tests"))
import kafka_wire  # noqa: E402  (tests/kafka_wire.py: CRC32C and batch building)
API_NAMES = {
    0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata", 8: "offset_commit", 9: "offset_fetch",
    10: "find_coordinator", 11: "join_group", 12: "heartbeat", 13: "leave_group", 14: "sync_group",
    15: "describe_groups", 16: "list_groups", 18: "api_versions", 19: "create_topics", 20: "delete_topics",
    21: "delete_records", 22: "init_producer_id", 23: "offsets_for_leader_epoch", 32: "describe_configs", 33: "alter_configs",
    35: "describe_log_dirs", 37: "create_partitions", 42: "delete_groups", 44: "incremental_alter_configs",
    47: "offset_delete", 45: "alter_partition_reassignments", 46: "list_partition_reassignments",
    60: "describe_cluster",
}

frames: dict[tuple, list[bytes]] = {}
frames_lock = threading.Lock()
client_label = threading.local()
current_client = ["none"]


def record(frame: bytes):
    key, version = struct.unpack(">hh", frame[:4])
    kind = (key, version, current_client[0])
    with frames_lock:
        kept = frames.setdefault(kind, [])
        if len(kept) < (PRODUCE_FRAMES_PER_KIND if key == 0 else FRAMES_PER_KIND) and frame not in kept:
            kept.append(frame)


def frames_of(record_frame):
    """A callback for `pump` that cuts the stream into size-prefixed frames."""
    buf = b""

    def on_chunk(chunk):
        nonlocal buf
        buf += chunk
        while len(buf) >= 4:
            (size,) = struct.unpack(">i", buf[:4])
            if len(buf) < 4 + size:
                break
            record_frame(buf[4:4 + size])
            buf = buf[4 + size:]

    return on_chunk


def pump(src: socket.socket, dst: socket.socket, on_chunk=None, close_both=False):
    """Copies src to dst until either ends, showing each chunk to `on_chunk`."""
    try:
        while True:
            chunk = src.recv(65536)
            if not chunk:
                break
            dst.sendall(chunk)
            if on_chunk:
                on_chunk(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst) if close_both else ():
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def proxy(port: int):
    listener = socket.create_server((PROXY_HOST, port))
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection((BROKER_HOST, port))
        threading.Thread(target=pump, args=(client, upstream, frames_of(record), True), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


def free_port_pair() -> int:
    for port in range(39100, 39900, 2):
        try:
            for p in (port, port + 1):
                for host in (PROXY_HOST, BROKER_HOST):
                    with socket.create_server((host, p)):
                        pass
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def clients(bootstrap: str):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, NewTopic)
    import kafka
    from kafka.admin import KafkaAdminClient, NewTopic as KNewTopic, ConfigResource as KConfigResource, \
        ConfigResourceType, NewPartitions as KNewPartitions

    current_client[0] = "confluent"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("seed-a", 2, 1), NewTopic("seed-z", 1, 1), NewTopic("seed-b", 1, 1,
                                  config={"cleanup.policy": "compact"})]).values():
        f.result(20)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  "compression.type": "gzip"})
    for i in range(20):
        p.produce("seed-a", key=f"k{i}".encode(), value=f"value-{i}".encode(), partition=i % 2,
                  headers=[("h", b"v")])
    p.produce("seed-b", key=b"k", value=None)
    p.flush(20)
    # kafka-python (below) reads seed-a and has no lz4 or zstd codec: those go to seed-z.
    for codec in ("zstd", "lz4", "snappy"):
        p2 = Producer({"bootstrap.servers": bootstrap, "acks": 1, "compression.type": codec})
        p2.produce("seed-z", value=b"z" * 200)
        p2.flush(20)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "seed-group", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "group.instance.id": "seed-instance"})
    c.subscribe(["seed-a"])
    got, deadline = 0, time.time() + 30
    while got < 21 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    c.committed([TopicPartition("seed-a", 0), TopicPartition("seed-a", 1)], timeout=10)
    c.get_watermark_offsets(TopicPartition("seed-a", 0), timeout=10)
    c.offsets_for_times([TopicPartition("seed-a", 0, int(time.time() * 1000) - 60_000)], timeout=10)
    c.close()
    resource = ConfigResource(ConfigResource.Type.TOPIC, "seed-a")
    for f in admin.describe_configs([resource]).values():
        f.result(20)
    incremental = ConfigResource(ConfigResource.Type.TOPIC, "seed-a", incremental_configs=[
        ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([incremental]).values():
        f.result(20)
    for f in admin.alter_configs([ConfigResource(ConfigResource.Type.TOPIC, "seed-a",
                                                 set_config={"retention.ms": "7200000"})]).values():
        f.result(20)
    for f in admin.create_partitions([NewPartitions("seed-a", 3)]).values():
        f.result(20)
    admin.list_consumer_groups().result(20)
    for f in admin.describe_consumer_groups(["seed-group"]).values():
        f.result(20)
    from confluent_kafka import ConsumerGroupTopicPartitions
    for f in admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("seed-group")]).values():
        f.result(20)
    for f in admin.delete_records([TopicPartition("seed-a", 0, 1)]).values():
        f.result(20)
    admin.list_topics(timeout=10)
    for f in admin.delete_consumer_groups(["seed-group"]).values():
        try:
            f.result(20)
        except Exception:
            pass

    current_client[0] = "kafkapython"
    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, compression_type="gzip")
    for i in range(10):
        kp.send("seed-a", key=b"k", value=f"kp-{i}".encode(), partition=i % 3)
    kp.flush(20)
    kp.close()
    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    kp.send("seed-a", value=b"idempotent", partition=1).get(20)
    kp.close()
    kc = kafka.KafkaConsumer("seed-a", bootstrap_servers=bootstrap, group_id="seed-kp",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=4000)
    for _ in kc:
        pass
    kc.commit()
    kc.close()
    ka = KafkaAdminClient(bootstrap_servers=bootstrap)
    ka.create_topics([KNewTopic("seed-c", 1, 1)])
    ka.describe_configs([KConfigResource(ConfigResourceType.TOPIC, "seed-c")])
    ka.alter_configs([KConfigResource(ConfigResourceType.TOPIC, "seed-c", configs={"retention.ms": "600000"})])
    ka.create_partitions({"seed-c": KNewPartitions(2)})
    for call in (lambda: ka.list_groups(), lambda: ka.describe_groups(["seed-kp"]),
                 lambda: ka.list_group_offsets("seed-kp"), lambda: ka.list_topics(), lambda: ka.describe_topics(),
                 lambda: ka.delete_records({kafka.TopicPartition("seed-c", 0): 0}),
                 lambda: ka.describe_log_dirs(),
                 lambda: ka.delete_group_offsets("seed-kp", [kafka.TopicPartition("seed-a", 0)]),
                 lambda: ka.delete_groups(["seed-kp"])):
        try:
            call()
        except Exception as e:  # the frame is what counts, not the answer
            print("kafka-python admin:", e, file=sys.stderr)
    ka.delete_topics(["seed-c"])
    ka.close()

    # Older, non-flexible versions: kafka-python speaking to a Kafka 2.0 broker.
    current_client[0] = "kafkapython20"
    kp = kafka.KafkaProducer(bootstrap_servers=bootstrap, api_version=(2, 0))
    kp.send("seed-a", key=b"old", value=b"old-format", partition=0).get(20)
    kp.close()
    kc = kafka.KafkaConsumer("seed-a", bootstrap_servers=bootstrap, group_id="seed-old", api_version=(2, 0),
                             auto_offset_reset="earliest", consumer_timeout_ms=4000)
    for _ in kc:
        pass
    kc.commit()
    kc.close()
    ka = KafkaAdminClient(bootstrap_servers=bootstrap, api_version=(2, 0))
    for call in (lambda: ka.create_topics([KNewTopic("seed-d", 1, 1)]),
                 lambda: ka.describe_configs([KConfigResource(ConfigResourceType.TOPIC, "seed-d")]),
                 lambda: ka.describe_groups(["seed-old"]), lambda: ka.list_group_offsets("seed-old"),
                 lambda: ka.delete_topics(["seed-d"])):
        try:
            call()
        except Exception as e:
            print("kafka-python 2.0 admin:", e, file=sys.stderr)
    ka.close()

    current_client[0] = "kcat"
    if shutil.which("kcat"):
        subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", "seed-a", "-p", "0"], input=b"kcat-1\nkcat-2\n",
                       timeout=30, check=True)
        subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", "seed-a", "-p", "0", "-o", "beginning", "-e", "-q"],
                       timeout=30, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["kcat", "-b", bootstrap, "-L"], timeout=30, check=True, stdout=subprocess.DEVNULL)

    current_client[0] = "confluent"
    for f in admin.delete_topics(["seed-b"]).values():
        f.result(20)


def batches_in(frame: bytes):
    """The record batches inside a Produce frame: found by magic and CRC."""
    i = 0
    while i + 61 <= len(frame):
        (length,) = struct.unpack(">i", frame[i + 8:i + 12])
        if frame[i + 16] == 2 and 49 <= length <= len(frame) - i - 12 and \
                kafka_wire.batch_crc_ok(frame[i:i + 12 + length]):
            yield frame[i:i + 12 + length]
            i += 12 + length
        else:
            i += 1


def write_batches():
    BATCHES.mkdir(parents=True, exist_ok=True)
    for old in BATCHES.iterdir():
        old.unlink()
    found = {}
    for (key, _version, client), kept in frames.items():
        if key == 0:
            for frame in kept:
                for batch in batches_in(frame):
                    found[f"{client}-codec{batch[22] & 7}-{hashlib.sha1(batch).hexdigest()[:8]}"] = batch
    found["built-keyed-headers"] = kafka_wire.record_batch(
        [(b"key", b"value"), (None, None), (b"", b"x" * 100)], timestamp_ms=1_700_000_000_000)
    found["built-two-batches"] = kafka_wire.record_batch([(None, b"a")], timestamp_ms=1) + \
        kafka_wire.record_batch([(b"k", b"b"), (b"k", b"c")], base_offset=1, timestamp_ms=2)
    for name, batch in found.items():
        (BATCHES / name).write_bytes(batch)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/corelog"
    port = free_port_pair()
    data = tempfile.mkdtemp(prefix="corelog-capture-")
    broker = subprocess.Popen([binary, "serve", "--data-dir", data, "--host", BROKER_HOST, "--port", str(port),
                               "--advertised-host", PROXY_HOST, "--shards", "2",
                               "--group-initial-rebalance-delay-ms", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for p in (port, port + 1):
            threading.Thread(target=proxy, args=(p,), daemon=True).start()
        time.sleep(1.0)
        clients(f"{PROXY_HOST}:{port}")
    finally:
        broker.terminate()
        broker.wait(30)
        shutil.rmtree(data, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.iterdir():
        old.unlink()
    total = 0
    for (key, version, client), kept in sorted(frames.items()):
        for frame in kept:
            digest = hashlib.sha1(frame).hexdigest()[:8]
            name = f"{API_NAMES.get(key, f'api{key}')}-v{version}-{client}-{digest}"
            (OUT / name).write_bytes(frame)
            total += len(frame)
    write_batches()
    print(f"{sum(map(len, frames.values()))} frames, {total} bytes, {len(frames)} kinds in {OUT}")


if __name__ == "__main__":
    main()
