#!/usr/bin/env bash
# Suite throughput of `lengthbench run --jobs N --threads-per-run M` (issue 13): runs the whole
# small16 suite from scratch once per configuration, each into its own database, and records its
# wall time and the runs it finished (runs per hour = finished / wall). A configuration that would
# take longer than CAP_S seconds is stopped there (SIGTERM: its runs save and stop); its rate is
# then a lower bound (the unfinished runs' work is not counted). Run from the repository root with
# the Release bundle in out/bundle (harness/bundle.sh); results in $OUT (or ./out/throughput):
#
#   results/bench/jobs_throughput.sh CAP_S 16x1 8x2 4x4 1x16
#
# throughput.txt: one line per configuration; small16_NxM.tgz: its database (for the check that
# every configuration stored the same numbers: results/bench/jobs_throughput_compare.py).
set -u
cap=$1; shift
out=${OUT:-$(pwd)/out/throughput}
mkdir -p "$out"
LB="$(pwd)/out/bundle/run lengthbench"
total=$($LB run harness/suites/small16.json --dry-run | grep -c ' TFLOP$')
for c in "$@"; do
  n=${c%x*} m=${c#*x}
  dir=/tmp/tp/$c; rm -rf "$dir"; mkdir -p "$dir"
  s=$(date +%s%N)
  timeout -k 30 -s TERM "$cap" $LB run harness/suites/small16.json --db "$dir/small16.sqlite" \
    --jobs "$n" --threads-per-run "$m" > "$dir/run.log" 2>&1
  rc=$?
  e=$(date +%s%N)
  python3 - "$dir/small16.sqlite" "$c" "$rc" "$(( (e - s) / 1000000 ))" "$total" <<'EOF' | tee -a "$out/throughput.txt"
import sqlite3, sys
db, config, rc, wall_ms, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = sqlite3.connect(db)
c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
done = c.execute("select count(*) from runs where status = 'done'").fetchone()[0]
wall = wall_ms / 1000
print(f"{config} rc={rc} wall_s={wall:.1f} done={done}/{total} runs_per_hour={3600 * done / wall:.0f}"
      + ("" if done == total else " (stopped at the cap: a lower bound)"))
EOF
  tail -3 "$dir/run.log" > "$out/tail_$c.txt"
  (cd "$dir" && tar czf "$out/small16_$c.tgz" small16.sqlite)
done
