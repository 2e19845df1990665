# Shared helpers of the setup_*.sh scripts (sourced). The caller sets NAME and TIMEOUT.
# shellcheck shell=bash

T0=${EPOCHREALTIME/./}

phase() { # print "[<name> <elapsed>s] <message>"
  local now=${EPOCHREALTIME/./} d
  d=$(( (now - T0) / 100000 ))
  printf '[%s %4d.%ds] %s\n' "$NAME" $((d / 10)) $((d % 10)) "$*"
}

die() { phase "ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# wait_for <description> <command...>: poll every 0.5 s, at most $TIMEOUT s

wait_for() {
  local what=$1 i; shift
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "timed out after ${TIMEOUT}s waiting for: $what"
}

pid_alive() {
  local f pid
  for f in $1; do   # may be a glob (execd spool dir is per host)
    [ -s "$f" ] || continue
    pid=$(<"$f")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] && return 0
  done
  return 1
}

ensure_pkgs() {
  local p missing=() log
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log=$(mktemp)
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; die "apt-get update failed"; }
  fi
  # a stale package list gives 404s: refresh once and retry
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >"$log" 2>&1; then
    apt-get update -qq >>"$log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
  rm -f "$log"
}
