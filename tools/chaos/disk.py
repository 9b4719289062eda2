"""A full disk on one node: every node's data directory is a tmpfs of
DATA_DIR_BYTES (mounted before the node first starts, so the controller's
Raft log shares it, as it shares a real disk); the fault writes a filler
file until ENOSPC and removes it to heal. tmpfs has no real fsync, which
does not matter here: ENOSPC is what is injected. Needs root (mount).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

# Room for a chaos run's logs (a few MiB a minute at the default rate) many
# times over; the filler takes what is left, so a fuller size only costs memory.
DATA_DIR_BYTES = 256 << 20
FILLER_CHUNK_BYTES = 64 << 10
FILLER_NAME = "chaos-filler"


class DiskError(RuntimeError):
    pass


def mount(data_dir: Path):
    data_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DATA_DIR_BYTES}", "tmpfs", str(data_dir)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DiskError(f"cannot mount a tmpfs on {data_dir}: {done.stderr.strip()}; the disk fault needs root")


def unmount(data_dir: Path):
    subprocess.run(["umount", "-l", str(data_dir)], capture_output=True)


def fill(data_dir: Path) -> Path:
    """Writes a filler file until the file system is full; returns it."""
    filler = data_dir / FILLER_NAME
    chunk = b"\0" * FILLER_CHUNK_BYTES
    # Unbuffered: a chunk cut short by the full disk must not stay in a
    # buffer that closing the file would try, and fail, to write again.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
    return filler
