#!/usr/bin/env bash
# `make demo`: a small real experiment on this machine, printed as a table.
set -euo pipefail
LB=${1:-build/harness/lengthbench}
out=$(mktemp -d /tmp/lengthbench-demo.XXXXXX)
echo "== the tasks"
"$LB" tasks | grep -E '^[a-z_]+ \(v'
echo
echo "== an n_back sample (2-back) and the model sequence it becomes"
"$LB" gen n_back --length 10 --param vocab=8
echo
echo "== how the normalizers differ on one row of scores"
for n in softmax entmax sparsemax; do echo "-- $n"; "$LB" normalize "$n" -- 2 1.5 1 0 -1; done
echo
echo "== the experiment: harness/suites/demo.json (2 runs, about a minute on 2 cores)"
"$LB" run harness/suites/demo.json --dry-run
"$LB" run harness/suites/demo.json --db "$out/demo.sqlite"
echo
"$LB" table "$out/demo.sqlite"
echo "== attention dispersion at the longest length (layer 1; heads 0-1 ALiBi, 2-3 NoPE and length-scaled)"
"$LB" query "$out/demo.sqlite" "SELECT r.normalizer, a.head, round(a.entropy_norm, 3) AS entropy_norm, round(a.support, 1) AS support, round(a.max_weight, 3) AS max_weight, round(a.relevant_mass, 3) AS relevant_mass, round(a.scale_p50, 2) AS scale_p50 FROM attn_stats a JOIN runs r ON r.key = a.run_key WHERE a.split = 'test' AND a.length = 320 AND a.layer = 1 ORDER BY 1, 2"
echo
echo "results database: $out/demo.sqlite (lengthbench query $out/demo.sqlite \"SELECT ...\")"
