"""Fixtures that run the real corelog binary.

tests/run.sh builds the binary and passes its path in CORELOG_BIN; nothing is
built here.  Each broker gets a free port range P..P+shards-1 and a fresh
data directory; its stderr goes to a file in the test's tmp dir and is
attached to the report of any failing test that used it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import kafka_wire

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def corelog_bin() -> str:
    path = os.environ.get("CORELOG_BIN")
    if not path:
        pytest.skip("CORELOG_BIN is not set: run the suite through tests/run.sh (it builds the broker)")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"CORELOG_BIN={path} is not an executable file: build with cargo build --release")
    return path


def _port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _bindable(port: int, host: str = HOST) -> bool:
    """Could a server bind this port now (with SO_REUSEADDR, as the broker does)?"""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_range(n: int) -> int:
    """A base port P such that P..P+n-1 are all free right now."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        base = s.getsockname()[1]
        s.close()
        if base + n - 1 > 65535:
            continue
        if all(_port_free(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no free range of {n} ports found")


class Broker:
    """One corelog process (and its restarts) over one data directory."""

    def __init__(self, binary, data_dir: Path, log_path: Path, shards=2, args=None):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.shards = shards
        self.args = dict(args or {})
        self.port = free_port_range(shards)
        self.host = HOST
        self.proc = None
        self.returncode = None
        self._log_start = 0  # offset in the log file where the current run began
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def shard_port(self, shard: int) -> int:
        return self.port + shard

    def command(self):
        cmd = [
            self.binary, "serve",
            "--data-dir", str(self.data_dir),
            "--host", self.host,
            "--port", str(self.port),
            "--advertised-host", self.host,
            "--shards", str(self.shards),
        ]
        for k, v in self.args.items():
            cmd += [f"--{k}", str(v)]
        return cmd

    def start(self, timeout=READY_TIMEOUT):
        self.spawn()
        self._wait_ready(timeout)
        return self

    def spawn(self):
        """Starts the process without waiting for it to serve (a node of a
        cluster serves only once a quorum of its peers runs too)."""
        assert self.proc is None or self.proc.poll() is not None, "broker already running"
        # A killed io_uring process releases its listening sockets asynchronously (a few ms
        # after exit): wait for the ports like a supervisor's restart delay would.
        deadline = time.monotonic() + 10
        while not all(_bindable(self.port + s, self.host) for s in range(self.shards)) and time.monotonic() < deadline:
            time.sleep(0.05)
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env.setdefault("RUST_BACKTRACE", "1")
        env["NO_COLOR"] = "1"
        with open(self.log_path, "ab") as f:
            self._log_start = f.tell()
            f.write(f"\n===== start: {' '.join(self.command())}\n".encode())
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._logf, stderr=self._logf,
            start_new_session=True,
        )
        self.returncode = None

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        pending = list(range(self.shards))
        last_err = None
        while pending:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                pytest.fail(f"corelog exited with status {self.proc.returncode} during start-up:\n{self.log()}",
                            pytrace=False)
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"corelog not ready within {timeout:.0f}s (shard ports {pending} from base "
                            f"{self.port}; last error: {last_err!r}):\n{self.log()}", pytrace=False)
            shard = pending[0]
            try:
                with kafka_wire.Conn(self.host, self.port + shard, timeout=2.0) as c:
                    err, apis = c.api_versions()
                    if err != 0 or not apis:
                        raise RuntimeError(f"ApiVersions error {err}, {len(apis)} apis")
                pending.pop(0)
            except (OSError, kafka_wire.ConnectionClosed, RuntimeError, ValueError) as e:
                last_err = e
                time.sleep(0.1)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT) -> str:
        """SIGTERM, wait for a clean exit; returns the stderr of this run."""
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self.returncode = self.proc.returncode
                self._close_log()
                raise AssertionError(f"corelog did not exit within {timeout}s of SIGTERM:\n{self.log()}")
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._close_log()
        return self.run_log()

    def kill(self):
        """SIGKILL (a crash); returns the stderr of this run."""
        if self.running():
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._close_log()
        return self.run_log()

    def restart(self):
        self.stop()
        return self.start()

    def _close_log(self):
        f = getattr(self, "_logf", None)
        if f is not None:
            f.close()
            self._logf = None

    def log(self) -> str:
        """All stderr so far (every run of this broker)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def run_log(self) -> str:
        """stderr of the current/last run only."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wire(self, shard=0, timeout=10.0) -> kafka_wire.Conn:
        return kafka_wire.Conn(self.host, self.port + shard, timeout=timeout)


_all_brokers: list[Broker] = []


def pytest_configure(config):
    # kafka-python 3.0 loads its protocol schemas with deprecated importlib.resources calls
    config.addinivalue_line("filterwarnings", "ignore:read_text is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:open_text is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:.*does not implement kafka.serializer:DeprecationWarning")


@pytest.fixture(scope="session")
def corelog():
    return corelog_bin()


def _make_factory(binary, base: Path, created: list):
    def make(shards=2, start=True, **args):
        """make(shards=2, **{'auto-create-topics-enable': 'false'}) -> started Broker."""
        args = {k.replace("_", "-"): v for k, v in args.items()}
        # Tests roll tiny segments: lower the 1 MiB floor on segment.bytes, as
        # Kafka's own tests use internal.segment.bytes. A test of the floor
        # passes log_segment_bytes_min itself.
        args.setdefault("log-segment-bytes-min", 1024)
        idx = len(created)
        b = Broker(binary, base / f"data{idx}", base / f"corelog{idx}.stderr.log", shards=shards, args=args)
        created.append(b)
        _all_brokers.append(b)
        if start:
            b.start()
        return b
    return make


def _teardown(created):
    for b in created:
        try:
            b.kill()
        except Exception:
            pass
        if b in _all_brokers:
            _all_brokers.remove(b)


@pytest.fixture
def broker_factory(corelog, tmp_path):
    created: list[Broker] = []
    yield _make_factory(corelog, tmp_path, created)
    _teardown(created)


@pytest.fixture
def broker(broker_factory):
    """A fresh 2-shard broker for one test."""
    return broker_factory()


@pytest.fixture(scope="module")
def module_broker_factory(corelog, tmp_path_factory, request):
    created: list[Broker] = []
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    yield _make_factory(corelog, base, created)
    _teardown(created)


@pytest.fixture(scope="module")
def module_broker(module_broker_factory):
    """A 2-shard broker shared by a module's tests (auto-created topics get 3 partitions)."""
    return module_broker_factory(**{"num-partitions": 3})


# -------------------------------------------------- stderr on failure ---

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and rep.when == "call":
        # Attach the stderr of every broker in use by this test (function- and module-scoped).
        for b in list(_all_brokers):
            text = b.log()
            if len(text) > 20000:
                text = f"... (truncated; full log in {b.log_path})\n" + text[-20000:]
            rep.sections.append((f"corelog stderr (port {b.port}, {b.log_path})", text))
