"""A chaos run: a three-node corelog cluster on 127.0.0.1/2/3 (tests/cluster.py,
two shards a node, broker.session.timeout.ms 3 s), a workload of idempotent
acks=all producers and a consumer group (workload.py), faults injected one at
a time from a seed (faults.py; with `partition` among them every node runs
in a network namespace of its own, network.py; with `disk` every data
directory is a small tmpfs, disk.py; with `slowdisk` every data directory is
a FUSE mount that can be made slow, slowdisk.py, and the first topic fsyncs
every write), then, once every fault is healed and the
workload has run a settle period more, every partition read back from the
beginning and the history judged (check.py).

    python3 tools/chaos/run.py --seed 7 --duration 60 --faults kill,pause,restart,crash

Writes OUT/history.jsonl, OUT/verdicts.json and the nodes' logs and data (OUT/cluster);
prints one line per property; exits 1 if any property is violated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path[:0] = [str(HERE), str(REPO / "tests")]

from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

import check  # noqa: E402
from cluster import SESSION_TIMEOUT_MS, Cluster  # noqa: E402
from faults import KINDS, Injector  # noqa: E402
import disk  # noqa: E402
import slowdisk  # noqa: E402
from history import History  # noqa: E402
from network import Network  # noqa: E402
from workload import QUIET, CommittedSampler, ConsumerWorker, ProducerWorker, WatermarkSampler  # noqa: E402

GROUP = "chaos-readers"
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
# Time for the cluster to come back whole (every partition led, every replica
# in sync) after the last heal, and for the final read.
HEALTHY_TIMEOUT_S = 90.0
READ_TIMEOUT_S = 60.0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults (default 60)")
    p.add_argument("--faults", default=",".join(KINDS), help=f"comma-separated, of {','.join(KINDS)}")
    p.add_argument("--settle", type=float, default=20.0,
                   help="seconds the workload runs after the last heal; the liveness bound (default 20)")
    p.add_argument("--gap", type=float, nargs=2, default=(2.0, 5.0), metavar=("MIN", "MAX"),
                   help="seconds of calm before each fault, drawn uniformly (default 2 5)")
    p.add_argument("--producers", type=int, default=3)
    p.add_argument("--consumers", type=int, default=2)
    p.add_argument("--topics", type=int, default=2)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--rate", type=float, default=100.0, help="records a second per producer (default 100)")
    p.add_argument("--slow-fsync-ms", type=int, default=slowdisk.FSYNC_DELAY_MS,
                   help=f"what the slow disk adds to an fsync (default {slowdisk.FSYNC_DELAY_MS})")
    p.add_argument("--slow-write-ms", type=int, default=slowdisk.WRITE_DELAY_MS,
                   help=f"what the slow disk adds to a write, in its write variant (default {slowdisk.WRITE_DELAY_MS})")
    p.add_argument("--client-log", action="store_true",
                   help="log the producers' librdkafka idempotence and message debug to OUT/producers.log")
    p.add_argument("--out", type=Path, help="output directory (default chaos-out/seed-N)")
    p.add_argument("--binary", default=os.environ.get("CORELOG_BIN", str(REPO / "target/release/corelog")))
    args = p.parse_args(argv)
    args.faults = [f for f in args.faults.split(",") if f]
    unknown = set(args.faults) - set(KINDS)
    if unknown or not args.faults:
        p.error(f"--faults: unknown {sorted(unknown)}; choose from {','.join(KINDS)}")
    args.out = args.out or Path("chaos-out") / f"seed-{args.seed}"
    return args


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception:  # noqa: BLE001 (a node still starting answers with errors)
            pass
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def fully_in_sync(bootstrap: str, partitions: list[tuple[str, int]]) -> bool:
    try:
        md = AdminClient({"bootstrap.servers": bootstrap, **QUIET}).list_topics(timeout=5)
    except Exception:  # noqa: BLE001 (no answer: not in sync)
        return False
    for topic, partition in partitions:
        t = md.topics.get(topic)
        p = t.partitions.get(partition) if t is not None else None
        if p is None or p.leader < 0 or len(p.isrs) != REPLICATION_FACTOR:
            return False
    return True


def create_topics(bootstrap: str, topics: list[str], partitions: int, durable: set[str]):
    """`durable` topics fsync every write before its acknowledgement (flush.messages=1)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, **QUIET})
    futures = admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=REPLICATION_FACTOR,
                                            config={"min.insync.replicas": str(MIN_INSYNC_REPLICAS),
                                                    **({"flush.messages": "1"} if t in durable else {})})
                                   for t in topics])
    for f in futures.values():
        f.result(30)


def read_back(bootstrap: str, partitions: list[tuple[str, int]], history: History):
    """Every partition from its first offset to its high watermark, into the history."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-checker", "enable.auto.commit": False,
                         **QUIET})
    try:
        ends = {}
        for topic, partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            ends[(topic, partition)] = high
            history.add("final_end", topic=topic, partition=partition, hw=high, log_start=low)
        consumer.assign([TopicPartition(t, p, 0) for t, p in partitions])
        next_offset = {key: 0 for key in ends}
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(next_offset[k] < ends[k] for k in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"final read stuck at {next_offset} of {ends}")
            for m in consumer.consume(1000, timeout=1.0):
                if m.error() is not None:
                    continue
                key = (m.topic(), m.partition())
                if m.offset() < ends[key]:
                    history.add("final", topic=key[0], partition=key[1], offset=m.offset(),
                                value=m.value().decode())
                next_offset[key] = max(next_offset[key], m.offset() + 1)
    finally:
        consumer.close()


def run(args) -> dict:
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    history = History(args.out / "history.jsonl")
    history.add("run", seed=args.seed, duration=args.duration, faults=args.faults, settle=args.settle,
                producers=args.producers, consumers=args.consumers, rate=args.rate,
                session_timeout_ms=SESSION_TIMEOUT_MS)
    # Partitions need a namespace per node; without them the nodes are on 127.0.0.1/2/3.
    network = Network(nodes=3).create() if "partition" in args.faults else None
    (args.out / "cluster").mkdir(exist_ok=True)
    cluster = Cluster(args.binary, args.out / "cluster", hosts=[network.host(i) for i in (1, 2, 3)] if network else None,
                      launcher=network.launcher if network else None)
    stopping = threading.Event()
    mounted = []
    slow_disks = {}
    try:
        for n in cluster.nodes:
            # With both disk faults the tmpfs is under the slow mount.
            data_dir = slowdisk.backing_dir(n.data_dir) if "slowdisk" in args.faults else n.data_dir
            if "disk" in args.faults:
                disk.mount(data_dir)
                mounted.append(data_dir)
            if "slowdisk" in args.faults:
                slow_disks[n.id] = slowdisk.SlowDisk(n.data_dir, args.out / "cluster" / f"slowfs{n.id}.log",
                                                   args.slow_fsync_ms, args.slow_write_ms).mount()
        cluster.start()
        bootstrap = ",".join(n.bootstrap for n in cluster.nodes)  # clients keep every address, up or not
        topics = [f"chaos-{i}" for i in range(args.topics)]
        partitions = [(t, p) for t in topics for p in range(args.partitions)]
        # A slow fsync holds back only what waits for it: with the slow disk,
        # one topic's every acknowledgement does.
        create_topics(bootstrap, topics, args.partitions, durable={topics[0]} if slow_disks else set())
        wait_for(lambda: fully_in_sync(bootstrap, partitions), HEALTHY_TIMEOUT_S, "the topics fully in sync")

        client_log = args.out / "producers.log" if args.client_log else None
        workers = [ProducerWorker(i, bootstrap, partitions, args.rate, history, stopping, client_log)
                   for i in range(args.producers)]
        workers += [ConsumerWorker(i, bootstrap, GROUP, topics, history, stopping) for i in range(args.consumers)]
        workers += [WatermarkSampler(bootstrap, partitions, history, stopping),
                    CommittedSampler(bootstrap, GROUP, partitions, history, stopping)]
        for w in workers:
            w.start()

        injector = Injector(cluster, history, rng, partitions, SESSION_TIMEOUT_MS / 1000, time.sleep,
                            lambda: fully_in_sync(bootstrap, partitions), network, slow_disks)
        end = time.monotonic() + args.duration
        while True:
            time.sleep(rng.uniform(*args.gap))
            if time.monotonic() >= end:
                break
            injector.inject(rng.choice(args.faults))
        history.add("healed", bound_s=args.settle)
        time.sleep(args.settle)
        history.add("stop")
        stopping.set()
        for w in workers:
            w.join(180)
        wait_for(lambda: fully_in_sync(bootstrap, partitions), HEALTHY_TIMEOUT_S, "every replica back in sync")
        read_back(bootstrap, partitions, history)
        result = check.summary(history.events)
        result["worker_errors"] = [e for w in workers for e in w.errors]
        result["ok"] = result["ok"] and not result["worker_errors"]
        return result
    finally:
        stopping.set()
        cluster.kill_all()
        if network:
            network.destroy()
        for slow in slow_disks.values():
            slow.unmount()  # the data stays in the backing directory
        for data_dir in mounted:
            # The logs are evidence: keep a copy of each tmpfs before it goes.
            shutil.copytree(data_dir, data_dir.with_name(data_dir.name + "-data"), dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(disk.FILLER_NAME))
            disk.unmount(data_dir)
        history.close()


def print_result(result: dict):
    print(f"faults {result['faults']}, sent {result['sent']}, acknowledged {result['acknowledged']}, "
          f"failed {result['failed']}, read {result['read']}, commits {result['commits']}, lost {result['lost']}, "
          f"duplicated {result['duplicated']}")
    for v in result["verdicts"]:
        print(f"  {'ok  ' if v['ok'] else 'FAIL'} {v['property']}: {v['violations']} violations; {v['detail']}")
        for example in v["examples"]:
            print(f"         {json.dumps(example)}")
    for u in result["unavailability"]:
        print(f"  t={u['t']:7.1f} {u['fault']:8} nodes {u['nodes']} ({u['detail']}): held {u['held_s']} s, "
              f"longest without an ack: a partition {u['partition_ack_gap_s']} s, all {u['no_ack_at_all_s']} s")
    for e in result["worker_errors"]:
        print(f"  worker error: {e}")
    print("verdict:", "ok" if result["ok"] else "VIOLATIONS")


def main(argv) -> int:
    args = parse_args(argv)
    result = run(args)
    (args.out / "verdicts.json").write_text(json.dumps(result, indent=2))
    print_result(result)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
