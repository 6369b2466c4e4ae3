#!/usr/bin/env bash
# The stream job (`atp job`, an embedded Flink MiniCluster) as a background process.
#
#   infra/job.sh start    start; returns once the job has completed a checkpoint
#   infra/job.sh stop     stop it (its last retained checkpoint stays in var/checkpoints)
#   infra/job.sh status   exit 0 when running, 3 when stopped
#
# Environment: JOB_START_TIMEOUT (120); extra `atp job` flags in ATP_JOB_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
HOME_DIR="$ROOT/var/job"
PIDFILE="$HOME_DIR/job.pid"
LOG="$HOME_DIR/job.log"
CHECKPOINTS="$ROOT/var/checkpoints"
JOB_START_TIMEOUT="${JOB_START_TIMEOUT:-120}"

say() { echo "job: $*"; }
die() { echo "job: $*" >&2; exit 1; }

pid_alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

checkpoint_count() { find "$CHECKPOINTS" -maxdepth 2 -name 'chk-*' -newer "$PIDFILE" 2>/dev/null | wc -l; }

start() {
    if pid_alive; then say "already running (pid $(cat "$PIDFILE"))"; return 0; fi
    mkdir -p "$HOME_DIR" "$CHECKPOINTS"
    # shellcheck disable=SC2086  # ATP_JOB_ARGS is a list of flags
    nohup "$ROOT/.venv/bin/atp" job --checkpoint-dir "file://$CHECKPOINTS" ${ATP_JOB_ARGS:-} \
        >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    local waited=0
    until [ "$(checkpoint_count)" -gt 0 ]; do
        if ! pid_alive || [ "$waited" -ge "$JOB_START_TIMEOUT" ]; then
            tail -n 30 "$LOG" >&2 || true
            die "no checkpoint within ${waited}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "running (pid $(cat "$PIDFILE")), first checkpoint after ${waited}s; log in ${LOG#"$ROOT"/}"
}

stop() {
    if pid_alive; then
        local pid
        pid="$(cat "$PIDFILE")"
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        say "stopped"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if pid_alive; then say "running (pid $(cat "$PIDFILE"))"; else say "stopped"; exit 3; fi ;;
    *) die "usage: infra/job.sh {start|stop|status}" ;;
esac
