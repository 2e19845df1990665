#!/usr/bin/env bash
# Bring up a REAL single-node (Son of) Grid Engine 8.1.9 on this host: sge_qmaster + sge_execd,
# queue all.q and a shared-memory parallel environment `smp` (what profiles/sge uses for threads).
# Target: Debian 12 packages gridengine-{master,exec,client}, root, no systemd.
#
# Idempotent: installed packages are skipped, running daemons (pid file + /proc/<pid>/comm)
# are left alone, and every configuration object is only changed when it differs.
#
# Pitfalls handled here (see shared/spec/cluster_recipe.md):
#  * host name check: 127.0.0.1 reverse-resolves to "localhost", not to `hostname`;
#    SGE rejects such clients -> host_aliases maps one to the other.
#  * min_uid/min_gid default to 1000 and CI runs as root -> set to 0.
#  * accounting records are buffered (up to 15 s) -> accounting_flush_time=00:00:00, so
#    `qacct` (used by profiles/sge/status.py) sees a job as soon as qstat forgets it.
#  * scheduler runs every 15 s by default -> every second.
#  * the queue template's load_thresholds np_load_avg=1.75 puts the queue into alarm state
#    under load (2 busy cores are enough) and no job starts any more -> NONE.
#
# Output: one line per phase with the elapsed seconds.
# Env: SETUP_TIMEOUT (seconds to wait for each readiness check, default 60).
# Users of the cluster need SGE_ROOT=/var/lib/gridengine SGE_CELL=default (Debian defaults).
set -euo pipefail

NAME=setup_sge
TIMEOUT=${SETUP_TIMEOUT:-60}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

HOST=$(hostname -s)
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >>/etc/hosts
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common

# ---------------------------------------------------------------- packages
# Preseed debconf so that the master's postinst builds the cell (spool, admin host, sgeadmin).
if [ ! -f "$COMMON/act_qmaster" ]; then
  for p in gridengine-common gridengine-client gridengine-master gridengine-exec; do
    printf '%s shared/gridengineconfig boolean true\n' "$p"
    printf '%s shared/gridenginecell string %s\n' "$p" "$SGE_CELL"
    printf '%s shared/gridenginemaster string %s\n' "$p" "$HOST"
  done | debconf-set-selections
fi
ensure_pkgs gridengine-master gridengine-exec gridengine-client
[ -f "$COMMON/act_qmaster" ] ||
  die "$COMMON/act_qmaster missing: the gridengine-master postinst did not create the cell (debconf not preseeded before install?)"
phase "packages ok (gridengine $(dpkg-query -W -f='${Version}' gridengine-master), cell $SGE_CELL, master $(<"$COMMON/act_qmaster"))"

# ---------------------------------------------------------------- host alias
# SGE wants gethostname() == reverse lookup of the client's IP. Here 127.0.0.1 -> localhost.
IP=$(getent hosts "$HOST" | awk '{print $1; exit}')
REV=$(getent hosts "$IP" | awk '{print $2; exit}')
ALIASES=$COMMON/host_aliases
if [ -n "$REV" ] && [ "$REV" != "$HOST" ]; then
  if ! grep -qx "$HOST $REV" "$ALIASES" 2>/dev/null; then
    echo "$HOST $REV" >"$ALIASES"
    chown sgeadmin:sgeadmin "$ALIASES"
    # a qmaster started before the alias existed keeps rejecting clients: restart it below
    ALIAS_CHANGED=1
  fi
fi
install -d -o sgeadmin -g sgeadmin /var/run/gridengine /var/spool/gridengine/execd

# ---------------------------------------------------------------- qmaster
QM_PID=/var/spool/gridengine/qmaster/qmaster.pid
EXECD_PID="/var/spool/gridengine/execd/*/execd.pid"
if [ "${ALIAS_CHANGED:-0}" = 1 ] && pid_alive "$QM_PID" sge_qmaster; then
  qconf -ke all >/dev/null 2>&1 || true
  qconf -km >/dev/null 2>&1 || true
  wait_for "old sge_qmaster to exit" bash -c "! kill -0 $(<"$QM_PID") 2>/dev/null"
fi
if pid_alive "$QM_PID" sge_qmaster; then
  phase "sge_qmaster already running"
else
  (cd / && /usr/sbin/sge_qmaster) || die "sge_qmaster failed to start (see /var/spool/gridengine/qmaster/messages)"
  wait_for "sge_qmaster to answer (qconf -sh; see /var/spool/gridengine/qmaster/messages)" qconf -sh
  phase "sge_qmaster started"
fi

# ---------------------------------------------------------------- cluster configuration
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# qc <args>: qconf that modifies something; quiet unless it fails
qc() { qconf "$@" >"$W/out" 2>&1 || { cat "$W/out" >&2; die "qconf $* failed"; }; }
# same_conf <a> <b>: equal up to runs of blanks
same_conf() { cmp -s <(tr -s ' \t' ' ' <"$1") <(tr -s ' \t' ' ' <"$2"); }
changed=()
# Global config: root may submit; write accounting records at once (qacct must not lag).
# qconf -Mconf takes the configuration name from the FILE name, so the file is called "global".
# qconf prints long values wrapped with trailing "\": join them first, so every attribute is
# one line, then edit reporting_params token by token (stray tokens without "=" are dropped).
qconf -sconf global | sed 1d | awk '
  { line = pending $0; pending = "" }
  line ~ /\\[ \t]*$/ { sub(/\\[ \t]*$/, " ", line); pending = line; next }
  { print line }' >"$W/global.old"
awk '
  $1 ~ /=/ { next }                                   # garbage from a broken earlier edit
  $1 == "min_uid" || $1 == "min_gid" { printf "%-28s %s\n", $1, 0; next }
  $1 == "reporting_params" {
    out = ""
    for (i = 2; i <= NF; i++) if ($i ~ /=/ && $i !~ /^accounting_flush_time=/) out = out " " $i
    printf "%-28s%s accounting_flush_time=00:00:00\n", $1, out; next }
  { print }' "$W/global.old" >"$W/global"
if ! same_conf "$W/global.old" "$W/global"; then
  qc -Mconf "$W/global"
  changed+=(global-config)
fi
# Scheduler: run every second instead of every 15 s.
qconf -ssconf >"$W/sched.old"
sed -e 's/^schedule_interval .*/schedule_interval                 0:0:1/' \
    -e 's/^flush_submit_sec .*/flush_submit_sec                  1/' \
    -e 's/^flush_finish_sec .*/flush_finish_sec                  1/' "$W/sched.old" >"$W/sched"
if ! same_conf "$W/sched.old" "$W/sched"; then
  qc -Msconf "$W/sched"
  changed+=(scheduler)
fi
# This host may submit jobs (it is already an admin host from the postinst).
if ! qconf -ss 2>/dev/null | grep -qx "$HOST"; then
  qc -as "$HOST"
  changed+=(submit-host)
fi
phase "cluster config ${changed[*]:+updated: ${changed[*]}}$([ ${#changed[@]} = 0 ] && echo unchanged)"

# ---------------------------------------------------------------- execd
if pid_alive "$EXECD_PID" sge_execd; then
  phase "sge_execd already running"
else
  (cd / && /usr/sbin/sge_execd) || die "sge_execd failed to start"
  wait_for "sge_execd to register as exec host (qconf -sel)" bash -c "qconf -sel | grep -q ."
  phase "sge_execd started"
fi

# ---------------------------------------------------------------- PE smp, @allhosts, all.q
changed=()
# smp: all slots of a job on one host ($pe_slots) -> `qsub -pe smp N` = N cores for one job.
if ! qconf -spl 2>/dev/null | grep -qx smp; then
  cat >"$W/smp" <<'EOF'
pe_name            smp
slots              9999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
EOF
  qc -Ap "$W/smp"
  changed+=(pe-smp)
fi
if ! qconf -shgrpl 2>/dev/null | grep -qx @allhosts; then
  printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$W/allhosts"
  qc -Ahgrp "$W/allhosts"
  changed+=(@allhosts)
fi
SLOTS=$(nproc)
# load_thresholds NONE: the template's np_load_avg=1.75 puts the queue into (a)larm state
# as soon as the load average per core exceeds 1.75 (other CI work, the workflow's own
# multi-threaded jobs) and SGE then silently stops starting jobs: snakemake waits forever.
if ! qconf -sql 2>/dev/null | grep -qx all.q; then
  # the template's pe_list names "make smp mpi": PEs that do not exist make -Aq fail
  qconf -sq | sed -e '/^qname/s/template/all.q/' -e '/^hostlist/s/NONE/@allhosts/' \
    -e '/^pe_list/s/.*/pe_list               smp/' -e "/^slots/s/.*/slots                 $SLOTS/" \
    -e '/^load_thresholds/s/.*/load_thresholds       NONE/' \
    -e '/^shell /s/.*/shell                 \/bin\/bash/' >"$W/all.q"
  qc -Aq "$W/all.q"
  changed+=(all.q)
else
  qconf -sq all.q >"$W/q.old"
  sed -e '/^pe_list/{/smp/!s/$/ smp/}' -e "/^slots/s/.*/slots                 $SLOTS/" \
    -e '/^load_thresholds/s/.*/load_thresholds       NONE/' "$W/q.old" >"$W/all.q"
  if ! same_conf "$W/q.old" "$W/all.q"; then
    qc -Mq "$W/all.q"
    changed+=(all.q)
  fi
fi
queue_ready() { # queue instance exists and is not (a)larm/(u)nknown/(E)rror/(d)isabled/(s)uspended
  qstat -f -q all.q 2>/dev/null | awk -v q="all.q@" 'index($1, q) == 1 {found=1; if ($6 ~ /[auEdsS]/) bad=1} END {exit !(found && !bad)}'
}
wait_for "queue all.q@$HOST to be usable (qstat -f)" queue_ready
phase "queue all.q ready ($SLOTS slots, pe smp)${changed[*]:+, created/updated: ${changed[*]}}"

# ---------------------------------------------------------------- trivial job
JOBOUT=$(mktemp)
JOBID=$(qsub -terse -b y -cwd -N ci-setup-check -pe smp 1 -j y -o "$JOBOUT" /bin/echo ok) ||
  die "qsub refused the trivial job"
wait_for "trivial job $JOBID to leave the queue (qstat -j $JOBID)" bash -c "! qstat -j $JOBID"
wait_for "accounting record of job $JOBID (qacct -j $JOBID)" bash -c "qacct -j $JOBID | grep -q '^exit_status'"
ACCT=$(qacct -j "$JOBID")
EXIT=$(awk '$1 == "exit_status" {print $2}' <<<"$ACCT" | tail -n 1)
FAILED=$(awk '$1 == "failed" {print $2}' <<<"$ACCT" | tail -n 1)
[ "$EXIT" = 0 ] && [ "$FAILED" = 0 ] && grep -qx ok "$JOBOUT" ||
  die "trivial job $JOBID: exit_status=$EXIT failed=$FAILED output: $(cat "$JOBOUT")"
rm -f "$JOBOUT"
phase "sge ready: trivial job $JOBID exit_status 0 (qacct)"
