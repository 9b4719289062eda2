"""Medians of interleaved before/after runs (tools/bench/interleaved.sh):
python3 tools/bench/summarize_interleaved.py OUT_DIR"""

import glob
import json
import statistics
import sys
from pathlib import Path


def runs(out: Path, kind: str, which: str, field: str) -> list[float]:
    def round_of(path: str) -> int:
        return int(Path(path).stem.split("-")[1])

    values = []
    for path in sorted(glob.glob(str(out / f"{kind}-*-{which}.json")), key=round_of):
        data = json.loads(Path(path).read_text())
        key = next(k for k in data if k.startswith(kind))
        values.append(data[key][0][field])
    return values


def main(out: Path):
    for kind, field in [("produce", "msgs_per_s"), ("produce", "ack_p99_ms"), ("consume", "msgs_per_s")]:
        before, after = runs(out, kind, "before", field), runs(out, kind, "after", field)
        if not before or not after:
            continue
        show = lambda vs: [round(v / 1e6, 2) if v > 1000 else v for v in vs]  # noqa: E731
        ratio = statistics.median(after) / statistics.median(before)
        print(f"{kind} {field}: before {show(before)} median {statistics.median(before):.4g}; "
              f"after {show(after)} median {statistics.median(after):.4g}; after/before {ratio:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
