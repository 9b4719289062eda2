"""The history of a chaos run: one JSON object a line, each with `t` (seconds
since the run began, monotonic) and `type`. Everything the checker judges is
in it, so a verdict can be recomputed from the file alone
(`python3 tools/chaos/check.py history.jsonl`).

Event types (fields besides `t` and `type`):

- send      producer, seq, topic, partition, value      a record handed to the client
- ack       producer, seq, topic, partition, offset     its acknowledgement (acks=all)
- fail      producer, seq, topic, partition, error      delivery failed: the record may or may not be stored
- read      consumer, topic, partition, offset, value   a group member consumed it
- commit    consumer, topic, partition, offset          a synchronous commit the coordinator accepted
- committed topic, partition, offset, asked             the group's committed offset, sampled (OffsetFetch asked at `asked`)
- hw        topic, partition, hw                        ListOffsets latest, sampled
- fault     fault, nodes, detail                        a fault injected
- heal      fault, nodes                                that fault repaired
- healed    -                                           the last fault repaired: liveness is measured from here
- stop      -                                           the workload stopped
- final     topic, partition, offset, value             the log read back from the beginning after healing
- final_end topic, partition, hw                        where that read ended
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path


class History:
    """Thread-safe, append-only; kept in memory for the checker and streamed
    to `path` (line-buffered) so a run that dies still leaves its history."""

    def __init__(self, path: Path | None = None):
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._file = open(path, "w", buffering=1) if path else None

    def now(self) -> float:
        return round(time.monotonic() - self._start, 4)

    def add(self, type: str, **fields) -> dict:
        event = {"t": self.now(), "type": type, **fields}
        with self._lock:
            self.events.append(event)
            if self._file:
                self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
        return event

    def close(self):
        if self._file:
            self._file.close()


def load(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
