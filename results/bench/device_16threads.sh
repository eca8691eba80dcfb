#!/usr/bin/env bash
# Issues 13 and 14 at 16 threads on the lent machine, one device call per step (each under the
# 600 s limit of a call). Run from the repository root with out/ holding bundle.tgz (the Release
# bundle: harness/bundle.sh build/harness/lengthbench out/bundle), perfb.tgz (Debian's perf with
# its libraries and loader, packed the same way; optional: without it the runs are not profiled),
# torch_gemma.py (a copy of ../shared/peers/torch_gemma.py, for the train step) and ck/ (trained
# checkpoints: config.json, manifest.json, model.safetensors,
# optimizer.safetensors of each). Everything lands in /tmp/dev/STEP and is packed into
# $OUT/STEP.tgz:
#
#   results/bench/device_16threads.sh eval     # random MQMTAR preset, 16,384 and 65,536 tokens
#   results/bench/device_16threads.sh ckpt     # trained checkpoints; training phase profile
#   results/bench/device_16threads.sh jobs     # small16 suite as 1 job x 16 threads
#   results/bench/device_16threads.sh ab       # blocked prefill: the bundle's lengthbench_base
#                                              # against its lengthbench, alternated
#   results/bench/device_16threads.sh train    # issue 13 at 16 threads: the copy, sort and MQMTAR
#                                              # presets, lengthbench_base and lengthbench
#                                              # alternated, then the PyTorch peer (copy preset)
#   results/bench/device_16threads.sh small    # issue 13's small-model regime on one thread
#                                              # (base and new alternated) and thread scaling
#   results/bench/device_16threads.sh bf16     # bf16 steps of the copy and MQMTAR presets, base
#                                              # and new alternated, with phase profiles (and
#                                              # the copy preset's ASEntmax and softmax steps)
#   results/bench/device_16threads.sh verbose  # oneDNN's own log of every product (ONEDNN_VERBOSE=1:
#                                              # implementation, shape, ms) in 4 training steps of
#                                              # the copy and MQMTAR presets, fp32 and bf16
#   results/bench/device_16threads.sh asentmax # ASEntmax against softmax: every preset at 16
#                                              # threads (base and new alternated), the copy
#                                              # preset over 1-16 threads, phase profiles
#   results/bench/device_16threads.sh bulk     # bf16 row blocks: the bundle's lengthbench_blk
#                                              # with LB_BF16_BULK_ROWS of 1,024-8,192 on every
#                                              # preset (alternated), oneDNN logs of the copy
#                                              # and MQMTAR steps, the small regime on one
#                                              # thread, the presets at 16 threads with the peer
#   results/bench/device_16threads.sh bulkab   # the bundle's lengthbench_base against its
#                                              # lengthbench on every preset, alternated three
#                                              # times, after the bundle's lb_model_test (the
#                                              # bf16 block and thread-count tests) on AMX,
#                                              # then steady-state phase profiles (16 threads)
#   results/bench/device_16threads.sh final    # the bundle's lengthbench: every preset at 16
#                                              # threads (two passes), the PyTorch peer, the small
#                                              # regime on one thread, thread scaling
#
# Every benchmark runs under its own timeout; `perf record` (no call graphs, 199 Hz) wraps the
# 65,536-token evaluations and its report by symbol is written beside their JSON.
set -u
step=${1:-}
case $step in
  eval | ckpt | jobs | ab | train | small | bf16 | asentmax | verbose | bulk | bulkab | final) ;;
  *) echo "device_16threads.sh: unknown step '$step' (accepted: eval, ckpt, jobs, ab, train, small, bf16, asentmax, verbose, bulk, bulkab, final)" >&2; exit 2 ;;
esac
out=${OUT:-$(pwd)/out/dev}
dir=/tmp/dev/$step
mkdir -p "$out" "$dir"
[ -d out/bundle ] || tar xzf out/bundle.tgz -C out
[ -f out/perfb.tgz ] && { [ -d out/perfb ] || tar xzf out/perfb.tgz -C out; }
LB="$(pwd)/out/bundle/run lengthbench"
perf_ok=0
PERF="$(pwd)/out/perfb/ld-linux-x86-64.so.2 --library-path $(pwd)/out/perfb $(pwd)/out/perfb/perf"
if [ -d out/perfb ] && $PERF record -q -o /tmp/dev/probe.data true 2> /tmp/dev/probe.err; then perf_ok=1; fi
{
  date -u; lscpu; nproc; free -g; echo "perf usable: $perf_ok"; cat /tmp/dev/probe.err
  cat /proc/sys/kernel/perf_event_paranoid; $LB --version; uptime
} > "$dir/machine.txt" 2>&1

# bench NAME TIMEOUT ARGS...: one benchmark, JSON to NAME.json, stderr to NAME.err, profiled
# when NAME ends in _perf and perf is usable.
bench() {
  local name=$1 cap=$2; shift 2
  local t0 rc; t0=$(date +%s%N)
  if [ $perf_ok = 1 ] && [[ $name == *_perf ]]; then
    timeout -k 10 "$cap" $PERF record -q -F 199 -o "$dir/$name.data" $LB "$@" > "$dir/$name.json" 2> "$dir/$name.err"
    rc=$?
    $PERF report -i "$dir/$name.data" --no-children --stdio --sort sym 2>/dev/null \
      | grep -E '^ +[0-9]' | head -40 > "$dir/$name.perf.txt"
    rm -f "$dir/$name.data"
  else
    timeout -k 10 "$cap" $LB "$@" > "$dir/$name.json" 2> "$dir/$name.err"
    rc=$?
  fi
  echo "$name rc=$rc wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
}

case $step in
  eval)
    # decode A/B when the bundle also holds an older binary (lengthbench_base): same call, alternated
    if [ -x out/bundle/lengthbench_base ]; then
      for i in 1 2; do for b in lengthbench_base lengthbench; do
        timeout -k 10 60 out/bundle/run $b bench eval --lengths 16384 --threads 16 --attention softmax,asentmax \
          --prefill plain --new-tokens 32 --json > "$dir/decode_ab_${b}_$i.json" 2> "$dir/decode_ab_${b}_$i.err"
        echo "decode_ab_${b}_$i rc=$?" >> "$dir/steps.txt"
      done; done
    fi
    bench eval_16384 90 bench eval --lengths 16384 --threads 16 --attention softmax,asentmax \
      --prefill blocked,plain --json
    for a in softmax asentmax; do for p in blocked plain; do
      bench "eval_65536_${a}_${p}_perf" 130 bench eval --lengths 65536 --threads 16 \
        --attention $a --prefill $p --json
    done; done
    if [ -x out/bundle/lengthbench_base ]; then  # the older binary's ASEntmax blocked prefill
      timeout -k 10 130 out/bundle/run lengthbench_base bench eval --lengths 65536 --threads 16 \
        --attention asentmax --prefill blocked --json > "$dir/eval_65536_asentmax_blocked_base.json" 2>&1
      echo "eval_65536_asentmax_blocked_base rc=$?" >> "$dir/steps.txt"
    fi
    ;;
  ckpt)
    ck=$(ls -d out/ck/*/ | sed 's:/$::' | paste -sd, -)
    bench ckpt_16threads 240 bench eval --checkpoint "$ck" --lengths 4096,16384,65536 --threads 16 \
      --prefill blocked,plain --json
    for p in fp32 bf16; do
      flag=""; [ $p = bf16 ] && flag=--bf16
      LB_PROFILE=1 timeout -k 10 90 $LB train --task copy --preset copy --attention softmax \
        --steps 20 --batch 128 --threads 16 --log-every 100 $flag > "$dir/train_profile_$p.txt" 2>&1
      echo "train_profile_$p rc=$?" >> "$dir/steps.txt"
    done
    ;;
  jobs)
    OUT=$dir results/bench/jobs_throughput.sh 380 1x16
    ;;
  ab)
    for L in 16384 65536; do for b in lengthbench_base lengthbench; do
      t0=$(date +%s%N)
      timeout -k 10 150 out/bundle/run $b bench eval --lengths $L --threads 16 --attention softmax,asentmax \
        --prefill blocked --new-tokens 4 --json > "$dir/ab_${L}_$b.json" 2> "$dir/ab_${L}_$b.err"
      echo "ab_${L}_$b rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
    done; done
    ;;
  train)
    # Two rounds of base then new per preset; every configuration of a preset in one command
    # (its rounds alternate configurations; ratios within a command).
    for t in copy sort mqmtar; do for b in lengthbench_base lengthbench; do
      t0=$(date +%s%N)
      timeout -k 10 100 out/bundle/run $b bench train --task $t --threads 16 --precision fp32,bf16 \
        --attention softmax,asentmax --kernel plain --rounds 2 --steps 3 --warmup-steps 1 --json \
        > "$dir/train16_${t}_$b.json" 2> "$dir/train16_${t}_$b.err"
      echo "train16_${t}_$b rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
    done; done
    bench train16_peer 150 bench train --peer "$(pwd)/out/torch_gemma.py" --python python3 \
      --threads 16 --precision fp32,bf16 --attention softmax --kernel plain --rounds 2 --steps 3 \
      --warmup-steps 1 --json
    ;;
  small)
    for i in 1 2; do for b in lengthbench_base lengthbench; do
      t0=$(date +%s%N)
      timeout -k 10 100 out/bundle/run $b bench train --models small,small128 --threads 1 \
        --kernel fused,plain --attention softmax,asentmax --rounds 2 --steps 10 --json \
        > "$dir/small_1thread_${b}_$i.json" 2> "$dir/small_1thread_${b}_$i.err"
      echo "small_1thread_${b}_$i rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
    done; done
    bench scaling 200 bench train --models small,small128,copy --threads 1,2,4,8,16 --kernel fused \
      --attention softmax --precision fp32 --rounds 2 --steps 3 --warmup-steps 1 --json
    ;;
  bf16)
    for i in 1 2 3; do for t in copy mqmtar; do for b in lengthbench_base lengthbench; do
      timeout -k 10 60 out/bundle/run $b bench train --task $t --threads 16 --precision fp32,bf16 \
        --attention softmax --kernel plain --rounds 2 --steps 3 --warmup-steps 1 --json \
        > "$dir/bf16_${t}_${b}_$i.json" 2> "$dir/bf16_${t}_${b}_$i.err"
      echo "bf16_${t}_${b}_$i rc=$?" >> "$dir/steps.txt"
    done; done; done
    for b in lengthbench_base lengthbench; do
      LB_PROFILE=1 timeout -k 10 60 out/bundle/run $b train --task copy --preset copy --attention softmax \
        --steps 10 --batch 128 --threads 16 --log-every 100 --bf16 > "$dir/profile_copy_bf16_$b.txt" 2>&1
      echo "profile_copy_bf16_$b rc=$?" >> "$dir/steps.txt"
    done
    # ASEntmax against softmax on the copy preset, fp32: where ASEntmax's extra time goes
    for a in softmax asentmax; do
      LB_PROFILE=1 timeout -k 10 60 out/bundle/run lengthbench train --task copy --preset copy --attention $a \
        --steps 10 --batch 128 --threads 16 --log-every 100 > "$dir/profile_copy_fp32_$a.txt" 2>&1
      echo "profile_copy_fp32_$a rc=$?" >> "$dir/steps.txt"
    done
    ;;
  verbose)
    for t in copy mqmtar; do for p in fp32 bf16; do
      flag=""; [ $p = bf16 ] && flag=--bf16
      ONEDNN_VERBOSE=1 LB_PROFILE=1 timeout -k 10 90 $LB train --task $t --preset $t --attention softmax \
        --steps 4 --batch 128 --threads 16 --log-every 100 $flag > "$dir/verbose_${t}_$p.txt" 2>&1
      echo "verbose_${t}_$p rc=$?" >> "$dir/steps.txt"
    done; done
    gzip "$dir"/verbose_*.txt
    ;;
  asentmax)
    for i in 1 2; do for t in copy sort mqmtar; do for b in lengthbench_base lengthbench; do
      t0=$(date +%s%N)
      timeout -k 10 60 out/bundle/run $b bench train --task $t --threads 16 --precision fp32,bf16 \
        --attention softmax,asentmax --kernel plain --rounds 3 --steps 3 --warmup-steps 1 --json \
        > "$dir/as16_${t}_${b}_$i.json" 2> "$dir/as16_${t}_${b}_$i.err"
      echo "as16_${t}_${b}_$i rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
    done; done; done
    bench as_scaling 150 bench train --task copy --threads 1,2,4,8,16 --precision fp32 \
      --attention softmax,asentmax --kernel plain --rounds 2 --steps 2 --warmup-steps 1 --json
    for a in softmax asentmax; do
      LB_PROFILE=1 timeout -k 10 60 out/bundle/run lengthbench train --task copy --preset copy --attention $a \
        --steps 10 --batch 128 --threads 16 --log-every 100 > "$dir/profile_copy_fp32_$a.txt" 2>&1
      echo "profile_copy_fp32_$a rc=$?" >> "$dir/steps.txt"
    done
    ;;
  bulk)
    for v in copy_fp32 copy_bf16 mqmtar_fp32 mqmtar_bf16; do
      t=${v%_*}; flag=""; [ "${v#*_}" = bf16 ] && flag=--bf16
      ONEDNN_VERBOSE=1 LB_PROFILE=1 timeout -k 10 60 $LB train --task $t --preset $t --attention softmax \
        --steps 4 --batch 128 --threads 16 --log-every 100 $flag > "$dir/verbose_$v.txt" 2>&1
      echo "verbose_$v rc=$?" >> "$dir/steps.txt"
    done
    ONEDNN_VERBOSE=1 LB_PROFILE=1 LB_BF16_BULK_ROWS=4096 timeout -k 10 60 out/bundle/run lengthbench_blk \
      train --task copy --preset copy --attention softmax --steps 4 --batch 128 --threads 16 \
      --log-every 100 --bf16 > "$dir/verbose_copy_bf16_bulk4096.txt" 2>&1
    echo "verbose_copy_bf16_bulk4096 rc=$?" >> "$dir/steps.txt"
    gzip "$dir"/verbose_*.txt
    for i in 1 2; do for t in copy sort mqmtar; do for rows in 1024 2048 4096 8192; do
      t0=$(date +%s%N)
      LB_BF16_BULK_ROWS=$rows timeout -k 10 60 out/bundle/run lengthbench_blk bench train --task $t \
        --threads 16 --precision fp32,bf16 --attention softmax --kernel plain --rounds 2 --steps 3 \
        --warmup-steps 1 --json > "$dir/bulk_${t}_${rows}_$i.json" 2> "$dir/bulk_${t}_${rows}_$i.err"
      echo "bulk_${t}_${rows}_$i rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
    done; done; done
    bench small_1thread 60 bench train --models small,small128 --threads 1 --kernel fused,plain \
      --attention softmax,asentmax --rounds 2 --steps 10 --json
    for t in copy sort mqmtar; do
      bench "train16_$t" 60 bench train --task $t --threads 16 --precision fp32,bf16 \
        --attention softmax,asentmax --kernel plain --rounds 2 --steps 3 --warmup-steps 1 --json
    done
    bench train16_peer 120 bench train --peer "$(pwd)/out/torch_gemma.py" --python python3 \
      --threads 16 --precision fp32,bf16 --attention softmax --kernel plain --rounds 2 --steps 3 \
      --warmup-steps 1 --json
    ;;
  bulkab)
    timeout -k 10 120 out/bundle/run lb_model_test -tc='*096-row block*,*products give*,*copies made once*' \
      > "$dir/lb_model_test.txt" 2>&1
    echo "lb_model_test rc=$?" >> "$dir/steps.txt"
    for i in 1 2 3; do for t in copy sort mqmtar; do for b in lengthbench_base lengthbench; do
      t0=$(date +%s%N)
      timeout -k 10 60 out/bundle/run $b bench train --task $t --threads 16 --precision fp32,bf16 \
        --attention softmax,asentmax --kernel plain --rounds 2 --steps 3 --warmup-steps 1 --json \
        > "$dir/ab_${t}_${b}_$i.json" 2> "$dir/ab_${t}_${b}_$i.err"
      echo "ab_${t}_${b}_$i rc=$? wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))" >> "$dir/steps.txt"
    done; done; done
    # steady-state phase profiles (the first 2 steps left out), lengthbench
    for v in copy_fp32 copy_bf16 mqmtar_fp32 mqmtar_bf16; do
      t=${v%_*}; flag=""; [ "${v#*_}" = bf16 ] && flag=--bf16
      LB_PROFILE=1 LB_PROFILE_SKIP=2 timeout -k 10 60 $LB train --task $t --preset $t \
        --attention softmax --steps 10 --batch 128 --threads 16 --log-every 1 $flag \
        > "$dir/profile_$v.txt" 2>&1
      echo "profile_$v rc=$?" >> "$dir/steps.txt"
    done
    ;;
  final)
    for i in 1 2; do for t in copy sort mqmtar; do
      bench "train16_${t}_$i" 60 bench train --task $t --threads 16 --precision fp32,bf16 \
        --attention softmax,asentmax --kernel plain --rounds 2 --steps 3 --warmup-steps 1 --json
    done; done
    bench train16_peer 120 bench train --peer "$(pwd)/out/torch_gemma.py" --python python3 \
      --threads 16 --precision fp32,bf16 --attention softmax --kernel plain --rounds 2 --steps 3 \
      --warmup-steps 1 --json
    for i in 1 2; do
      bench "small_1thread_$i" 60 bench train --models small,small128 --threads 1 --kernel fused,plain \
        --attention softmax,asentmax --rounds 2 --steps 10 --json
    done
    bench scaling 150 bench train --models small,small128,copy,sort --threads 1,2,4,8,16 --kernel fused \
      --attention softmax,asentmax --precision fp32 --rounds 2 --steps 3 --warmup-steps 1 --json
    ;;
esac
(cd /tmp/dev && tar czf "$out/$step.tgz" "$step")
cat "$dir/steps.txt" "$dir/machine.txt" 2>/dev/null | head -40
