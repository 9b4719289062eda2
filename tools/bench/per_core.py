#!/usr/bin/env python3
"""Issue 5's per-core figures, each the median of several runs.

    python3 tools/bench/per_core.py [--runs 5] [--duration 5] [--out per-core.json]

The broker runs `corelog serve --shards 1` under `taskset -c 0` (its shard and
its io_uring workers on CPU 0), corelog-load under `taskset -c 1`, a fresh
data directory per run, so a figure is what one broker core does. Prints one
Markdown table row per scenario: median, min and max over the runs. Needs a
release build (cargo build --release) and taskset; uses nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORELOG = ROOT / "target/release/corelog"
LOAD = ROOT / "target/release/corelog-load"


def free_port(n: int) -> int:
    """A base port P with P..P+n-1 all free now."""
    def free(port):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65000 and all(free(base + i) for i in range(n)):
            return base


BROKER_ARGS: list[str] = []


class Broker:
    def __init__(self, shards: int = 1, cpus: str = "0", extra: list[str] | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="corelog-per-core-"))
        self.port = free_port(shards)
        self.shards = shards
        self.log = open(self.dir / "broker.log", "w")
        cmd = ["taskset", "-c", cpus, str(CORELOG), "serve", "--data-dir", str(self.dir / "data"),
               "--port", str(self.port), "--shards", str(shards), *BROKER_ARGS, *(extra or [])]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        for p in range(self.port, self.port + shards):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", p), 0.2).close()
                    break
                except OSError:
                    if time.time() > deadline or self.proc.poll() is not None:
                        raise RuntimeError(f"broker did not start: {(self.dir / 'broker.log').read_text()[-2000:]}")
                    time.sleep(0.05)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def status(self, key: str) -> int:
        """VmRSS / VmHWM of the broker in KiB."""
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        log = (self.dir / "broker.log").read_text(errors="replace")
        # The shutdown line `produce request time: n=.. p50=..us p99=..us ...`
        # (frame read to answer written: the broker's share of the ack latency).
        m = re.search(r"produce request time: n=\d+ p50=(\d+)us p99=(\d+)us", log)
        self.produce_p99_ms = int(m.group(2)) / 1000 if m else None
        shutil.rmtree(self.dir, ignore_errors=True)


def load(broker: Broker, *args, cpus: str = "1") -> dict:
    out = broker.dir / f"load-{time.monotonic_ns()}.json"
    cmd = ["taskset", "-c", cpus, str(LOAD), "--bootstrap-server", broker.bootstrap, "--quiet",
           "--json", str(out), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not out.exists():
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    result = json.loads(out.read_text())
    if not result["ok"]:
        raise RuntimeError(f"corelog-load reported failures: {result['failures']}")
    return result


def produce_rate(r: dict) -> float:
    return r["produce"]["measured"]["msgs_per_s"]


def produce_mb(r: dict) -> float:
    return r["produce"]["measured"]["mb_per_s"]


def ack_p99_ms(r: dict) -> float:
    return r["produce"]["ack_latency_us"]["p99"] / 1000


def create(broker: Broker, topic: str, partitions: int, *configs: str):
    cmd = [str(CORELOG), "topics", "create", topic, "--partitions", str(partitions),
           "--bootstrap-server", broker.bootstrap]
    for c in configs:
        cmd += ["--config", c]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def main() -> int:
    global CORELOG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--out", default="per-core.json")
    ap.add_argument("--only", action="append", default=[], help="scenario names containing this")
    ap.add_argument("--corelog", help="the broker binary (default: the release build; to compare two builds)")
    ap.add_argument("--broker-arg", action="append", default=[],
                    help="passed to every `corelog serve` (e.g. --broker-arg=--log-direct-io=false)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="run nothing: print the table of the runs in these --out files together "
                         "(interleaved A/B: several --runs 1 of each build or flag, merged per side)")
    args = ap.parse_args()
    if args.merge:
        merged: dict[str, list[dict]] = {}
        for path in args.merge:
            for name, runs in json.loads(Path(path).read_text()).items():
                merged.setdefault(name, []).extend(runs)
        print_table(merged)
        return 0
    BROKER_ARGS.extend(args.broker_arg)
    if args.corelog:
        CORELOG = Path(args.corelog)
    timed = ["--duration", args.duration, "--warmup", 1]
    figures: dict[str, list[dict]] = {}
    maxima: dict[str, float] = {}

    def record(name: str, **values):
        figures.setdefault(name, []).append(values)

    def produce(name, *flags, setup=None, shards=1, cpus="0", load_cpus="1", extra=None):
        b = Broker(shards=shards, cpus=cpus, extra=extra)
        try:
            if setup:
                setup(b)
            r = load(b, "--topic", "t", *flags, *timed, cpus=load_cpus)
            record(name, msgs_per_s=produce_rate(r), mb_per_s=produce_mb(r), ack_p99_ms=ack_p99_ms(r),
                   peak_rss_mib=b.status("VmHWM") / 1024)
            return b, r
        finally:
            b.stop()

    scenarios = []

    def scenario(fn):
        scenarios.append(fn)
        return fn

    @scenario
    def produce_100b():
        produce("produce 100 B, 1 partition, acks=1", "--record-bytes", 100, "--partitions", 1)

    def consume(record_bytes: int, idle_rss: bool = False):
        b = Broker()
        try:
            if idle_rss:
                record("idle broker RSS", rss_mib=b.status("VmRSS") / 1024)
            n = load(b, "--topic", "t", "--record-bytes", record_bytes, "--duration", args.duration)["produce"]["messages"]
            r = load(b, "--topic", "t", "--record-bytes", record_bytes, "--producers", 0, "--consumers", 1, "--messages", n)
            size = "100 B" if record_bytes == 100 else "1 KiB"
            record(f"consume {size} from the beginning", msgs_per_s=r["consume"]["measured"]["msgs_per_s"],
                   mb_per_s=r["consume"]["measured"]["mb_per_s"])
        finally:
            b.stop()

    @scenario
    def consume_100b():
        consume(100, idle_rss=True)

    @scenario
    def consume_1k():
        consume(1024)

    @scenario
    def produce_1k():
        produce("produce 1 KiB, 1 partition, acks=1", "--record-bytes", 1024, "--partitions", 1)

    @scenario
    def produce_1k_large_batches():
        # One producer's window (5 requests in flight) bounds what one O_DIRECT
        # write can carry; larger batches fill the device's queue (README).
        produce("produce 1 KiB, 256 KiB batches, 1 partition, acks=1", "--record-bytes", 1024,
                "--batch-bytes", 262144, "--partitions", 1)

    @scenario
    def two_producers():
        # Two producers' windows on one partition (DESIGN.md compares Iggy's one and two producers).
        for size, label in ((100, "100 B"), (1024, "1 KiB")):
            produce(f"produce {label}, 2 producers on 1 partition", "--record-bytes", size, "--partitions", 1,
                    "--producers", 2)

    @scenario
    def produce_1k_durable():
        produce("produce 1 KiB, durable (flush.messages=1, acks=all)", "--record-bytes", 1024, "--acks", "all",
                setup=lambda b: create(b, "t", 1, "flush.messages=1"))

    @scenario
    def produce_1000():
        produce("produce 100 B, 1000 partitions", "--record-bytes", 100, "--partitions", 1000)

    @scenario
    def compressed():
        for codec in ("lz4", "zstd"):
            produce(f"produce 1 KiB, {codec}", "--record-bytes", 1024, "--compression", codec)

    @scenario
    def latency_50():
        base = statistics.median(f["msgs_per_s"] for f in figures.get("produce 100 B, 1 partition, acks=1", [])
                                 or [{"msgs_per_s": 2e6}])
        # The client's window (5 requests in flight) closes whenever a request
        # takes longer than 5 send intervals; 10 shows what that costs (README).
        for idle, in_flight in ((0, 5), (10_000, 5), (0, 10)):
            b = Broker()
            try:
                rss0 = b.status("VmRSS")
                r = load(b, "--topic", "t", "--record-bytes", 100, "--rate", round(base / 2), "--consumers", 1,
                         "--idle-connections", idle, "--max-in-flight", in_flight, *timed)
                rss = b.status("VmHWM")
            finally:
                b.stop()
            name = ("produce + consume at 50% of the maximum" + (f", {idle} idle connections" if idle else "")
                    + (f", client max.in.flight {in_flight}" if in_flight != 5 else ""))
            lat, e2e = r["produce"]["ack_latency_us"], r["consume"]["e2e_latency_us"]
            record(name, msgs_per_s=produce_rate(r), ack_p99_ms=lat["p99"] / 1000,
                   broker_produce_p99_ms=b.produce_p99_ms, e2e_p99_ms=e2e["p99"] / 1000,
                   e2e_p9999_ms=e2e["p99.99"] / 1000, extra_rss_mib=(rss - rss0) / 1024)

    @scenario
    def two_shards():
        # Both cores: the broker's two shards and the load generator share them.
        produce("produce 100 B, 2 partitions, --shards 2 (both CPUs, load generator too)", "--record-bytes", 100,
                "--partitions", 2, "--producers", 2, shards=2, cpus="0,1", load_cpus="0,1")

    chosen = [s for s in scenarios if not args.only or any(o in s.__name__ for o in args.only)]
    for run in range(args.runs):
        for s in chosen:
            print(f"run {run + 1}/{args.runs}: {s.__name__}", file=sys.stderr, flush=True)
            s()
    Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    print_table(figures)
    return 0


def print_table(figures: dict[str, list[dict]]):
    print("| scenario | figure | median | min | max |")
    print("|:--|:--|--:|--:|--:|")
    for name, runs in figures.items():
        for key in runs[0]:
            values = [r[key] for r in runs if r.get(key) is not None]
            if not values:
                continue
            fmt = ((lambda v: f"{v / 1e6:.2f}M") if key == "msgs_per_s"
                   else (lambda v: f"{v:.2f}") if key.endswith("_ms") else (lambda v: f"{v:.1f}"))
            print(f"| {name} | {key} | {fmt(statistics.median(values))} | {fmt(min(values))} | {fmt(max(values))} |")
    runs = max(len(r) for r in figures.values()) if figures else 0
    print(f"\n{runs} runs each; {os.uname().nodename}, {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    sys.exit(main())
