"""A slow disk on one node: every node's data directory is a FUSE mount
(tools/chaos/slowfs, go-fuse's loopback) of a backing directory beside it,
mounted before the node first starts, so the controller's Raft log is on it
too; the fault makes one node's fsyncs (and, in the `write` variant, its
writes) sleep, then makes them fast again. Needs root and /dev/fuse.

There is no device-mapper `delay` target on this machine, and io_uring does
not go through libc, so an LD_PRELOAD shim could not slow it; a FUSE mount
sees every operation, whatever the caller uses.

The backing directories (`nodeN-backing`) keep the nodes' data after the run.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
# Built by tests/run.sh (go build in tools/chaos/slowfs); SLOWFS_BIN overrides.
DEFAULT_BINARY = REPO / "tools/chaos/slowfs/target/slowfs"
# What a slow disk adds while the fault holds: an fsync or fdatasync (the
# durable topic's every acknowledgement, a segment's seal, the controller's
# Raft log, the high-watermark checkpoint) and, in the `write` variant, every
# write (which every acks=all produce on that node waits for, as a leader or
# as a follower the ISR waits on).
FSYNC_DELAY_MS = 300
WRITE_DELAY_MS = 100
# The daemon's signals (see slowfs/main.go).
VARIANT_SIGNALS = {"fsync": signal.SIGUSR1, "write": signal.SIGHUP}
FAST_SIGNAL = signal.SIGUSR2
# How long the daemon may take to mount, to answer a switch, to unmount.
SWITCH_TIMEOUT_S = 10.0
UNMOUNT_TIMEOUT_S = 10.0


class SlowDiskError(RuntimeError):
    pass


def binary() -> Path:
    return Path(os.environ.get("SLOWFS_BIN", DEFAULT_BINARY))


def backing_dir(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + "-backing")


class SlowDisk:
    """One node's data directory mounted through slowfs."""

    def __init__(self, data_dir: Path, log_path: Path, fsync_delay_ms: int = FSYNC_DELAY_MS,
                 write_delay_ms: int = WRITE_DELAY_MS):
        self.data_dir, self.backing, self.log_path = data_dir, backing_dir(data_dir), log_path
        self.fsync_delay_ms, self.write_delay_ms = fsync_delay_ms, write_delay_ms
        self.proc = None

    def mount(self) -> "SlowDisk":
        exe = binary()
        if not os.access(exe, os.X_OK):
            raise SlowDiskError(f"no slowfs at {exe}: build it with `go build -o target/slowfs .` in "
                                "tools/chaos/slowfs (tests/run.sh does), or set SLOWFS_BIN")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.backing.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(exe), "-backing", str(self.backing), "-mount", str(self.data_dir),
                 "-fsync-delay", f"{self.fsync_delay_ms}ms", "-write-delay", f"{self.write_delay_ms}ms"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        if self._answer() != "mounted":
            self.proc.kill()
            self.proc.wait(5)
            raise SlowDiskError(f"slowfs did not mount {self.data_dir} (needs root and /dev/fuse): "
                                f"{self.log_path.read_text(errors='replace')[-2000:]}")
        return self

    def _answer(self) -> str:
        """The daemon's next line on stdout ("" if none comes in time)."""
        ready, _, _ = select.select([self.proc.stdout], [], [], SWITCH_TIMEOUT_S)
        return self.proc.stdout.readline().decode().strip() if ready else ""

    def _switch(self, sig: signal.Signals, expected: str):
        """Signals the daemon and waits until it has switched, so that the
        next operation on the mount sees the new mode."""
        self.proc.send_signal(sig)
        answer = self._answer()
        if not answer.startswith(expected):
            raise SlowDiskError(f"slowfs on {self.data_dir} answered {answer!r} to {sig.name}, not {expected!r}")

    def slow(self, variant: str = "fsync"):
        self._switch(VARIANT_SIGNALS[variant], "slow")

    def fast(self):
        self._switch(FAST_SIGNAL, "fast")

    def unmount(self):
        """After the node is stopped: SIGTERM unmounts; a mount still busy is
        detached lazily so that the run's directory can go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(UNMOUNT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                subprocess.run(["umount", "-l", str(self.data_dir)], capture_output=True)
                self.proc.kill()
                self.proc.wait(5)
        # A daemon gone without unmounting leaves a mount that answers ENOTCONN
        # (which os.path.ismount cannot tell from none): detach it regardless.
        subprocess.run(["umount", "-l", str(self.data_dir)], capture_output=True)
        self.proc.stdout.close()
        self.proc = None
