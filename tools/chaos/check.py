"""The checker: judges a chaos run's history (see history.py) property by
property. Pure functions of the event list, so doctored histories test it.

    python3 tools/chaos/check.py HISTORY.jsonl      # prints the verdicts; exit 1 on any violation
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

# After the last fault is healed, every producer must have a record
# acknowledged and every consumer must have read one within this many
# seconds, unless the `healed` event states its own bound (run.py's
# --settle). The cluster re-elects, clients refresh metadata and back off
# (librdkafka's reconnect backoff tops out at 10 s).
LIVENESS_BOUND_S = 30.0
# How many offending events a verdict quotes.
EXAMPLES_MAX = 5

Key = tuple  # (topic, partition)


def _slot(producer_or_consumer: str) -> str:
    """A producer that hit a fatal error is replaced by a new incarnation
    ("p1.0" -> "p1.1"); liveness is owed by the slot."""
    return producer_or_consumer.split(".")[0]


def _verdict(name: str, violations: list, detail: str) -> dict:
    return {"property": name, "ok": not violations, "violations": len(violations),
            "examples": violations[:EXAMPLES_MAX], "detail": detail}


def _by_type(events: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        out[e["type"]].append(e)
    return out


def _final_log(ev) -> dict[Key, dict[int, str]]:
    log: dict[Key, dict[int, str]] = defaultdict(dict)
    for e in ev["final"]:
        log[(e["topic"], e["partition"])][e["offset"]] = e["value"]
    return log


def _where(log) -> dict[str, list]:
    where: dict[str, list] = defaultdict(list)
    for key, records in log.items():
        for offset, value in records.items():
            where[value].append((*key, offset))
    return where


def _stored_as_acked(e: dict, value: str, log, where) -> str | None:
    """What the final log holds where `e` acknowledged `value`. An
    acknowledgement without an offset (librdkafka reports a batch it infers
    was written, such as one refused as out of order behind a later
    acknowledged batch, with none) is found by value in its partition."""
    key = (e["topic"], e["partition"])
    if e["offset"] is None:
        return value if any(at[:2] == key for at in where.get(value, [])) else None
    return log.get(key, {}).get(e["offset"])


def _acked_not_once(ev, log) -> list[dict]:
    """Every acknowledged record not in the final log exactly once where it
    was acknowledged: {"lost": ...} or {"duplicated": ...}, all of them."""
    value_of = {(e["producer"], e["seq"]): e["value"] for e in ev["send"]}
    where = _where(log)
    bad = []
    for e in ev["ack"]:
        value = value_of.get((e["producer"], e["seq"]))
        key = (e["topic"], e["partition"])
        stored = _stored_as_acked(e, value, log, where)
        if stored != value:
            bad.append({"lost": value, "acked_at": [*key, e["offset"]], "t_ack": e["t"],
                        "found_there": stored, "found_elsewhere": where.get(value, [])})
        elif len(where[value]) != 1:
            bad.append({"duplicated": value, "at": where[value]})
    return bad


def acknowledged_present_once(ev, log) -> dict:
    """Every acknowledged record is in the final log exactly once, at the
    offset it was acknowledged at."""
    bad = _acked_not_once(ev, log)
    return _verdict("acknowledged_present_once", bad,
                    f"{len(ev['ack'])} acknowledged records checked against {sum(map(len, log.values()))} read back")


def no_duplicates(ev, log) -> dict:
    """No value (acknowledged or not) is stored twice: the idempotent
    producer's retries are deduplicated."""
    seen = _where(log)
    bad = [{"value": v, "at": at} for v, at in seen.items() if len(at) > 1]
    return _verdict("no_duplicates", bad, f"{len(seen)} distinct values read back")


def ack_order(ev, log) -> dict:
    """Per partition and producer, acknowledgements come in offset order and
    in send (sequence) order, and the producer's acknowledged records sit in
    the log in that same order."""
    bad = []
    acks: dict[tuple, list[dict]] = defaultdict(list)
    for e in ev["ack"]:
        acks[(e["producer"], e["topic"], e["partition"])].append(e)
    for (producer, topic, partition), series in acks.items():
        for prev, cur in zip(series, series[1:]):
            offsets_known = prev["offset"] is not None and cur["offset"] is not None
            if not ((not offsets_known or cur["offset"] > prev["offset"]) and cur["seq"] > prev["seq"]):
                bad.append({"producer": producer, "partition": [topic, partition],
                            "acked": [[prev["seq"], prev["offset"]], [cur["seq"], cur["offset"]]]})
    return _verdict("ack_order", bad, f"{len(acks)} (producer, partition) series")


def no_lost_reads(ev, log) -> dict:
    """Nothing a consumer read is later missing from the log (or replaced)."""
    bad = []
    for e in ev["read"]:
        stored = log.get((e["topic"], e["partition"]), {}).get(e["offset"])
        if stored != e["value"]:
            bad.append({"read": e["value"], "at": [e["topic"], e["partition"], e["offset"]],
                        "t_read": e["t"], "consumer": e["consumer"], "found_there": stored})
    return _verdict("no_lost_reads", bad, f"{len(ev['read'])} reads checked")


def _never_back(samples: list[dict], field: str, what: str) -> list:
    bad, best = [], {}
    for e in samples:
        key = (e["topic"], e["partition"])
        if key in best and e[field] < best[key][field]:
            bad.append({what: [e["topic"], e["partition"]], "was": best[key][field], "t_was": best[key]["t"],
                        "then": e[field], "t_then": e["t"]})
        if key not in best or e[field] >= best[key][field]:
            best[key] = e
    return bad


def high_watermark_monotonic(ev, log) -> dict:
    """The high watermark (ListOffsets latest, sampled) never goes back, and
    the final read ends at or past every watermark ever seen."""
    samples = sorted(ev["hw"] + ev["final_end"], key=lambda e: e["t"])
    bad = _never_back(samples, "hw", "partition")
    return _verdict("high_watermark_monotonic", bad, f"{len(ev['hw'])} samples")


def committed_offsets_monotonic(ev, log) -> dict:
    """The group's committed offsets never go back: neither between samples
    (OffsetFetch) nor below a commit the coordinator had accepted before the
    sample was asked for."""
    samples = sorted(ev["committed"], key=lambda e: e["t"])
    bad = _never_back(samples, "offset", "partition")
    accepted = sorted(ev["commit"], key=lambda e: e["t"])
    floor: dict[Key, dict] = {}
    i = 0
    for s in samples:
        while i < len(accepted) and accepted[i]["t"] < s.get("asked", s["t"]):
            c = accepted[i]
            key = (c["topic"], c["partition"])
            if key not in floor or c["offset"] > floor[key]["offset"]:
                floor[key] = c
            i += 1
        key = (s["topic"], s["partition"])
        if key in floor and s["offset"] < floor[key]["offset"]:
            bad.append({"partition": list(key), "accepted": floor[key]["offset"], "t_accepted": floor[key]["t"],
                        "sampled": s["offset"], "t_sampled": s["t"]})
    return _verdict("committed_offsets_monotonic", bad, f"{len(samples)} samples, {len(accepted)} commits")


def liveness(ev, log) -> dict:
    """Every producer slot had a record acknowledged, and every consumer read
    one, within LIVENESS_BOUND_S of the last fault's heal."""
    if not ev["healed"]:
        return _verdict("liveness", [{"missing": "no 'healed' event"}], "")
    healed = ev["healed"][-1]["t"]
    bound_s = ev["healed"][-1].get("bound_s", LIVENESS_BOUND_S)
    bound = healed + bound_s
    first: dict[str, float] = {}
    for kind, field in (("ack", "producer"), ("read", "consumer")):
        for e in ev[kind]:
            slot = f"{kind}:{_slot(e[field])}"
            if e["t"] >= healed and slot not in first:
                first[slot] = e["t"]
    slots = {f"ack:{_slot(e['producer'])}" for e in ev["send"]} | {f"read:{_slot(e['consumer'])}" for e in ev["read"]}
    bad = [{"slot": s, "first_after_heal_s": round(first[s] - healed, 2) if s in first else None}
           for s in sorted(slots) if s not in first or first[s] > bound]
    waits = {s: round(first[s] - healed, 2) for s in sorted(first)}
    return _verdict("liveness", bad, f"bound {bound_s} s after the heal at t={healed}; first progress: {waits}")


PROPERTIES = [acknowledged_present_once, no_duplicates, ack_order, no_lost_reads,
              high_watermark_monotonic, committed_offsets_monotonic, liveness]


def check(events: list[dict]) -> list[dict]:
    ev = _by_type(events)
    log = _final_log(ev)
    return [prop(ev, log) for prop in PROPERTIES]


def unavailability(events: list[dict]) -> list[dict]:
    """What each fault cost: from its injection to the next fault (or the
    stop), the longest stretch a partition went without an acknowledgement
    and the longest stretch with none at all."""
    ev = _by_type(events)
    ack_times: dict[Key, list[float]] = defaultdict(list)
    for e in ev["ack"]:
        ack_times[(e["topic"], e["partition"])].append(e["t"])
    every_ack = sorted(t for ts in ack_times.values() for t in ts)
    end = ev["stop"][-1]["t"] if ev["stop"] else (every_ack[-1] if every_ack else 0.0)
    faults = ev["fault"]
    out = []
    for i, f in enumerate(faults):
        until = faults[i + 1]["t"] if i + 1 < len(faults) else end
        heal = next((h["t"] for h in ev["heal"] if h["t"] >= f["t"] and h["fault"] == f["fault"]), None)

        def longest_gap(times):
            gap, prev = 0.0, f["t"]
            for t in times:
                if t <= f["t"]:
                    continue
                gap = max(gap, min(t, until) - prev)
                prev = t
                if t >= until:
                    break
            else:
                gap = max(gap, until - prev)
            return round(gap, 2)

        out.append({"fault": f["fault"], "nodes": f["nodes"], "detail": f.get("detail", ""), "t": f["t"],
                    "held_s": round(heal - f["t"], 2) if heal is not None else None,
                    "partition_ack_gap_s": max((longest_gap(ts) for ts in ack_times.values()), default=None),
                    "no_ack_at_all_s": longest_gap(every_ack)})
    return out


def summary(events: list[dict]) -> dict:
    ev = _by_type(events)
    verdicts = check(events)
    log = _final_log(ev)
    # Counted here in full, not from the verdict's quoted examples.
    not_once = _acked_not_once(ev, log)
    lost = sum(1 for bad in not_once if "lost" in bad)
    return {"faults": len(ev["fault"]), "sent": len(ev["send"]), "acknowledged": len(ev["ack"]),
            "failed": len(ev["fail"]), "read": len(ev["read"]), "commits": len(ev["commit"]),
            "lost": lost, "duplicated": len(not_once) - lost,
            "ok": all(v["ok"] for v in verdicts), "verdicts": verdicts,
            "unavailability": unavailability(events)}


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from history import load

    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    result = summary(load(Path(argv[1])))
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
