"""Apache Kafka's own tools and Java client, run from their Maven Central jars.

`tests/java/setup.sh` (called by tests/run.sh, or here on first use) resolves
the jars and writes tests/java/target/classpath.txt. Each Kafka script maps to
the main class its bin/*.sh runs, so a test reads like the command a Kafka user
types: kafka_tool("kafka-topics", "--bootstrap-server", b, "--list").
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

JAVA_DIR = Path(__file__).resolve().parent / "java"

# bin/<script>.sh of Apache Kafka 4.x -> the class it runs
SCRIPTS = {
    "kafka-topics": "org.apache.kafka.tools.TopicCommand",
    "kafka-console-producer": "org.apache.kafka.tools.ConsoleProducer",
    "kafka-console-consumer": "org.apache.kafka.tools.consumer.ConsoleConsumer",
    "kafka-consumer-groups": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
    "kafka-configs": "org.apache.kafka.tools.ConfigCommand",
    "kafka-delete-records": "org.apache.kafka.tools.DeleteRecordsCommand",
    "kafka-get-offsets": "org.apache.kafka.tools.GetOffsetShell",
    "kafka-verifiable-producer": "org.apache.kafka.tools.VerifiableProducer",
    "kafka-verifiable-consumer": "org.apache.kafka.tools.VerifiableConsumer",
    "kafka-producer-perf-test": "org.apache.kafka.tools.ProducerPerformance",
    "kafka-consumer-perf-test": "org.apache.kafka.tools.ConsumerPerformance",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-server-start": "kafka.Kafka",
}


@functools.cache
def classpath() -> str:
    subprocess.run([str(JAVA_DIR / "setup.sh")], check=True)
    return (JAVA_DIR / "target" / "classpath.txt").read_text().strip()


def java_cmd(main_class: str, *args: str) -> list[str]:
    java = os.environ.get("JAVA", "java")
    # small heap, quick start: these are short-lived command-line tools
    return [java, "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-cp", classpath(), main_class, *args]


def kafka_tool(script: str, *args: str, input: str | None = None, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run one of Kafka's scripts (by its bin/ name, without .sh); returns stdout/stderr as text."""
    cmd = java_cmd(SCRIPTS[script], *args)
    res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited {res.returncode}\n"
                             f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def start_tool(script: str, *args: str, **popen) -> subprocess.Popen:
    """Start a long-running tool (VerifiableConsumer, console consumer) as a process."""
    return subprocess.Popen(java_cmd(SCRIPTS[script], *args), text=True, **popen)
