#!/usr/bin/env bash
# `make demo`: a small real experiment on this machine, printed as a table.
set -euo pipefail
LB=${1:-build/harness/lengthbench}
out=$(mktemp -d /tmp/lengthbench-demo.XXXXXX)
echo "== the tasks"
"$LB" tasks | grep -E '^[a-z_]+ \(v'
echo
echo "== a copy sample at 8 tokens, and the model sequence it becomes"
"$LB" gen copy --length 8
"$LB" gen copy --length 8 --format json | head -c 400; echo " ..."
echo
echo "== export a sort dataset in the reference format, then read it back"
"$LB" export sort --out "$out/sort" --train-size 1000 --dev-size 0 --test-size 100 --lengths 64,256
ls "$out/sort"
"$LB" gen --from "$out/sort" --split test_0_64 --count 1
echo
echo "== generation throughput (tokens/s) at the training length and at 1024x"
"$LB" bench tasks --lengths 64,65536 --min-time 0.2
rm -rf "$out"
