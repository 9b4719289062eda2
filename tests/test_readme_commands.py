"""The README's first command starts the broker as a user would type it.

The README opens with two commands; the second is this suite. The first,
`cargo run --release`, once broke silently when the repository became a
workspace with three binaries ("could not determine which binary to run"):
nothing ran it. Here it runs from the repository root (with a free port
and a temporary data directory added, so it cannot collide with anything)
and a Kafka client must see the broker.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from confluent_kafka.admin import AdminClient

from conftest import free_port_range
from helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    """The commands of the README's first code block, without comments."""
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_opens_with_the_two_commands():
    assert readme_commands() == ["cargo run --release", "bash tests/run.sh"]


def test_cargo_run_starts_the_broker(tmp_path):
    port = free_port_range(2)
    command = readme_commands()[0].split() + ["--", "serve", "--port", str(port), "--shards", "2",
                                               "--data-dir", str(tmp_path / "data")]
    broker = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})

        def brokers():
            if broker.poll() is not None:
                raise AssertionError(f"`{' '.join(command)}` exited: {broker.stderr.read()[-2000:]}")
            try:
                return sorted(admin.list_topics(timeout=2).brokers)
            except Exception:
                return None

        wait_until(lambda: brokers() == [0, 1], timeout=120, what="the broker started by cargo run")
    finally:
        broker.terminate()
        broker.wait(timeout=30)
