#!/usr/bin/env bash
# Smoke test of the repository's cluster profiles against the REAL schedulers started by
# setup_slurm.sh / setup_sge.sh / setup_pbs.sh.
#
#   bash .ci/clusters/smoke_test.sh [REPO_ROOT] [slurm|sge|pbs ...]
#     REPO_ROOT  repository whose profiles/<scheduler>/ are tested (default: this script's repo)
#     schedulers default: slurm sge pbs (run one after the other: CI has 2 cores)
#   env: SMOKE_TIMEOUT  seconds per snakemake run (default 300; `timeout -s INT -k 10`)
#        PBS_PREFIX     where setup_pbs.sh put the Torque wrappers (default /opt/pbs-wrappers)
#        KEEP=1         keep the temporary workflow directories
#        SMOKE_CHECKS=keep-going  only the failing-recording check (what .ci/run uses: its
#                       demo runs through each profile already cover the ok case)
#
# For each scheduler, in a fresh temp dir:
#   ok   : 3 per-sample jobs (threads: 2, mem_mb/runtime resources) + a merge job, all submitted
#          through `snakemake --profile REPO_ROOT/profiles/<scheduler>`. Checks rc 0, outputs,
#          that each job really ran as a scheduler job, and that the scheduler granted the
#          requested CPUs / memory / time limit.
#   fail : three per-recording jobs, one of which exits 3, run with --keep-going. Checks that
#          snakemake exits non-zero (not by the timeout), names the failed rule and recording,
#          and that the other two finished; then fixes the input and checks that the rerun runs
#          only the missing job and the merge.
# Prints one line per check with timings, then "N passed, N failed". Exit 1 if any failed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "${1:-$HERE/../..}" && pwd) || { echo "smoke_test: no such repo root: ${1:-}" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
SCHEDULERS=("$@")
[ ${#SCHEDULERS[@]} -gt 0 ] || SCHEDULERS=(slurm sge pbs)
RUN_TIMEOUT=${SMOKE_TIMEOUT:-300}
CHECKS=${SMOKE_CHECKS:-all}
PBS_PREFIX=${PBS_PREFIX:-/opt/pbs-wrappers}
T0=${EPOCHREALTIME/./}
PASS=0
FAIL=0

elapsed() { # seconds since $1 (microsecond stamp) with one decimal
  local d=$(( (${EPOCHREALTIME/./} - $1) / 100000 ))
  printf '%d.%d' $((d / 10)) $((d % 10))
}
say() { printf '[smoke %6ss] %s\n' "$(elapsed "$T0")" "$*"; }
ok() { PASS=$((PASS + 1)); say "PASS $*"; }
bad() { FAIL=$((FAIL + 1)); say "FAIL $*"; }

command -v snakemake >/dev/null || { echo "smoke_test: snakemake is not on PATH" >&2; exit 2; }

# ------------------------------------------------------------------ toy workflows
write_ok_workflow() { # dir
  mkdir -p "$1"
  cat >"$1/Snakefile" <<'EOF'
SAMPLES = ["a", "b", "c"]

localrules: all

rule all:
    input: "results/merged.txt"

# job=<scheduler job id> proves the rule ran inside a cluster job (SLURM_JOB_ID: Slurm and
# the PBS wrappers; JOB_ID: Grid Engine); slots=NSLOTS (SGE), ntasks/cpus (Slurm).
rule per_sample:
    output: "results/{sample}.txt"
    threads: 2
    resources: mem_mb=1000, runtime=5
    shell:
        "echo sample={wildcards.sample} threads={threads} host=$(hostname)"
        " job=${{SLURM_JOB_ID:-${{JOB_ID:-none}}}} slots=${{NSLOTS:-}}"
        " cpus=${{SLURM_CPUS_ON_NODE:-}} > {output}"

rule merge:
    input: expand("results/{sample}.txt", sample=SAMPLES)
    output: "results/merged.txt"
    resources: mem_mb=1000, runtime=2
    shell: "cat {input} > {output}"
EOF
}

write_fail_workflow() { # dir
  mkdir -p "$1/data"
  # One job per "recording"; rec_b's input is corrupt until the check rewrites it.
  echo good >"$1/data/rec_a.txt"
  echo corrupt >"$1/data/rec_b.txt"
  echo good >"$1/data/rec_c.txt"
  cat >"$1/Snakefile" <<'EOF'
RECS = ["rec_a", "rec_b", "rec_c"]

localrules: all

rule all:
    input: "results/merged.txt"

rule per_rec:
    input: "data/{rec}.txt"
    output: "results/{rec}.txt"
    resources: mem_mb=1000, runtime=2
    shell: "grep -q good {input} || {{ echo 'recording {input} is corrupt' >&2; exit 3; }}; cp {input} {output}"

rule merge:
    input: expand("results/{rec}.txt", rec=RECS)
    output: "results/merged.txt"
    resources: mem_mb=1000, runtime=2
    shell: "cat {input} > {output}"
EOF
}

# sched_path <scheduler>: PATH for that scheduler. Each one needs its own qsub: the PBS
# wrappers go first for pbs and are removed for everything else (SGE's qsub is /usr/bin/qsub).
sched_path() {
  local path
  path=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$PBS_PREFIX/bin" | paste -sd: -)
  if [ "$1" = pbs ]; then echo "$PBS_PREFIX/bin:$path"; else echo "$path"; fi
}

# run_snakemake <scheduler> <dir> <log> [snakemake args...]: sets RC and DUR
run_snakemake() {
  local sched=$1 dir=$2 log=$3 t
  shift 3
  t=${EPOCHREALTIME/./}
  # SIGINT on timeout: snakemake then cancels its cluster jobs (qdel/scancel) instead of
  # waiting for them as it does on SIGTERM; -k 10 SIGKILLs it if that takes too long.
  (cd "$dir" && PATH=$(sched_path "$sched") timeout -s INT -k 10 "$RUN_TIMEOUT" \
    snakemake --profile "$REPO/profiles/$sched" --nocolor "$@" >"$log" 2>&1)
  RC=$?
  DUR=$(elapsed "$t")
}

# granted <scheduler> <jobid>: "cpus=N mem=M time=T" as the scheduler recorded it
granted() {
  local sched=$1 id=$2 info
  case $sched in
    slurm | pbs)
      info=$(scontrol -o show job "$id" 2>/dev/null) || return 1
      printf 'cpus=%s mem=%s time=%s\n' \
        "$(grep -o 'NumCPUs=[0-9]*' <<<"$info" | cut -d= -f2)" \
        "$(grep -o 'MinMemoryNode=[0-9A-Z]*' <<<"$info" | cut -d= -f2)" \
        "$(grep -o 'TimeLimit=[0-9:]*' <<<"$info" | cut -d= -f2)" ;;
    sge)
      info=$(qacct -j "$id" 2>/dev/null) || return 1
      # category holds the hard requests, e.g. "-U ... -l h_rt=300,h_vmem=500M -pe smp 2"
      printf 'cpus=%s mem=%s time=%s\n' \
        "$(awk '$1 == "slots" {print $2}' <<<"$info" | tail -n 1)" \
        "$(grep -o 'h_vmem=[0-9A-Za-z]*' <<<"$info" | tail -n 1 | cut -d= -f2)" \
        "$(grep -o 'h_rt=[0-9]*' <<<"$info" | tail -n 1 | cut -d= -f2)" ;;
  esac
}

# expected grants for per_sample (threads 2, mem_mb 1000, runtime 5 min)
expected() {
  case $1 in
    slurm | pbs) echo "cpus=2 mem=1000M time=00:05:00" ;;
    sge) echo "cpus=2 mem=500M time=300" ;;   # h_vmem is per slot
  esac
}

precheck() {
  local p
  p=$(sched_path "$1")
  local PATH=$p
  case $1 in
    slurm) scontrol ping 2>/dev/null | grep -q "is UP" ||
             { echo "Slurm is not running (run .ci/clusters/setup_slurm.sh)"; return 1; } ;;
    sge) qstat -f >/dev/null 2>&1 ||
           { echo "Grid Engine is not running (run .ci/clusters/setup_sge.sh)"; return 1; } ;;
    pbs) [ -x "$PBS_PREFIX/bin/qsub" ] && scontrol ping 2>/dev/null | grep -q "is UP" ||
           { echo "PBS wrappers or Slurm missing (run .ci/clusters/setup_pbs.sh)"; return 1; } ;;
    *) echo "unknown scheduler '$1' (slurm, sge, pbs)"; return 1 ;;
  esac
}

show_log() { # last 40 non-empty lines of a log, indented
  grep -v '^[[:space:]]*$' "$1" | tail -n 40 | sed 's/^/    | /'
}

say "repo $REPO, schedulers: ${SCHEDULERS[*]}, timeout ${RUN_TIMEOUT}s per run, $(snakemake --version | tail -n 1 | sed 's/^/snakemake /')"
WORK=$(mktemp -d /tmp/smoke-clusters.XXXXXX)
for sched in "${SCHEDULERS[@]}"; do
  if ! why=$(precheck "$sched"); then
    bad "$sched: $why"
    continue
  fi

  # ---------------------------------------------------------------- ok workflow
  dir=$WORK/$sched-ok
  if [ "$CHECKS" != keep-going ]; then
  write_ok_workflow "$dir"
  run_snakemake "$sched" "$dir" "$dir/snakemake.log"
  if [ "$RC" -ne 0 ]; then
    bad "$sched ok-workflow: snakemake exit $RC after ${DUR}s$([ "$RC" -ge 124 ] && echo ' (timeout)') (log $dir/snakemake.log)"
    show_log "$dir/snakemake.log"
  else
    problems=()
    for s in a b c; do
      f=$dir/results/$s.txt
      [ -s "$f" ] || { problems+=("missing $s.txt"); continue; }
      id=$(grep -o 'job=[^ ]*' "$f" | cut -d= -f2)
      [[ $id =~ ^[0-9]+$ ]] || { problems+=("$s.txt: not run as a cluster job ($(<"$f"))"); continue; }
      got=$(granted "$sched" "$id") || got="(no scheduler record for job $id)"
      [ "$got" = "$(expected "$sched")" ] || problems+=("$s (job $id): granted '$got', expected '$(expected "$sched")'")
    done
    [ "$(wc -l <"$dir/results/merged.txt" 2>/dev/null || echo 0)" = 3 ] || problems+=("merged.txt does not have 3 lines")
    if [ ${#problems[@]} -eq 0 ]; then
      ok "$sched ok-workflow: 4 cluster jobs in ${DUR}s (per_sample granted $(granted "$sched" "$id"))"
    else
      bad "$sched ok-workflow (${DUR}s): ${problems[*]}"
      show_log "$dir/snakemake.log"
    fi
  fi
  fi

  # ---------------------------------------------------------------- failing workflow
  # One failing "recording" with --keep-going: the others finish, the failure names it, and
  # after fixing the input the rerun computes only what is missing.
  dir=$WORK/$sched-fail
  write_fail_workflow "$dir"
  run_snakemake "$sched" "$dir" "$dir/snakemake.log" --keep-going
  if [ "$RC" -eq 0 ]; then
    bad "$sched keep-going: snakemake exited 0 although rec_b's job exits 3 (${DUR}s)"
    show_log "$dir/snakemake.log"
  elif [ "$RC" -ge 124 ]; then
    bad "$sched keep-going: killed by the ${RUN_TIMEOUT}s timeout (exit $RC): failure never detected"
    show_log "$dir/snakemake.log"
  elif ! grep -q "Error in rule per_rec" "$dir/snakemake.log" || ! grep -q "rec_b" "$dir/snakemake.log"; then
    bad "$sched keep-going: exit $RC but the log does not name rule per_rec and rec_b (${DUR}s)"
    show_log "$dir/snakemake.log"
  elif [ ! -s "$dir/results/rec_a.txt" ] || [ ! -s "$dir/results/rec_c.txt" ] || [ -e "$dir/results/rec_b.txt" ]; then
    bad "$sched keep-going: the other recordings did not finish (or rec_b left an output)"
    show_log "$dir/snakemake.log"
  else
    ok "$sched keep-going: rec_b reported, rec_a and rec_c finished, snakemake exit $RC in ${DUR}s"
    echo good >"$dir/data/rec_b.txt"
    run_snakemake "$sched" "$dir" "$dir/rerun.log"
    # the first Job stats table: rule name and count
    ran=$(awk '/^Job stats:/ {t=1; next} t && /^total/ {exit} t && $2 ~ /^[0-9]+$/ {print $1 "=" $2}' \
      "$dir/rerun.log" | sort | paste -sd, -)
    if [ "$RC" -ne 0 ]; then
      bad "$sched rerun after the fix: snakemake exit $RC after ${DUR}s"
      show_log "$dir/rerun.log"
    elif [ "$ran" != "all=1,merge=1,per_rec=1" ]; then
      bad "$sched rerun after the fix computed more than what was missing: $ran"
      show_log "$dir/rerun.log"
    else
      ok "$sched rerun after the fix: only rec_b and the merge ran ($ran) in ${DUR}s"
    fi
  fi
done

if [ "$FAIL" -eq 0 ] && [ "${KEEP:-0}" != 1 ]; then
  rm -rf "$WORK"
else
  say "workflow dirs kept in $WORK"
fi
say "total $(elapsed "$T0")s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
