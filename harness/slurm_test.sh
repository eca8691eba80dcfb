#!/usr/bin/env bash
# End-to-end test against a real single-node SLURM (Debian's slurm-wlm and munge, started here):
# `lengthbench slurm` prints an array script, sbatch runs its shards, a dependent job merges them,
# and the merged database equals a single-process run of the same suite.
# Usage: slurm_test.sh LENGTHBENCH_BINARY. Needs root; exits 77 (skipped) without slurm.
set -euo pipefail
LB=$(realpath "$1")
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm-wlm or munge not installed: skipped (make slow installs them)"; exit 77
fi
work=$(mktemp -d /tmp/lb-slurm.XXXXXX)
host=$(hostname -s)
export SLURM_CONF=$work/slurm.conf
cleanup() {
  scontrol shutdown >/dev/null 2>&1 || true
  sleep 1
  [ -f "$work/slurmd.pid" ] && kill "$(cat "$work/slurmd.pid")" 2>/dev/null || true
  [ -f "$work/slurmctld.pid" ] && kill "$(cat "$work/slurmctld.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work"/{state,spool,out}
port=$((20000 + RANDOM % 20000))
cat > "$SLURM_CONF" <<CONF
ClusterName=lbtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=lb Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge && chown munge:munge /run/munge
  [ -f /etc/munge/munge.key ] || mungekey --create
  su -s /bin/sh munge -c munged
  sleep 1
fi
slurmctld -i
slurmd
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 1; done
sinfo -h -o %T | grep -q idle || { echo "the test SLURM did not come up"; cat "$work"/*.log; exit 1; }

cat > "$work/suite.json" <<'JSON'
{"name": "slurmtest", "model": {"preset": "tiny"},
 "train": {"steps": 12, "batch": 4, "warmup": 2, "log_every": 3, "checkpoint_every": 6,
           "task_params": {"seq_len": 8, "vary_len": 2}},
 "tasks": ["copy"], "attention": ["softmax", "entmax"], "seeds": [0, 1],
 "eval": {"lengths": [8, 16], "samples": 4}, "select": {"length": 16, "samples": 4, "every": 6}}
JSON
"$LB" run "$work/suite.json" --db "$work/single.sqlite" --threads 1 2> "$work/single.log" || { cat "$work/single.log"; exit 1; }
"$LB" slurm "$work/suite.json" --shards 3 --cpus 1 --time 00:10:00 --out "$work/out" > "$work/array.sh"
job=$(sbatch --parsable "$work/array.sh")
merge=$(sbatch --parsable --dependency=afterok:"$job" --output="$work/out/merge.out" \
        --wrap "$LB merge $work/out/results.sqlite $work/out/shard-0.sqlite $work/out/shard-1.sqlite $work/out/shard-2.sqlite")
for _ in $(seq 300); do
  [ -z "$(squeue -h -j "$job,$merge" 2>/dev/null)" ] && break
  sleep 1
done
[ -f "$work/out/results.sqlite" ] || { echo "no merged database"; cat "$work"/out/*.out "$work"/*.log; exit 1; }
q="SELECT run_key, split, length, exact_match, token_accuracy FROM evals ORDER BY 1, 2, 3"
diff <("$LB" query "$work/single.sqlite" "$q" --csv) <("$LB" query "$work/out/results.sqlite" "$q" --csv)
n=$("$LB" query "$work/out/results.sqlite" "SELECT count(*) AS n FROM runs WHERE status = 'done'" --csv | tail -1)
[ "$n" = 4 ] || { echo "expected 4 finished runs, got $n"; exit 1; }
echo "1 passed, 0 failed: SLURM array of 3 shards + merge job equals the single-process database"
