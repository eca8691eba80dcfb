#!/usr/bin/env bash
# Issue 13/14 benchmarks on the quiet lent 16-core machine, in one call:
#   out/lb/device_bench.sh LIMIT_S   (from the repository root; the bundle in out/lb/bundle.tgz)
# Each benchmark runs under its own timeout and is skipped when too little of LIMIT_S is left;
# outputs (JSON; a .rss line with the peak RSS of the whole process tree in KiB) go into
# $OUT/bench.tgz.
set -u
limit=$1
start=$(date +%s)
[ -x /tmp/bundle/run ] || tar xzf out/lb/bundle.tgz -C /tmp
LB="/tmp/bundle/run lengthbench"
D=/tmp/bench; rm -rf $D; mkdir -p $D
left() { echo $((start + limit - $(date +%s))); }
# b NAME MAX_S ARGS...: lengthbench ARGS > NAME.json, at most MAX_S (less if less is left).
b() {
  name=$1 max=$2; shift 2
  l=$(($(left) - 5)); [ $l -lt 30 ] && { echo "SKIP $name"; return; }
  t=$((max < l ? max : l)); s=$(date +%s)
  python3 -c 'import resource,subprocess,sys
r = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1] + ".json", "w"), stderr=open(sys.argv[1] + ".err", "w"))
open(sys.argv[1] + ".rss", "w").write("rc %d peak_rss_kib %d\n" % (r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))' \
    $D/$name timeout -k 5 -s TERM $t $LB "$@"
  echo "$(date +%T) $name $(cat $D/$name.rss | tr -d '\n') $(($(date +%s) - s))s"
}
(nproc; grep -m1 'model name' /proc/cpuinfo; uptime; python3 -c 'import torch; print("torch", torch.__version__)') > $D/machine.txt 2>&1
cat $D/machine.txt
b train_kernel_16threads 150 bench train --threads 16 --precision fp32,bf16 --attention softmax,asentmax \
  --kernel fused,plain --rounds 3 --steps 3 --warmup-steps 1 --json
b eval_16384_16threads 100 bench eval --lengths 16384 --threads 16 --prefill blocked,plain --json
b train_scaling_1_16threads 240 bench train --threads 1,2,4,8,16 --precision fp32,bf16 \
  --attention softmax,asentmax --kernel fused --rounds 2 --steps 3 --warmup-steps 1 --json
b eval_65536_16threads_softmax 120 bench eval --lengths 65536 --threads 16 --attention softmax --prefill blocked,plain --json
b eval_65536_16threads_asentmax 120 bench eval --lengths 65536 --threads 16 --attention asentmax --prefill blocked,plain --json
b train_peer_16threads 120 bench train --peer out/lb/torch_gemma.py --python python3 --threads 16 \
  --precision fp32 --attention softmax,asentmax --rounds 2 --steps 3 --warmup-steps 1 --json
tar czf $OUT/bench.tgz -C /tmp bench
echo "bench done after $(($(date +%s) - start)) s"
