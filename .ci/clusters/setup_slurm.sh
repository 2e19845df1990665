#!/usr/bin/env bash
# Bring up a REAL single-node Slurm cluster (munge + slurmctld + slurmd) on this host.
# Target: Debian 12, running as root, no systemd (CI container under gVisor).
#
# Idempotent: safe to rerun. Installed packages are skipped, slurm.conf is only rewritten
# when its content changes (and then the daemons are restarted), and running daemons
# (checked through their pid files + /proc/<pid>/comm) are left alone.
#
# Design choice - job status without slurmdbd:
#   snakemake-executor-plugin-slurm asks `sacct` for job states by default. Without
#   slurmdbd, sacct only prints "accounting storage is disabled" and the plugin then
#   waits FOREVER. Instead of running MariaDB + slurmdbd (+15 s setup, two more daemons,
#   ~200 MB RAM) we keep finished jobs in slurmctld's memory for MinJobAge=300 s and let
#   the profile poll `squeue` (profiles/slurm: slurm-status-command: squeue). The plugin
#   only honours squeue when MinJobAge >= 3 x slurm-init-seconds-before-status-checks and
#   its polls are at most 180 s apart (< 300 s), so every finished job is seen. This script
#   asserts the running controller really has MinJobAge >= 300.
#
# Output: one line per phase with the elapsed seconds. Logs: /var/log/slurm/.
# Env: SETUP_TIMEOUT (seconds to wait for each readiness check, default 60).
set -euo pipefail

NAME=setup_slurm
TIMEOUT=${SETUP_TIMEOUT:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# pid_alive <pidfile> <comm>: the pid file names a live process with that command name

# stop_pid <pidfile> <comm>: TERM, wait up to 10 s, then KILL (only the pid from the file)
stop_pid() {
  local pid i
  pid_alive "$1" "$2" || return 0
  pid=$(<"$1")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}

# ensure_pkgs <pkg...>: install what is missing; `apt-get update` only when needed

HOST=$(hostname -s)
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts

# ---------------------------------------------------------------- packages
ensure_pkgs munge slurmctld slurmd slurm-client
phase "packages ok (munge slurmctld slurmd slurm-client $(dpkg-query -W -f='${Version}' slurmctld))"

# ---------------------------------------------------------------- munge
# The Debian postinst already creates the key; create it only if it is missing.
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  # --force: a munged that died uncleanly leaves its socket behind
  runuser -u munge -- /usr/sbin/munged --force
  wait_for "munged to answer (munge -n | unmunge)" bash -c 'munge -n | unmunge'
  phase "munged started"
else
  phase "munged already running"
fi

# ---------------------------------------------------------------- slurm.conf
install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm /run/slurm
install -d /var/spool/slurmd
# Node line from the hardware slurmd sees, minus its RealMemory (we give 85 % of RAM).
NODE_LINE=$(slurmd -C | head -n 1 | sed 's/ RealMemory=[0-9]*//')
MEM_MB=$(( $(awk '/^MemTotal/ {print $2}' /proc/meminfo) / 1024 * 85 / 100 ))
CONF=/etc/slurm/slurm.conf
NEW_CONF=$(cat <<EOF
# Written by .ci/clusters/setup_slurm.sh (single-node CI cluster). Do not edit by hand.
ClusterName=ci
SlurmctldHost=$HOST
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups/systemd in the container: plain process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no slurmdbd: sacct cannot answer, the snakemake profile polls squeue instead
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# finished jobs (state + exit code) also go to a text file: \`sacct -c\` reads it
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
# keep finished jobs visible to squeue/scontrol for 5 min (profile's squeue polling needs >= 3x init)
MinJobAge=300
InactiveLimit=0
KillWait=10
$NODE_LINE RealMemory=$MEM_MB State=UNKNOWN
# DefMemPerCPU: without it a job gets the whole node's memory and jobs run one at a time
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=500
EOF
)
CONF_CHANGED=0
if [ ! -f "$CONF" ] || [ "$(<"$CONF")" != "$NEW_CONF" ]; then
  printf '%s\n' "$NEW_CONF" >"$CONF"
  CONF_CHANGED=1
fi
phase "slurm.conf $([ $CONF_CHANGED = 1 ] && echo written || echo unchanged) ($HOST, $(echo "$NODE_LINE" | grep -o 'CPUs=[0-9]*'), RealMemory=$MEM_MB)"

# ---------------------------------------------------------------- daemons
if [ $CONF_CHANGED = 1 ] && { pid_alive /run/slurm/slurmctld.pid slurmctld || pid_alive /run/slurm/slurmd.pid slurmd; }; then
  stop_pid /run/slurm/slurmd.pid slurmd
  stop_pid /run/slurm/slurmctld.pid slurmctld
  phase "config changed: stopped running slurm daemons"
fi
started=()
if ! pid_alive /run/slurm/slurmctld.pid slurmctld; then
  slurmctld || die "slurmctld failed to start, see /var/log/slurm/slurmctld.log"
  started+=(slurmctld)
fi
if ! pid_alive /run/slurm/slurmd.pid slurmd; then
  slurmd || die "slurmd failed to start, see /var/log/slurm/slurmd.log"
  started+=(slurmd)
fi
wait_for "slurmctld to answer (scontrol ping)" bash -c 'scontrol ping | grep -q "is UP"'
if [ ${#started[@]} -gt 0 ]; then phase "daemons started: ${started[*]}"; else phase "daemons already running"; fi

# node must be usable: idle/mixed/allocated; resume it once if it was left down/drained
node_ready() { sinfo -h -n "$HOST" -o %T 2>/dev/null | grep -Eqx '(idle|mixed|allocated|completing)'; }
if ! node_ready; then
  for ((i = 0; i < 20; i++)); do node_ready && break; sleep 0.5; done
  node_ready || scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
  wait_for "node $HOST to become idle (sinfo; see /var/log/slurm/slurmd.log)" node_ready
fi
MINAGE=$(scontrol show config | awk -F= '/^MinJobAge/ {gsub(/[^0-9]/, "", $2); print $2}')
[ "${MINAGE:-0}" -ge 300 ] || die "running slurmctld has MinJobAge=${MINAGE:-?} (< 300): squeue status polling would miss jobs"
phase "node $HOST $(sinfo -h -n "$HOST" -o '%T, %c cpus, %m MB'), MinJobAge=$MINAGE"

# ---------------------------------------------------------------- trivial job
# sbatch (the path the snakemake plugin uses), then poll the job state ourselves:
# `sbatch --wait` sleeps up to 10 s between its own polls.
JOBOUT=$(mktemp)
JOBID=$(sbatch --parsable -J ci-setup-check -t 1 -n 1 -o "$JOBOUT" -e "$JOBOUT" --chdir=/tmp \
  --wrap 'echo ok-$SLURM_JOB_ID') || die "sbatch refused the trivial job"
job_state() { scontrol show job "$JOBID" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
wait_for "trivial job $JOBID to finish (scontrol show job $JOBID)" bash -c \
  "scontrol show job $JOBID | grep -Eq 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL)'"
STATE=$(job_state)
[ "$STATE" = COMPLETED ] && grep -q "^ok-$JOBID" "$JOBOUT" ||
  die "trivial job $JOBID ended $STATE, output: $(cat "$JOBOUT")"
rm -f "$JOBOUT"
phase "slurm ready: trivial batch job $JOBID COMPLETED"
