#!/usr/bin/env bash
# What ran the lent-machine part of results/paper_cpu (three calls: "sort|reverse"; "copy|mqmtar|flip_flop",
# whose results were lost when the call outran its limit before the merge; "copy|mqmtar.v1/softmax/nape/.*/s0").
# `lengthbench run SUITE --jobs 16 --threads-per-run 1` now does the same in one command.
# This is the third call's version; the first two lacked the hard kill (timeout -k) and merged every shard.
# out/grid.sh SUITE REGEX DEADLINE_S NAME [JOBS]: runs the suite's runs whose key matches REGEX,
# JOBS (16) at a time, one thread each, longest first (dry-run estimate), each in its own shard
# database; stops starting runs that cannot finish and SIGTERMs the rest at DEADLINE_S after the
# start; merges the finished shards into $OUT/NAME.sqlite, logs into $OUT/NAME.logs.tgz.
set -u
suite=$1 regex=$2 limit=$3 name=$4 jobs=${5:-16}
here=$(pwd)
R="$here/out/bundle/run lengthbench"
work=/tmp/grid-$name; rm -rf $work; mkdir -p $work/shards $work/logs
deadline=$(( $(date +%s) + limit ))
$R run $suite --dry-run | awk '/TFLOP/ && NF==4 {gsub("~","",$3); print $3, $1}' | grep -E "$regex" \
  | sort -g -r -k1,1 | awk '{print $2}' > $work/keys
echo "$(wc -l < $work/keys) runs, $jobs at a time, deadline in $limit s"
export R work deadline suite
one() {
  key=$1; id=$(echo "$key" | tr '/=' '__')
  left=$(( deadline - $(date +%s) ))
  if [ $left -lt 250 ]; then echo "SKIP $key ($left s left)"; return 0; fi
  s=$(date +%s)
  timeout -k 5 -s TERM $((left - 5)) $R run $suite --filter "^${key}\$" --db $work/shards/$id.sqlite \
    --checkpoints $work/ckpt --threads 1 > $work/logs/$id.log 2>&1
  rc=$?
  [ $rc = 0 ] && mkdir -p $work/ok && ln -s $work/shards/$id.sqlite $work/ok/$id.sqlite
  echo "$key rc=$rc $(( $(date +%s) - s ))s"
}
export -f one
timeout -k 3 $((limit + 2)) xargs -P $jobs -I{} bash -c "one {}" < $work/keys
ls $work/ok/*.sqlite > /dev/null 2>&1 && $R merge $OUT/$name.sqlite $work/ok/*.sqlite | tail -3
$R query $OUT/$name.sqlite "PRAGMA wal_checkpoint(TRUNCATE)" > /dev/null 2>&1
tar czf $OUT/$name.logs.tgz -C $work logs keys
