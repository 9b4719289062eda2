"""Prints the record batches of one partition's segment files, replica by
replica, to compare the nodes' logs where the checker found a violation:

    python3 tools/chaos/dump_log.py OUT/cluster chaos-0 1 --from 10740 --to 10760

finds OUT/cluster/node*/<topic>-<partition> (and node*-data/, the copies of
tmpfs data directories) and prints, per batch: base and last offset, leader
epoch, producer id, epoch and base sequence, and the values (uncompressed
batches only, as the chaos producers write them).
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

HEADER = struct.Struct(">qiibIhiqqqhii")  # Kafka RecordBatch v2, up to the record count
HEADER_BYTES = HEADER.size  # 61


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


def _values(records: bytes, count: int) -> list[str]:
    out, pos = [], 0
    for _ in range(count):
        length, pos = _varint(records, pos)
        end = pos + length
        pos += 1  # attributes
        _, pos = _varint(records, pos)  # timestamp delta
        _, pos = _varint(records, pos)  # offset delta
        key_len, pos = _varint(records, pos)
        pos += max(key_len, 0)
        value_len, pos = _varint(records, pos)
        out.append(records[pos:pos + value_len].decode(errors="replace") if value_len >= 0 else "<null>")
        pos = end
    return out


def batches(partition_dir: Path):
    for segment in sorted(partition_dir.glob("*.log")):
        data = segment.read_bytes()
        pos = 0
        while pos + HEADER_BYTES <= len(data):
            (base, length, leader_epoch, magic, _crc, attributes, last_delta, _ts, _max_ts, producer_id,
             producer_epoch, base_seq, count) = HEADER.unpack_from(data, pos)
            if length <= 0:
                break  # O_DIRECT padding after the last batch
            body = data[pos + HEADER_BYTES:pos + 12 + length]
            compressed = attributes & 0x7
            yield {"segment": segment.name, "base": base, "last": base + last_delta, "epoch": leader_epoch,
                   "magic": magic, "pid": producer_id, "pepoch": producer_epoch, "seq": base_seq,
                   "control": bool(attributes & 0x20),
                   "values": [f"<codec {compressed}>"] if compressed else _values(body, count)}
            pos += 12 + length


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cluster_dir", type=Path)
    p.add_argument("topic")
    p.add_argument("partition", type=int)
    p.add_argument("--from", dest="start", type=int, default=0)
    p.add_argument("--to", dest="end", type=int, default=1 << 62)
    args = p.parse_args()
    for node_dir in sorted(d for d in args.cluster_dir.glob("node*") if d.is_dir()):
        partition_dir = node_dir / f"{args.topic}-{args.partition}"
        if not partition_dir.is_dir():
            continue
        print(f"== {partition_dir}")
        for b in batches(partition_dir):
            if b["last"] >= args.start and b["base"] <= args.end:
                print(f"  {b['base']}..{b['last']} epoch {b['epoch']} pid {b['pid']}/{b['pepoch']} seq {b['seq']}"
                      f"{' control' if b['control'] else ''}: {' '.join(b['values'])}")


if __name__ == "__main__":
    main()
