#!/usr/bin/env bash
# A CPU flame graph of one corelog shard under load.
#
#   tools/profile/flamegraph.sh OUT.svg [SECONDS] [-- corelog-load flags...]
#   tools/profile/flamegraph.sh produce.svg 5 -- --record-bytes 100 --partitions 1
#
# Starts `corelog serve --shards 1` pinned to CPU 0 on a fresh data dir, runs
# corelog-load pinned to CPU 1 (default: one producer, 100 B records), samples
# the broker (all its threads, io_uring workers included) with perf at 499 Hz
# with DWARF call graphs, and folds the samples into an SVG with inferno.
# Needs perf (Debian: linux-perf) and inferno (cargo install inferno); installs
# neither itself. Builds nothing: run `cargo build --release` first.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: flamegraph.sh OUT.svg [SECONDS] [-- corelog-load flags...]}
shift
secs=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then secs=$1; shift; fi
if [ "${1:-}" = "--" ]; then shift; fi
load_args=("$@")
[ ${#load_args[@]} -gt 0 ] || load_args=(--record-bytes 100 --partitions 1)
for tool in perf inferno-collapse-perf inferno-flamegraph; do
    command -v "$tool" >/dev/null || { echo "flamegraph.sh: $tool not found" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
taskset -c 0 target/release/corelog serve --shards 1 --port "$port" --data-dir "$work/data" >"$work/broker.log" 2>&1 &
broker=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
taskset -c 1 target/release/corelog-load --bootstrap-server "127.0.0.1:$port" --topic flame \
    --duration $((secs + 2)) --warmup 1 --quiet "${load_args[@]}" >"$work/load.out" &
load=$!
sleep 1
perf record -F 499 --call-graph dwarf,16384 -p "$broker" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null
wait "$load"
cat "$work/load.out"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph \
    --title "corelog shard: corelog-load ${load_args[*]}" >"$out"
echo "wrote $out"
