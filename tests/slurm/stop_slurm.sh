#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start_slurm.sh: kill slurmd, slurmctld and munged
# by the pid files in STATE_DIR (never by process name), wait for them to exit, and remove the
# /etc/slurm/slurm.conf link that start_slurm.sh created.
#   tests/slurm/stop_slurm.sh [STATE_DIR]      (default: $POLARBEAR_SLURM_DIR or /tmp/polarbear-slurm)
set -uo pipefail

D="${1:-${POLARBEAR_SLURM_DIR:-/tmp/polarbear-slurm}}"
log() { echo "[stop_slurm] $*" >&2; }

stop_pidfile() {
  local name="$1" pidfile="$2" pid
  [ -f "$pidfile" ] || { log "$name: no pid file ($pidfile)"; return 0; }
  pid="$(cat "$pidfile")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not exit after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    log "$name (pid $pid) stopped"
  else
    log "$name: not running"
  fi
  rm -f "$pidfile"
}

stop_pidfile slurmd "$D/slurmd.pid"
stop_pidfile slurmctld "$D/slurmctld.pid"
stop_pidfile munged "$D/munge/munged.pid"
# Remove the /etc/slurm/slurm.conf link made by start_slurm.sh (only if it points into STATE_DIR).
if [ -L /etc/slurm/slurm.conf ] && [ -d "$D" ] \
   && [ "$(readlink /etc/slurm/slurm.conf)" = "$(cd "$D" && pwd)/polarbear-test-slurm.conf" ]; then
  rm -f /etc/slurm/slurm.conf
  log "removed the /etc/slurm/slurm.conf link"
fi
exit 0
