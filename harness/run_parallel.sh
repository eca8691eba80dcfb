#!/usr/bin/env bash
# Runs a suite on a many-core machine: one `lengthbench run` process per run (JOBS at a time,
# 1 thread each, each writing its own database: SQLite wants one writer per file), then merges
# them and writes the tables. Runs left unfinished by the time limit resume on the next call.
#   harness/run_parallel.sh SUITE.json OUT_DIR [JOBS] [SECONDS]
# LB overrides the binary (e.g. a carried bundle: "out/bundle/ld-linux-x86-64.so.2
# --library-path out/bundle out/bundle/lengthbench").
set -u
suite=$1 out=$2 jobs=${3:-$(nproc)} limit=${4:-0}
export LB=${LB:-build/harness/lengthbench} suite out
name=$(basename "$suite" .json)
mkdir -p "$out/shards"
{ nproc; lscpu | grep -E 'Model name' ; } > "$out/machine.txt"
$LB run "$suite" --dry-run | awk 'NF == 4 {print $1}' > "$out/keys.txt"
one() {
  local f
  f=$(echo "$1" | tr / _)
  $LB run "$suite" --db "$out/shards/$f.sqlite" --filter "^$1\$" --threads 1 \
    --checkpoints "${CHECKPOINTS:-/tmp/$(basename "$out")-checkpoints}" > "$out/shards/$f.log" 2>&1
}
export -f one
if [ "$limit" -gt 0 ]; then
  timeout "$limit" xargs -P "$jobs" -I{} bash -c 'one "$@"' _ {} < "$out/keys.txt"
else
  xargs -P "$jobs" -I{} bash -c 'one "$@"' _ {} < "$out/keys.txt"
fi
$LB merge "$out/$name.sqlite" "$out"/shards/*.sqlite
$LB status "$out/$name.sqlite" "$suite" | tail -1
$LB table "$out/$name.sqlite" > "$out/table_mean.md"
$LB table "$out/$name.sqlite" --protocol best > "$out/table_best.md"
cat "$out/table_mean.md"
