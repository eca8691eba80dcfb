#!/usr/bin/env bash
# What ran issue 12's last paper_cpu runs and the MQMTAR calibration on the lent 16-core machine.
#   out/lb/device_grid.sh LIMIT_S [JOBS]   (from the repository root, on the lent machine)
# out/lb/keys lists "SUITE KEY" lines, in the order to start them. Each run is one process,
# `lengthbench run SUITE --filter '^KEY$'`, one thread, its own shard database in /tmp/w/shards,
# checkpoints in /tmp/w/ckpt; JOBS (16) at a time; everything still running at LIMIT_S is
# SIGTERMed (it stops and resumes from its last checkpoint when this script runs again: a warm
# machine keeps /tmp/w, a fresh one unpacks out/lb/state.tgz.* that an earlier call returned).
# Leaves in $OUT: pending.sqlite (finished paper_cpu runs), calib.sqlite (finished calibration
# runs), calib_partial.sqlite (unfinished ones, for their training curves), logs.tgz, and
# state.tgz.* (15 MB parts: shards and last checkpoints of unfinished runs).
# How it ran (2026-11-29, bundle of main 9db9d46, carry ["out/lb"] = this script, the bundle as
# bundle.tgz, mqmtar_calibration.json, keys): keys = the 18 pending paper_cpu runs as
# `lengthbench status results/paper_cpu/paper_cpu.sqlite harness/suites/paper_cpu.json` lists
# them (flip-flop first), then the 16 calibration runs (base5k first). Call 1:
# `device_grid.sh 530 16` (all 17 paper_cpu runs but copy SSMax seed 2 and 4 calibration runs
# finished); call 2, warm: copy SSMax seed 2 alone on 4 threads beside `device_grid.sh 290 12`
# (the other 12 calibration runs finished); call 3: copy SSMax seed 2 on 16 threads (78 s).
set -u
limit=$1 jobs=${2:-16}
start=$(date +%s)
deadline=$((start + limit))
[ -x /tmp/bundle/run ] || tar xzf out/lb/bundle.tgz -C /tmp
R="/tmp/bundle/run lengthbench"
W=/tmp/w
if [ ! -d $W ] && ls out/lb/state.tgz.* > /dev/null 2>&1; then
  cat out/lb/state.tgz.* | tar xzf - -C /tmp && echo "resumed from out/lb/state.tgz.*"
fi
mkdir -p $W/shards $W/logs $W/ok $W/ckpt
echo "$(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo); limit $limit s, $jobs at a time"
export R W deadline
one() {
  suite=$1 key=$2 id=$(echo "$2" | tr '/=' '__')
  left=$((deadline - $(date +%s)))
  if [ -e $W/ok/$id ]; then return 0; fi
  if [ $left -lt 60 ]; then echo "SKIP $key ($left s left)"; return 0; fi
  s=$(date +%s)
  timeout -k 10 -s TERM $left $R run $suite --filter "^${key}\$" --db $W/shards/$id.sqlite \
    --checkpoints $W/ckpt --threads 1 --progress-every 60 >> $W/logs/$id.log 2>&1
  rc=$?
  [ $rc = 0 ] && echo "$suite" > $W/ok/$id
  echo "$(date +%T) rc=$rc $(($(date +%s) - s))s $key"
}
export -f one
timeout -k 5 $((limit + 15)) xargs -P $jobs -L 1 bash -c 'one "$0" "$1"' < out/lb/keys
echo "grid ended after $(($(date +%s) - start)) s"
ok_p=() ok_c=() part=()
while read -r suite key; do
  id=$(echo "$key" | tr '/=' '__')
  [ -e $W/shards/$id.sqlite ] || continue
  if [ -e $W/ok/$id ]; then
    case $suite in *paper_cpu.json) ok_p+=($W/shards/$id.sqlite) ;; *) ok_c+=($W/shards/$id.sqlite) ;; esac
    rm -rf "$W/ckpt/$key"
  else
    case $suite in *paper_cpu.json) ;; *) part+=($W/shards/$id.sqlite) ;; esac
  fi
done < out/lb/keys
[ ${#ok_p[@]} -gt 0 ] && $R merge $OUT/pending.sqlite "${ok_p[@]}" | tail -1
[ ${#ok_c[@]} -gt 0 ] && $R merge $OUT/calib.sqlite "${ok_c[@]}" | tail -1
[ ${#part[@]} -gt 0 ] && $R merge $OUT/calib_partial.sqlite "${part[@]}" | tail -1
for f in $OUT/*.sqlite; do
  python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('PRAGMA wal_checkpoint(TRUNCATE)'); c.execute('PRAGMA journal_mode=DELETE'); c.close()" $f
done
tar czf $OUT/logs.tgz -C $W logs ok
tar czf - -C /tmp w | split -b 15000000 - $OUT/state.tgz.
ls -la $OUT; du -sh $W/ckpt
echo "done after $(($(date +%s) - start)) s"
