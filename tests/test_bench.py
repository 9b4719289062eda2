"""corelog-bench against the real broker: a tiny matrix must write a report with a row per
scenario and its plots, and the counts in results.json must be what the broker holds.

corelog-bench and corelog-load are built next to the broker (cargo build --release builds every
binary), so their paths are derived from CORELOG_BIN.  Runs use --duration 1 --warmup 0 and a
few scenarios so each takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from helpers import admin, watermarks
from confluent_kafka.admin import ConfigResource

RUN_TIMEOUT = 120
# peer formats Kafka's storage once and starts Kafka twice (several seconds each on a busy core)
PEER_TIMEOUT = 240
SVGS = ["throughput.svg", "latency.svg", "partitions.svg"]


def _sibling(corelog, name, env):
    path = os.environ.get(env) or os.path.join(os.path.dirname(corelog), name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"no {name} binary at {path}: build with cargo build --release")
    return path


@pytest.fixture(scope="session")
def bench_bin(corelog):
    return _sibling(corelog, "corelog-bench", "CORELOG_BENCH_BIN")


@pytest.fixture(scope="session")
def load_bin(corelog):
    return _sibling(corelog, "corelog-load", "CORELOG_LOAD_BIN")


def run_bench(bench_bin, *args, expect_rc=0):
    r = subprocess.run([bench_bin, *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=RUN_TIMEOUT)
    assert r.returncode == expect_rc, \
        f"corelog-bench {' '.join(map(str, args))} exited {r.returncode}:\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def table_rows(report):
    """{scenario name: [cells]} from the results table of report.md."""
    rows = {}
    for line in report.splitlines():
        if line.startswith("| ") and not line.startswith("| scenario "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def check_outputs(out, names):
    report = (out / "report.md").read_text()
    assert "## Results" in report and "**Command:**" in report and "**Machine:**" in report
    rows = table_rows(report)
    assert sorted(rows) == sorted(names), report
    for cells in rows.values():
        assert len(cells) == 11, cells
    for svg in SVGS:
        text = (out / svg).read_text()
        assert text.startswith("<svg") and text.rstrip().endswith("</svg>"), svg
        assert f"]({svg})" in report
    results = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in results["scenarios"]] == names
    return report, rows, results


def test_quick_matrix_against_running_broker(broker, bench_bin, load_bin, corelog, tmp_path):
    """Two throughput scenarios and the fixed-rate one; produced counts match the log end offsets."""
    out = tmp_path / "bench"
    r = run_bench(bench_bin, "run", "--quick", "--duration", 1, "--warmup", 0, "--scenarios", 2,
                  "--out", out, "--bootstrap-server", broker.bootstrap, "--broker-pid", broker.proc.pid,
                  "--load", load_bin, "--corelog", corelog)
    names = ["100B-none-p1-acks1", "100B-none-p16-acks1", "100B-none-p1-acks1-rate50"]
    report, rows, results = check_outputs(out, names)
    assert "| 100B-none-p1-acks1 |" in r.stdout  # the table is printed too
    assert results["broker_mode"] == "external"
    by_name = {s["name"]: s for s in results["scenarios"]}
    for name, s in by_name.items():
        assert s["ok"], s
        parts = s["scenario"]["partitions"]
        held = 0
        for p in range(parts):
            low, high = watermarks(broker.bootstrap, s["topic"], p)
            assert low == 0
            held += high
        assert s["produced"] > 0
        assert s["produced"] == held, f"{name}: results.json says {s['produced']} produced, broker holds {held}"
        assert s["consumed"] == s["produced"]
        assert s["produce_msgs_per_s"] > 0 and s["consume_msgs_per_s"] > 0
        assert s["ack_latency_us"]["p99"] >= s["ack_latency_us"]["p50"] > 0
        assert s["broker_cpu_s"] is not None and s["broker_cpu_s"] >= 0
        assert s["load"]["tool"] == "corelog-load"
    base, fixed = by_name["100B-none-p1-acks1"], by_name["100B-none-p1-acks1-rate50"]
    assert fixed["rate_msgs_per_s"] == pytest.approx(base["produce_msgs_per_s"] / 2, rel=0.01, abs=1)
    assert fixed["load"]["config"]["rate"] == fixed["rate_msgs_per_s"]
    assert "(50%)" in rows["100B-none-p1-acks1-rate50"][1]
    assert "<polyline" in (out / "latency.svg").read_text()
    assert "1 partitions" in (out / "partitions.svg").read_text()


def test_durable_scenario_creates_flushing_topic(broker, bench_bin, load_bin, corelog, tmp_path):
    """A durable scenario creates its topic with flush.messages=1 before the load, which keeps it."""
    out = tmp_path / "bench"
    run_bench(bench_bin, "run", "--only", "100B-none-p10-durable", "--duration", 1, "--warmup", 0,
              "--out", out, "--bootstrap-server", broker.bootstrap, "--load", load_bin, "--corelog", corelog)
    _, _, results = check_outputs(out, ["100B-none-p10-durable"])
    s = results["scenarios"][0]
    assert s["ok"] and s["scenario"]["durable"] and s["load"]["config"]["acks"] == "all"
    assert s["broker_cpu_s"] is None  # no --broker-pid
    held = sum(watermarks(broker.bootstrap, s["topic"], p)[1] for p in range(10))
    assert s["produced"] == held > 0
    res = ConfigResource(ConfigResource.Type.TOPIC, s["topic"])
    a = admin(broker.bootstrap)  # keep the handle alive while the future is pending
    configs = a.describe_configs([res])[res].result(20)
    assert configs["flush.messages"].value == "1"


def test_spawned_broker_repeats_and_keeps_the_median(bench_bin, load_bin, corelog, tmp_path):
    """Without --bootstrap-server the harness starts (and stops) its own corelog per run; with
    --repeat 3 the row is the median run and shows the range of all three."""
    out = tmp_path / "bench"
    run_bench(bench_bin, "run", "--quick", "--only", "1KiB-lz4-p16", "--duration", 1, "--warmup", 0,
              "--repeat", 3, "--out", out, "--corelog", corelog, "--load", load_bin)
    _, rows, results = check_outputs(out, ["1KiB-lz4-p16-acks1"])
    s = results["scenarios"][0]
    assert results["broker_mode"] == "spawned" and s["ok"], s
    assert s["consumed"] == s["produced"] > 0
    runs = s["runs_produce_msgs_per_s"]
    assert len(runs) == 3 and sorted(runs)[1] == s["produce_msgs_per_s"], s
    assert "–" in rows["1KiB-lz4-p16-acks1"][2]  # "median (min–max)"
    for rep in range(3):
        assert "corelog stopped" in (out / "logs" / f"1KiB-lz4-p16-acks1-r{rep}.broker.log").read_text()
    assert s["broker_peak_rss_kib"] > 0 and s["broker_cpu_s"] > 0 and s["broker_cpu_s_per_million"] > 0
    assert rows["1KiB-lz4-p16-acks1"][-1] != "–"
    assert not (out / "broker-data").exists()


def _results(path, scenarios):
    path.write_text(json.dumps({"tool": "corelog-bench", "command_line": "x", "scenarios": scenarios}))
    return path


def test_compare_prints_ratios(bench_bin, tmp_path):
    a = _results(tmp_path / "a.json", [
        {"name": "100B-none-p1-acks1", "ok": True, "produce_msgs_per_s": 1_000_000.0, "consume_msgs_per_s": 900_000.0,
         "ack_latency_us": {"p50": 1000, "p99": 4000, "p99.9": 8000}, "broker_cpu_s_per_million": 0.5},
        {"name": "only-in-a", "ok": True, "produce_msgs_per_s": 5.0},
    ])
    b = _results(tmp_path / "b.json", [
        {"name": "100B-none-p1-acks1", "ok": True, "produce_msgs_per_s": 2_000_000.0, "consume_msgs_per_s": 450_000.0,
         "ack_latency_us": {"p50": 500, "p99": 4000, "p99.9": 8000}, "broker_cpu_s_per_million": 0.25},
    ])
    out = run_bench(bench_bin, "compare", a, b).stdout
    lines = {re.sub(r"\s+", " ", l.strip()) for l in out.splitlines()}
    assert "produce msgs/s 1.00M 2.00M 2.00x" in lines, out
    assert "consume msgs/s 900k 450k 0.50x" in lines, out
    assert "produce p50 ms 1.00 0.50 0.50x" in lines, out
    assert "produce p99 ms 4.00 4.00 1.00x" in lines, out
    assert "CPU s/M msgs 0.50 0.25 0.50x" in lines, out
    assert "only-in-a (only in A)" in lines, out
    assert "geometric mean of produce msgs/s B/A over 1 throughput scenario(s): 2.00x" in out, out
    r = subprocess.run([bench_bin, "compare", str(a), str(tmp_path / "missing.json")], capture_output=True, text=True)
    assert r.returncode != 0 and "missing.json" in r.stderr



JAVA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "java")


def run_peer(bench_bin, load_bin, corelog, out, *args):
    if not shutil.which("java"):
        pytest.skip("no java: tests/run.sh installs it")
    r = subprocess.run([bench_bin, "peer", "--rounds", "1", "--duration", "1", "--warmup", "0", "--out", str(out),
                        "--corelog", corelog, "--load", load_bin, "--java-dir", JAVA_DIR, *map(str, args)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PEER_TIMEOUT)
    assert r.returncode == 0, f"corelog-bench peer exited {r.returncode}:\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    results = json.loads((out / "results.json").read_text())
    for run in results["runs"]:
        assert run["ok"], run
        figures = run["figures"]
        assert figures["start_ms"] > 0 and figures["idle_rss_mib"] > 0
        assert figures["peak_rss_mib"] >= figures["idle_rss_mib"]
        with pytest.raises(ProcessLookupError):  # stopped, not left running
            os.kill(run["pid"], 0)
    assert not (out / "broker-data").exists()
    return r, results, (out / "peer.md").read_text()


def check_ratio_rows(report, labels):
    """Each row has both brokers' medians and their ratio."""
    rows = table_rows(report)
    for label in labels:
        cells = rows[label]
        assert len(cells) == 4 and "–" not in cells, cells
        corelog_v, kafka_v, ratio = (parse_si(c) for c in cells[1:])
        assert ratio == pytest.approx(corelog_v / kafka_v, rel=0.05), cells


def test_peer_runs_corelog_and_kafka_side_by_side(bench_bin, load_bin, corelog, tmp_path):
    """`peer` in its smallest shape: one produce/consume case, one round, on corelog and on Apache Kafka
    (started from tests/java's jars with Kafka's default flush policy, answered Metadata, stopped). The
    consume step reads back exactly what the fill step had acknowledged, and the table holds both
    columns and their ratio. 16 partitions: Kafka names a new partition's leader before that leader
    serves it, which corelog-load must wait out (it failed with NOT_LEADER_OR_FOLLOWER before)."""
    out = tmp_path / "peer"
    consume_mb = 2  # 20,000 records of 100 B
    r, results, report = run_peer(bench_bin, load_bin, corelog, out, "--only", "produce-100B-p16-x1",
                                  "--consume-mb", consume_mb)
    assert results["brokers"]["kafka"]["version"] == "4.4.0"
    assert "-Xmx1G" in results["brokers"]["kafka"]["jvm_args"]
    assert [(x["case"], x["broker"]) for x in results["runs"]] == [
        ("produce-100B-p16-x1", "corelog"), ("produce-100B-p16-x1", "kafka")]
    n = consume_mb * 1_000_000 // 100
    for run in results["runs"]:
        figures = run["figures"]
        steps = {s["step"]: s["load"] for s in run["raw"]}
        assert figures["produce_msgs_per_s"] > 0 and figures["produce_cpu_s_per_million"] > 0
        assert steps["produce"]["produce"]["measured"]["msgs_per_s"] == figures["produce_msgs_per_s"]
        assert steps["fill"]["produce"]["messages"] == n
        assert steps["consume"]["consume"]["messages"] == n
        assert figures["consume_msgs_per_s"] > 0 and figures["consume_cpu_s_per_million"] >= 0  # 10 ms ticks
    # Kafka's default flush policy: the server.properties it ran with sets nothing about flushing.
    props = (out / "logs" / "r0-produce-100B-p16-x1-kafka.server.properties").read_text()
    assert "process.roles=broker,controller" in props and "flush" not in props
    check_ratio_rows(report, ["produce 100 B, 16 partitions, 1 producer: msgs/s",
                              "consume 100 B, 16 partitions from the beginning (2 MB): msgs/s",
                              "time to start (spawn until a Metadata answer), every start: ms"])
    assert "| produce 100 B, 16 partitions, 1 producer: msgs/s |" in r.stdout  # the table is printed too
    assert "`taskset -c 0`" in report and "4.4.0" in report and "**Command:**" in report


def test_peer_runs_kafkas_producer_performance(bench_bin, load_bin, corelog, tmp_path):
    """Kafka's ProducerPerformance, pinned like the load, against corelog alone (--brokers corelog:
    no Kafka start, to keep this short): its steady-state line is what the figures hold; then
    Kafka's ConsumerPerformance reads every one of those records back."""
    records = 20_000
    _, results, report = run_peer(bench_bin, load_bin, corelog, tmp_path / "peer", "--brokers", "corelog",
                                  "--only", "producer-perf", "--perf-records", records)
    [run] = results["runs"]
    assert (run["case"], run["broker"]) == ("producer-perf-100B", "corelog")
    steps = {raw["step"]: raw["summary"] for raw in run["raw"] if "summary" in raw}
    summary = steps["producer-perf"]
    assert summary["steady_state"] and summary["records"] == records - records // 5
    consumed = steps["consumer-perf"]
    assert consumed["messages"] == records and consumed["fetch_msgs_per_s"] > 0, consumed
    figures = run["figures"]
    assert figures["perf_records_per_s"] == summary["records_per_s"] > 0
    assert figures["perf_mb_per_s"] == pytest.approx(summary["records_per_s"] * 100 / 1e6)
    assert figures["perf_p99_ms"] >= figures["perf_p50_ms"] > 0
    assert results["brokers"]["kafka"] is None and results["brokers"]["producer_performance"]["version"] == "4.4.0"
    row = table_rows(report)["Kafka's ProducerPerformance, 100 B, acks=all: records/s"]
    assert row[1] != "–" and row[2] == "–" and row[3] == "–", row
    assert figures["consumer_perf_fetch_msgs_per_s"] == consumed["fetch_msgs_per_s"]
    row = table_rows(report)["Kafka's ConsumerPerformance, 100 B, the same records: msgs/s while fetching"]
    assert row[1] != "–" and row[2] == "–", row


def parse_si(cell):
    """'2.35M' -> 2.35e6, '93.3k' -> 93300.0, '0.0039' -> 0.0039."""
    scale = {"k": 1e3, "M": 1e6, "G": 1e9}
    return float(cell[:-1]) * scale[cell[-1]] if cell[-1] in scale else float(cell)
