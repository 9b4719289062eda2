#!/bin/bash
# Per-core before/after rounds, interleaved (which build goes first alternates
# every round, so a drift of the machine favours neither):
#   tools/bench/interleaved.sh BEFORE_BIN AFTER_BIN OUT_DIR CASE ROUNDS
# CASE is a per_core.py case (produce_100b, consume_100b, ...); each run writes
# OUT_DIR/<kind>-<round>-<before|after>.json; then
#   python3 tools/bench/summarize_interleaved.py OUT_DIR
set -e
before=$1; after=$2; out=$3; case=$4; rounds=$5
kind=${case%%_*}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for w in $order; do
    bin=$before; [ "$w" = after ] && bin=$after
    echo "round $r $w $case $(date -u +%T)"
    python3 tools/bench/per_core.py --runs 1 --only "$case" --corelog "$bin" --out "$out/$kind-$r-$w.json" 2>&1 | tail -2
  done
done
