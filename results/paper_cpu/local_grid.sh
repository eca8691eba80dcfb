#!/usr/bin/env bash
# What ran the 2-core part of results/paper_cpu, from /work/local_grid (keys: the runs not done on the lent machine).
# Local (2-core) part of paper_cpu: the runs the lent machine's budget did not cover.
cd /work/main
export R="/work/main/out/bundle/run lengthbench" W=/work/local_grid
one() {
  key=$1; id=$(echo "$key" | tr '/=' '__'); s=$(date +%s)
  $R run harness/suites/paper_cpu.json --filter "^${key}\$" --db $W/shards/$id.sqlite --checkpoints $W/ckpt --threads 1 > $W/logs/$id.log 2>&1
  echo "$key rc=$? $(( $(date +%s) - s ))s $(date +%H:%M:%S)"
}
export -f one
mkdir -p $W/shards $W/logs
xargs -P 2 -I{} bash -c "one {}" < $W/keys
echo ALL-DONE
