"""A corelog cluster for the tests: N `corelog serve` processes, node i on
127.0.0.i (the loopback /8 gives each node an address of its own, as
separate machines have), every node a voter of the controller quorum, with
the port layout of the issue's own command (shards from the base port,
stepping over the controller port at base + 1). Session timeouts are
shortened (3 s) so that failover fits a test; the rules are Kafka's.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from kafka import KafkaAdminClient

from conftest import corelog_bin
from helpers import QUIET, wait_until

HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
SHARDS = 2
SESSION_TIMEOUT_MS = 3_000
START_TIMEOUT = 60.0


def host_of(node_id: int) -> str:
    return f"127.0.0.{node_id}"


def _free_everywhere(port: int, hosts) -> bool:
    for host in hosts:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _ports(hosts, shards=SHARDS) -> tuple[int, int]:
    """(shard base port, controller port), free on every host. As in the
    issue's command (--port 9092, voters on :9093), the controller port is
    base + 1, inside the shards' range: shard 1 steps over it to base + 2."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
        s.close()
        if base + shards + 1 < 65535 and all(_free_everywhere(base + i, hosts) for i in range(shards + 1)):
            return base, base + 1
    raise RuntimeError("no free ports")


def shard_port(base: int, shard: int) -> int:
    return base + shard + (1 if shard >= 1 else 0)


class Node:
    def __init__(self, cluster: "Cluster", node_id: int, host: str):
        self.cluster, self.id, self.host = cluster, node_id, host
        self.data_dir = cluster.dir / f"node{node_id}"
        self.log_path = cluster.dir / f"node{node_id}.log"
        self.proc = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.cluster.port}"

    def broker_ids(self) -> set[int]:
        return {self.id * 1000 + s for s in range(self.cluster.shards)}

    def start(self):
        c = self.cluster
        cmd = [
            *(c.launcher(self.id) if c.launcher else []), c.binary, "serve", "--node-id", str(self.id), "--host", self.host, "--port", str(c.port),
            "--shards", str(c.shards), "--data-dir", str(self.data_dir),
            "--controller-quorum-voters", c.voters,
            "--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS),
            "--broker-heartbeat-interval-ms", "500",
            *c.args,
        ]
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        with open(self.log_path, "ab") as f:
            f.write(f"\n===== start: {' '.join(cmd)}\n".encode())
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf,
                                     start_new_session=True, env=env)

    def wait_serving(self, timeout=START_TIMEOUT):
        def serving():
            assert self.proc.poll() is None, f"node {self.id} exited:\n{self.log()}"
            return self.log().count("shard serving") >= self.cluster.shards * self.starts()
        wait_until(serving, timeout=timeout, what=f"node {self.id} serving")

    def starts(self) -> int:
        return self.log().count("===== start:")

    def epochs(self) -> list[int]:
        return [int(m) for m in re.findall(r"broker_epoch=(\d+)", self.log())]

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.logf.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.logf.close()

    def pause(self):
        """SIGSTOP: the process stays, silent (heartbeats, fetches, Raft
        messages all stop) until resume(); a stalled VM or a long GC pause."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    def __init__(self, binary: str, dir: Path, nodes=3, shards=SHARDS, args=(), hosts=None, launcher=None):
        """`hosts` and `launcher` put the nodes elsewhere than 127.0.0.i:
        node i listens on hosts[i - 1] and runs under the command prefix
        launcher(i) (tools/chaos runs each node in a network namespace of
        its own: ["ip", "netns", "exec", name])."""
        self.binary, self.dir, self.shards, self.args = binary, dir, shards, list(args)
        self.launcher = launcher
        hosts = hosts or [host_of(i) for i in range(1, nodes + 1)]
        # A namespace's addresses cannot be bound from here, and its ports are all free.
        self.port, self.controller_port = _ports([] if launcher else hosts, shards)
        self.voters = ",".join(f"{i + 1}@{h}:{self.controller_port}" for i, h in enumerate(hosts))
        self.nodes = [Node(self, i + 1, h) for i, h in enumerate(hosts)]

    def node(self, node_id: int) -> Node:
        return self.nodes[node_id - 1]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.running())

    def start(self):
        # Every node waits for a quorum before it serves: they start together.
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_serving()
        return self

    def kill_all(self):
        for n in self.nodes:
            if n.proc:
                n.kill()

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.proc and n.proc.poll() is None]

    def admin(self, node: Node | None = None) -> KafkaAdminClient:
        nodes = [node] if node else self.running()
        return KafkaAdminClient(bootstrap_servers=[n.bootstrap for n in nodes], request_timeout_ms=20_000)

    def metadata(self, node: Node):
        return AdminClient({"bootstrap.servers": node.bootstrap, **QUIET}).list_topics(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"----- node {n.id}\n{n.log()[-6000:]}" for n in self.nodes)


@pytest.fixture
def cluster(tmp_path):
    """Three nodes of two shards on 127.0.0.1/2/3."""
    c = Cluster(corelog_bin(), tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.kill_all()
