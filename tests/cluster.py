"""A corelog cluster for the tests: N `corelog serve` processes, node i on
127.0.0.i (the loopback /8 gives each node an address of its own, as
separate machines have), every node a voter of the controller quorum.

Each node listens on the same ports of its own address: shard s on P + s,
its controller on P + shards. Timings are shortened (session timeout,
heartbeats, replica lag) so that failover fits a test; the rules are Kafka's.
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import Broker, READY_TIMEOUT, free_port_range

SHARDS_PER_NODE_MAX = 1000

# What tests/cluster.py runs every node with: a failed node is fenced after
# 3 s (Kafka's 9 s default), a follower leaves the ISR after 3 s behind.
CLUSTER_TOML = """\
broker_session_timeout_ms = 3000
broker_heartbeat_interval_ms = 500
replica_lag_time_max_ms = 3000
log_segment_bytes_min = 1024
"""


def node_of(broker_id: int) -> int:
    """The node of a Kafka broker id (node id x 1000 + shard)."""
    return broker_id // SHARDS_PER_NODE_MAX


class Cluster:
    def __init__(self, binary, base: Path, nodes=3, shards=2, toml_extra="", args=None):
        self.shards = shards
        self.port = free_port_range(shards + 1)
        self.controller_port = self.port + shards
        voters = ",".join(f"{i}@127.0.0.{i}:{self.controller_port}" for i in range(1, nodes + 1))
        config = Path(base) / "cluster.toml"
        config.write_text(CLUSTER_TOML + toml_extra)
        self.nodes: dict[int, Broker] = {}
        for i in range(1, nodes + 1):
            node_args = {
                "node-id": i,
                "controller-quorum-voters": voters,
                "config": config,
                **(args or {}),
            }
            b = Broker(binary, Path(base) / f"node{i}", Path(base) / f"node{i}.stderr.log", shards=shards,
                       args=node_args)
            b.host = f"127.0.0.{i}"
            b.port = self.port
            self.nodes[i] = b

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes.values())

    def node(self, node_id: int) -> Broker:
        return self.nodes[node_id]

    def running(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.running()]

    def start(self, only=None, timeout=READY_TIMEOUT * 3):
        """Starts the nodes (all, or `only`) together: none serves before a
        quorum of them runs."""
        chosen = [self.nodes[i] for i in (only or self.nodes)]
        for n in chosen:
            n.spawn()
        for n in chosen:
            n._wait_ready(timeout)
        return self

    def kill(self, node_id: int) -> str:
        return self.nodes[node_id].kill()

    def kill_all(self):
        for n in self.nodes.values():
            n.kill()

    def stop_all(self):
        for n in self.nodes.values():
            n.stop()

    def logs(self) -> str:
        return "\n".join(f"===== node {i}\n{n.log()[-6000:]}" for i, n in self.nodes.items())


def wait_until(what: str, check, timeout=60.0, interval=0.25, cluster: Cluster | None = None):
    """Polls `check()` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # a node may be down or electing: keep polling
            last = e
        time.sleep(interval)
    logs = f"\n{cluster.logs()}" if cluster else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r}){logs}")


def partitions_of(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader broker id, replica broker ids, ISR broker ids), from Metadata."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    md = admin.list_topics(topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        raise RuntimeError(f"{topic}: {t.error}")
    return {p: (pm.leader, list(pm.replicas), list(pm.isrs)) for p, pm in t.partitions.items()}
