#!/bin/bash
# A second interleaved consume set (set 1's spread was wide): 8 rounds.
cd /work/main; O=/work/bench/issue16/set2; mkdir -p $O
B=/work/bench/corelog-15-after; A=/work/bench/corelog-16-after
for r in 1 2 3 4 5 6 7 8; do
  if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
  for w in $order; do
    bin=$B; [ $w = after ] && bin=$A
    echo "round $r $w consume $(date -u +%T)"
    python3 tools/bench/per_core.py --runs 1 --only consume_100b --corelog $bin --out $O/consume-$r-$w.json 2>&1 | tail -2
  done
done
echo done $(date -u +%T)
