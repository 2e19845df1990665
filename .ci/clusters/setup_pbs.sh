#!/usr/bin/env bash
# PBS/Torque front-end for CI: Slurm's own Torque compatibility wrappers (Debian package
# slurm-wlm-torque: perl qsub/qstat/qdel/pbsnodes) on top of the Slurm cluster started by
# setup_slurm.sh. Debian 12 and PyPI have no real PBS/Torque server; with these wrappers the
# PBS profile's `qsub -l walltime=...,mem=...,nodes=1:ppn=N` is really parsed and the job
# really runs on Slurm.
#
#   bash .ci/clusters/setup_pbs.sh         # runs setup_slurm.sh first if Slurm is not up
#   export PATH=/opt/pbs-wrappers/bin:$PATH   # (or: . /opt/pbs-wrappers/env.sh) for PBS runs only
#
# Why a private prefix: slurm-wlm-torque `Conflicts: gridengine-client` (both own
# /usr/bin/qsub), so it is unpacked (apt-get download + dpkg -x) into $PBS_PREFIX instead of
# being installed; its perl deps (libslurm-perl, libslurmdb-perl, libswitch-perl) do not
# conflict and are installed normally. qsub runs ${FindBin::Bin}/sbatch, hence the symlinks.
#
# One patch: the wrapper's `qstat -f` prints `job_state = C` for finished jobs but, unlike
# Torque, no `exit_status`. We add that line (Torque semantics: the exit code, 256+signal
# when killed, -1 for a job that ended without an exit code, e.g. cancelled/timed out), so
# profiles/pbs/status.py can tell success from failure exactly as on a real Torque server.
# The status script falls back to `scontrol show job` if the line is ever missing.
#
# Idempotent: the unpacked wrappers are kept while their version matches slurm-client's.
# Env: PBS_PREFIX (default /opt/pbs-wrappers), SETUP_TIMEOUT (default 60 s).
set -euo pipefail

NAME=setup_pbs
TIMEOUT=${SETUP_TIMEOUT:-60}
PREFIX=${PBS_PREFIX:-/opt/pbs-wrappers}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

# ---------------------------------------------------------------- Slurm backend
if ! scontrol ping 2>/dev/null | grep -q "is UP"; then
  phase "Slurm is not running: starting it with setup_slurm.sh"
  bash "$HERE/setup_slurm.sh" | sed 's/^/  /'
fi
scontrol ping 2>/dev/null | grep -q "is UP" || die "Slurm controller not reachable; run setup_slurm.sh first"
SLURM_VER=$(dpkg-query -W -f='${Version}' slurm-client)
phase "slurm backend up ($SLURM_VER)"

# ---------------------------------------------------------------- wrappers
ensure_pkgs libslurm-perl libslurmdb-perl libswitch-perl
STAMP=$PREFIX/.slurm-wlm-torque-version
if [ "$(cat "$STAMP" 2>/dev/null)" != "$SLURM_VER" ] || [ ! -x "$PREFIX/bin/qsub" ]; then
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true   # lets apt download sandboxed (no warning)
  (cd "$tmp" && apt-get download -qq "slurm-wlm-torque=$SLURM_VER" >"$tmp/log" 2>&1) || {
    apt-get update -qq >/dev/null 2>&1 || true
    (cd "$tmp" && apt-get download -qq "slurm-wlm-torque=$SLURM_VER" >"$tmp/log" 2>&1) ||
      { cat "$tmp/log" >&2; die "apt-get download slurm-wlm-torque=$SLURM_VER failed"; }
  }
  dpkg -x "$tmp"/slurm-wlm-torque_*.deb "$tmp/root"
  mkdir -p "$PREFIX/bin"
  for f in qsub qstat qdel qalter qhold qrls qrerun pbsnodes; do
    install -m 755 "$tmp/root/usr/bin/$f" "$PREFIX/bin/$f"
  done
  # Torque-like exit_status in `qstat -f` (see header). Inserted after the queue line.
  cat >"$tmp/patch.pl" <<'EOF'
	# exit_status added by .ci/clusters/setup_pbs.sh (Torque prints it for completed jobs)
	if ($job->{'stateCode'} eq 'C') {
		my $ec = ($job->{'exit_code'} // 0) >> 8;
		my $sig = ($job->{'exit_code'} // 0) & 0x7f;
		$ec = 256 + $sig if $sig;
		$ec = -1 if !$ec && ($job->{'job_state'} & JOB_STATE_BASE) != JOB_COMPLETE;
		printf("\texit_status = %d\n", $ec);
	}
EOF
  awk -v patch="$tmp/patch.pl" '
    { print }
    /printf\("\\tqueue = %s\\n", \$job->\{.partition.\}\);/ && !done {
      while ((getline l < patch) > 0) print l; done = 1 }
    END { if (!done) exit 3 }' "$tmp/root/usr/bin/qstat" >"$PREFIX/bin/qstat" ||
    phase "WARNING: qstat patch anchor not found; status.py will use its scontrol fallback"
  perl -c "$PREFIX/bin/qstat" >/dev/null 2>&1 || die "patched qstat does not compile (perl -c)"
  # qsub/qdel call ${FindBin::Bin}/sbatch etc.: make the Slurm tools resolvable next to them
  for b in sbatch salloc srun squeue scontrol scancel sacct; do
    ln -sf "$(command -v "$b")" "$PREFIX/bin/$b"
  done
  printf 'export PATH=%s/bin:$PATH\n' "$PREFIX" >"$PREFIX/env.sh"
  echo "$SLURM_VER" >"$STAMP"
  rm -rf "$tmp"
  phase "wrappers unpacked into $PREFIX/bin (slurm-wlm-torque $SLURM_VER, qstat patched)"
else
  phase "wrappers already in $PREFIX/bin (slurm-wlm-torque $SLURM_VER)"
fi
export PATH=$PREFIX/bin:$PATH

# ---------------------------------------------------------------- translation check
# NB: the wrapper keeps only the LAST -l option, so everything goes into one -l (as profiles/pbs does)
LINE=$(qsub --sbatchline -V -N ci-check -l nodes=1:ppn=2,walltime=0:05:00,mem=100mb \
  -o /tmp/x.out -e /tmp/x.err /bin/true)
for want in -N1 -n2 -t5 --mem=100M --export=all '-J ci-check'; do
  [[ " $LINE " == *" $want "* ]] || die "qsub translated the PBS options unexpectedly (missing '$want'): $LINE"
done
phase "qsub translates PBS resources: $LINE"

# ---------------------------------------------------------------- trivial job
tmp=$(mktemp -d)
printf '#!/bin/bash\necho ok-$SLURM_JOB_ID\n' >"$tmp/job.sh"
JOBID=$(cd "$tmp" && qsub -V -N ci-setup-check -l nodes=1:ppn=1,walltime=0:01:00 \
  -o "$tmp/out" -e "$tmp/err" "$tmp/job.sh") || die "qsub failed: $JOBID"
[[ $JOBID =~ ^[0-9]+ ]] || die "qsub did not print a job id: $JOBID"
wait_for "trivial job $JOBID to reach job_state = C (qstat -f $JOBID)" \
  bash -c "qstat -f $JOBID | grep -q 'job_state = C'"
QF=$(qstat -f "$JOBID")
grep -q 'exit_status = 0$' <<<"$QF" && grep -q "^ok-" "$tmp/out" ||
  die "trivial job $JOBID did not succeed: $(grep -E 'job_state|exit_status' <<<"$QF" | tr -d '\t' | tr '\n' ' ') $(cat "$tmp/out" "$tmp/err" 2>/dev/null)"
rm -rf "$tmp"
phase "pbs ready: trivial job $JOBID job_state C, exit_status 0 (use: export PATH=$PREFIX/bin:\$PATH)"
