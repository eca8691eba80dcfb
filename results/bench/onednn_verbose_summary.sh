#!/usr/bin/env bash
# Where oneDNN's time goes in a training log written with ONEDNN_VERBOSE=1: exec ms summed by
# (primitive, implementation, layouts, shape), with GFLOP/s for matmuls of fixed shapes (runtime
# shapes print as *x*x* and get none). The first 1/STEPS of each key's calls is skipped: in the
# first step every buffer is touched for the first time, and its products run up to 10x slower
# (page faults), which says nothing about the steps after it.
#
#   results/bench/onednn_verbose_summary.sh LOG STEPS [LINES]
set -eu
[ $# -ge 2 ] || { echo "usage: onednn_verbose_summary.sh LOG STEPS [LINES]" >&2; exit 2; }
awk -F, -v steps="$2" '$2 == "exec" {
    n = NF; shape = $(n - 1); key = $4 " " $5 " " $7 " " shape
    c[key]++; t[key, c[key]] = $n; sh[key] = shape; prim[key] = $4
  }
  END {
    for (k in c) {
      skip = int(c[k] / steps); s = 0
      for (i = skip + 1; i <= c[k]; ++i) s += t[k, i]
      fl = 0
      if (prim[k] == "matmul" && sh[k] !~ /\*/) {
        split(sh[k], d, ":"); split(d[1], a, "x"); split(d[2], b, "x")
        fl = 2 * a[1] * a[2] * a[3] * b[3] * (c[k] - skip)
      }
      printf "%9.2f ms %6d calls %7.1f GFLOP/s  %s\n", s, c[k] - skip, (fl > 0 && s > 0) ? fl / s / 1e6 : 0, k
      tot += s
    }
    printf "%9.2f ms total (oneDNN exec, after the first 1/%d of each key'"'"'s calls)\n", tot, steps
  }' "$1" | sort -rn | head -"${3:-25}"
