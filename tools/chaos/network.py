"""Network partitions between nodes on one machine: each node runs in a
network namespace of its own, wired by a veth pair to a bridge in this
(the clients') namespace, on a /24 of 10.77.x.0. A partition is a
blackhole route in a node's namespace: its packets to the other side are
dropped. Clients, in this namespace, still reach every node, as an
application server can while brokers lose each other.

TCP needs both directions, so even a route on one side only (`one_way`)
stalls every connection between the two sides; what differs is who notices
first (the side whose sends are dropped retransmits; the other only sees
silence). Needs root (ip netns, ip link).
"""

from __future__ import annotations

import os
import subprocess

BRIDGE_PREFIX = "clb"


def _ip(*args: str, netns: str | None = None):
    cmd = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class NetworkError(RuntimeError):
    pass


class Network:
    def __init__(self, nodes: int):
        tag = os.getpid() % 100_000
        self.nodes = nodes
        self.subnet = f"10.77.{tag % 200 + 20}"
        self.bridge = f"{BRIDGE_PREFIX}{tag}"
        self.names = {i: f"cl{tag}n{i}" for i in range(1, nodes + 1)}
        self.cuts: set[tuple[int, int]] = set()  # (from node, to node): dropped

    def host(self, node_id: int) -> str:
        return f"{self.subnet}.{node_id}"

    def launcher(self, node_id: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[node_id]]

    def create(self) -> "Network":
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i, ns in self.names.items():
                outside, inside = f"{ns}o", f"{ns}i"
                _ip("netns", "add", ns)
                _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
                _ip("link", "set", inside, "netns", ns)
                _ip("link", "set", outside, "master", self.bridge)
                _ip("link", "set", outside, "up")
                _ip("addr", "add", f"{self.host(i)}/24", "dev", inside, netns=ns)
                _ip("link", "set", inside, "up", netns=ns)
                _ip("link", "set", "lo", "up", netns=ns)
        except subprocess.CalledProcessError as e:
            self.destroy()
            raise NetworkError(f"cannot build the namespaces ({' '.join(e.cmd)}: {e.stderr.strip()}); "
                               "network partitions need root and ip netns") from e
        return self

    def destroy(self):
        for ns in self.names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)  # its veth goes with it
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def cut(self, src: int, dst: int):
        """Drop what node `src` sends to node `dst`."""
        if (src, dst) not in self.cuts:
            _ip("route", "add", "blackhole", f"{self.host(dst)}/32", netns=self.names[src])
            self.cuts.add((src, dst))

    def isolate(self, node_id: int, one_way: bool = False):
        for other in self.names:
            if other != node_id:
                self.cut(node_id, other)
                if not one_way:
                    self.cut(other, node_id)

    def heal(self):
        for src, dst in sorted(self.cuts):
            _ip("route", "del", "blackhole", f"{self.host(dst)}/32", netns=self.names[src])
        self.cuts.clear()
