"""The faults a chaos run injects, one at a time, each chosen (kind and
target) by the run's seeded random generator, each recorded in the history
as `fault` when injected and `heal` when repaired:

- kill:    SIGKILL one node (a partition's leader, a follower, the controller
           leader, or any), restart it after a few seconds;
- pause:   SIGSTOP one node (same choice of target) for longer than
           broker.session.timeout.ms, so that it is fenced, then SIGCONT;
- restart: a rolling restart: SIGTERM each node in turn, start it again,
           wait until it serves and every replica is back in sync (as an
           operator waits for no under-replicated partitions) before the next;
- crash:   SIGKILL every node at once, start them all again;
- partition: cut one node (same choice of target) off from the other nodes
           (network.py; both ways, or only its own sends) for longer than
           broker.session.timeout.ms, then heal; clients still reach it.
           With three nodes this is also the majority/minority split;
- disk:    fill one node's data directory (a small tmpfs, see disk.py) until
           writes fail with ENOSPC, then free it;
- slowdisk: make one node's disk slow (a FUSE mount, see slowdisk.py): its
           fsyncs, or its fsyncs and writes, sleep for a few seconds, then
           are fast again.
"""

from __future__ import annotations

import random
import time

import disk

from confluent_kafka.admin import AdminClient

QUIET = {"log_level": 2}
KINDS = ("kill", "pause", "restart", "crash", "partition", "disk", "slowdisk")
TARGETS = ("leader", "follower", "controller", "any")
# How long a killed node stays down, and a whole cluster stays down.
KILL_DOWN_S = (1.0, 6.0)
CRASH_DOWN_S = (0.5, 3.0)
# A rolling restart goes on to the next node once every replica is back in
# sync, or after this long regardless.
RESTART_IN_SYNC_TIMEOUT_S = 30.0
# How long a node's disk stays full.
DISK_FULL_S = (2.0, 6.0)
# How long a node's disk stays slow, and what is slow: fsyncs only (what a
# flush.messages=1 topic's acks, segment seals, the controller's Raft log and
# the checkpoints wait for), or fsyncs and writes (what every ack waits for).
SLOW_DISK_S = (3.0, 8.0)
SLOW_DISK_VARIANTS = ("fsync", "write")
# A pause outlasts the session timeout by this much, so the node is fenced.
PAUSE_BEYOND_SESSION_S = (1.0, 4.0)


class Injector:
    def __init__(self, cluster, history, rng: random.Random, partitions: list[tuple[str, int]],
                 session_timeout_s: float, sleep, in_sync, network=None, slow_disks=None):
        self.cluster, self.history, self.rng, self.network = cluster, history, rng, network
        self.slow_disks = slow_disks  # node id -> slowdisk.SlowDisk
        self.in_sync = in_sync  # () -> bool: every partition led, every replica in the ISR
        self.partitions, self.session_timeout_s, self.sleep = partitions, session_timeout_s, sleep

    def inject(self, kind: str):
        getattr(self, kind)()

    # --- targets ---------------------------------------------------------

    def _metadata(self):
        try:
            return AdminClient({"bootstrap.servers": self.cluster.bootstrap, **QUIET}).list_topics(timeout=5)
        except Exception:  # noqa: BLE001 (no answer: choose blindly)
            return None

    def _target(self) -> tuple[int, str]:
        """(node id, why it was chosen)."""
        kind = self.rng.choice(TARGETS)
        topic, partition = self.rng.choice(self.partitions)
        md = self._metadata()
        if md is not None:
            if kind == "controller" and md.controller_id >= 0:
                return md.controller_id // 1000, "controller leader"
            t = md.topics.get(topic)
            p = t.partitions.get(partition) if t is not None else None
            if p is not None and p.leader >= 0:
                if kind == "leader":
                    return p.leader // 1000, f"leader of {topic}/{partition}"
                if kind == "follower":
                    followers = sorted(r // 1000 for r in p.replicas if r != p.leader)
                    if followers:
                        return self.rng.choice(followers), f"follower of {topic}/{partition}"
        return self.rng.choice(self.cluster.nodes).id, "any node"

    # --- faults ----------------------------------------------------------

    def kill(self):
        node_id, why = self._target()
        node = self.cluster.node(node_id)
        node.kill()
        self.history.add("fault", fault="kill", nodes=[node_id], detail=why)
        self.sleep(self.rng.uniform(*KILL_DOWN_S))
        node.start()
        node.wait_serving()
        self.history.add("heal", fault="kill", nodes=[node_id])

    def pause(self):
        node_id, why = self._target()
        node = self.cluster.node(node_id)
        node.pause()
        self.history.add("fault", fault="pause", nodes=[node_id], detail=why)
        self.sleep(self.session_timeout_s + self.rng.uniform(*PAUSE_BEYOND_SESSION_S))
        node.resume()
        self.history.add("heal", fault="pause", nodes=[node_id])

    def restart(self):
        order = [n.id for n in self.cluster.nodes]
        self.rng.shuffle(order)
        self.history.add("fault", fault="restart", nodes=order, detail="rolling SIGTERM and start")
        for node_id in order:
            node = self.cluster.node(node_id)
            node.stop()
            node.start()
            node.wait_serving()
            deadline = time.monotonic() + RESTART_IN_SYNC_TIMEOUT_S
            while not self.in_sync() and time.monotonic() < deadline:
                self.sleep(0.5)
        self.history.add("heal", fault="restart", nodes=order)

    def crash(self):
        nodes = [n.id for n in self.cluster.nodes]
        self.cluster.kill_all()
        self.history.add("fault", fault="crash", nodes=nodes, detail="SIGKILL of every node")
        self.sleep(self.rng.uniform(*CRASH_DOWN_S))
        for n in self.cluster.nodes:
            n.start()
        for n in self.cluster.nodes:
            n.wait_serving()
        self.history.add("heal", fault="crash", nodes=nodes)

    def partition(self):
        node_id, why = self._target()
        one_way = self.rng.random() < 0.5
        self.network.isolate(node_id, one_way=one_way)
        self.history.add("fault", fault="partition", nodes=[node_id],
                         detail=f"{why} cut off from the other nodes{' (its sends only)' if one_way else ''}")
        self.sleep(self.session_timeout_s + self.rng.uniform(*PAUSE_BEYOND_SESSION_S))
        self.network.heal()
        self.history.add("heal", fault="partition", nodes=[node_id])

    def disk(self):
        node_id, why = self._target()
        filler = disk.fill(self.cluster.node(node_id).data_dir)
        self.history.add("fault", fault="disk", nodes=[node_id], detail=f"{why}: data directory full")
        self.sleep(self.rng.uniform(*DISK_FULL_S))
        filler.unlink()
        self.history.add("heal", fault="disk", nodes=[node_id])

    def slowdisk(self):
        node_id, why = self._target()
        variant = self.rng.choice(SLOW_DISK_VARIANTS)
        slow = self.slow_disks[node_id]
        slow.slow(variant)
        what = f"+{slow.fsync_delay_ms} ms a fsync"
        if variant == "write":
            what += f", +{slow.write_delay_ms} ms a write"
        self.history.add("fault", fault="slowdisk", nodes=[node_id], detail=f"{why}: disk slow ({what})")
        self.sleep(self.rng.uniform(*SLOW_DISK_S))
        slow.fast()
        self.history.add("heal", fault="slowdisk", nodes=[node_id])
