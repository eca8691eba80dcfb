#!/usr/bin/env bash
# The from-scratch rerun of harness/suites/paper_cpu.json on the lent 16-core machine, chained
# over device calls of at most 10 minutes (results/paper_cpu/rerun16.md says what it showed).
#
#   results/paper_cpu/rerun16.sh LIMIT_S   (from the repository root, the bundle in out/bundle)
#
# Runs `lengthbench run harness/suites/paper_cpu.json --jobs 16 --threads-per-run 1` into
# /tmp/rr/rerun.sqlite for at most LIMIT_S seconds; at the limit every run saves its checkpoint
# and stops (SIGTERM), and the next call resumes them. /tmp/rr outlives a call while the machine
# stays warm; when a call finds a fresh machine it starts from out/rerun_state.tgz (the database
# and the shards of the previous call, carried back in: unfinished runs then restart from step 0,
# since their checkpoints are too large to carry). Each call leaves in $OUT: its log, the
# database and shards (rerun_state.tgz), and the state line of `run --dry-run`.
set -u
limit=$1
here=$(pwd)
LB="$here/out/bundle/run lengthbench"
rr=/tmp/rr
if [ ! -f $rr/rerun.sqlite ]; then
  mkdir -p $rr
  if [ -f out/rerun_state.tgz ]; then tar xzf out/rerun_state.tgz -C $rr; echo "restored from out/rerun_state.tgz"; fi
else
  echo "resuming /tmp/rr of the previous call"
fi
start=$(date +%s)
timeout -k 90 -s TERM "$limit" $LB run harness/suites/paper_cpu.json --db $rr/rerun.sqlite \
  --jobs 16 --threads-per-run 1 > "$OUT/run_$(date +%H%M%S).log" 2>&1
echo "run rc=$? wall=$(( $(date +%s) - start )) s"
$LB run harness/suites/paper_cpu.json --db $rr/rerun.sqlite --dry-run | tail -2 | tee "$OUT/state.txt"
python3 -c "import sqlite3; sqlite3.connect('$rr/rerun.sqlite').execute('PRAGMA wal_checkpoint(TRUNCATE)')"
(cd $rr && tar czf "$OUT/rerun_state.tgz" rerun.sqlite $(ls -d rerun.sqlite.shards 2>/dev/null))
ls -la "$OUT"
