"""Apache Kafka's own tools and Java client, run from their Maven Central jars.

`tests/java/setup.sh` (called by tests/run.sh, or here on first use) resolves
the jars and writes tests/java/target/classpath.txt. Each Kafka script maps to
the main class its bin/*.sh runs, so a test reads like the command a Kafka user
types: kafka_tool("kafka-topics", "--bootstrap-server", b, "--list").
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

JAVA_DIR = Path(__file__).resolve().parent / "java"
# Class-data-sharing archives (one per JVM and classpath): the first tool run
# writes one at exit, later runs map it and start in half the time (~1 s
# instead of ~2 s here), which is most of what a tool run costs.
CDS_DIR = JAVA_DIR / "target" / "cds"

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
    "kafka-log-dirs": "org.apache.kafka.tools.LogDirsCommand",
    "kafka-reassign-partitions": "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
    "kafka-cluster": "org.apache.kafka.tools.ClusterTool",
    "kafka-storage": "kafka.tools.StorageTool",
    "kafka-server-start": "kafka.Kafka",
}


@functools.cache
def classpath() -> str:
    subprocess.run([str(JAVA_DIR / "setup.sh")], check=True)
    return (JAVA_DIR / "target" / "classpath.txt").read_text().strip()


def _java() -> str:
    return os.environ.get("JAVA", "java")


@functools.cache
def _shared_classpath() -> str:
    """classpath() with the jars first: a class-data-sharing archive can only
    cover jars, and a directory before them would keep it from being written."""
    entries = classpath().split(":")
    return ":".join([e for e in entries if not os.path.isdir(e)] + [e for e in entries if os.path.isdir(e)])


@functools.cache
def _archive() -> Path:
    """Where the class-data-sharing archive of this JVM and classpath lives (written on first use)."""
    java = os.path.realpath(shutil.which(_java()) or _java())
    key = hashlib.sha256(f"{java}\0{_shared_classpath()}".encode()).hexdigest()[:16]
    return CDS_DIR / f"kafka-{key}.jsa"


def _java_cmd(main_class: str, args, archive_flag: str) -> list[str]:
    # small heap, quick start: these are short-lived command-line tools. The
    # JVM's own warnings go to stderr, never into the stdout a test parses.
    return [_java(), "-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Xlog:disable", "-Xlog:all=warning:stderr", archive_flag,
            "-cp", _shared_classpath(), main_class, *args]


def java_cmd(main_class: str, *args: str) -> list[str]:
    # A missing or stale archive is ignored by the JVM (-Xshare:auto).
    return _java_cmd(main_class, args, f"-XX:SharedArchiveFile={_archive()}")


def kafka_tool(script: str, *args: str, input: str | None = None, timeout: float = 120,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run one of Kafka's scripts (by its bin/ name, without .sh); returns stdout/stderr as text."""
    archive = _archive()
    dump = None
    if archive.exists():
        cmd = java_cmd(SCRIPTS[script], *args)
    else:
        # This run writes the archive as it exits, under a name of its own until complete.
        CDS_DIR.mkdir(parents=True, exist_ok=True)
        dump = archive.with_suffix(f".{os.getpid()}.tmp")
        cmd = _java_cmd(SCRIPTS[script], args, f"-XX:ArchiveClassesAtExit={dump}")
    res = None
    try:
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
    finally:
        if dump is not None:
            # Only a run that exited on its own wrote a whole archive.
            if res is not None and res.returncode == 0 and dump.exists():
                os.replace(dump, archive)
            else:
                dump.unlink(missing_ok=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited {res.returncode}\n"
                             f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def start_tool(script: str, *args: str, **popen) -> subprocess.Popen:
    """Start a long-running tool (VerifiableConsumer, console consumer) as a process."""
    return subprocess.Popen(java_cmd(SCRIPTS[script], *args), text=True, **popen)
