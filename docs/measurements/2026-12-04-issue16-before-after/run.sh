#!/bin/bash
# Interleaved per-core rounds: before (f2176e9, issue 15) and after (issue 16 merged), alternating which goes first.
cd /work/main; mkdir -p /work/bench/issue16
B=/work/bench/corelog-15-after; A=/work/bench/corelog-16-after; O=/work/bench/issue16
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for w in $order; do
    bin=$B; [ $w = after ] && bin=$A
    echo "round $r $w produce $(date -u +%T)"
    python3 tools/bench/per_core.py --runs 1 --only produce_100b --corelog $bin --out $O/produce-$r-$w.json 2>&1 | tail -2
  done
done
for r in 1 2 3 4 5 6; do
  if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for w in $order; do
    bin=$B; [ $w = after ] && bin=$A
    echo "round $r $w consume $(date -u +%T)"
    python3 tools/bench/per_core.py --runs 1 --only consume_100b --corelog $bin --out $O/consume-$r-$w.json 2>&1 | tail -2
  done
done
echo done $(date -u +%T)
