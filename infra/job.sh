#!/usr/bin/env bash
# The stream job (`atp job`, an embedded Flink MiniCluster) as a background process.
#
#   infra/job.sh start    start; returns once the job has completed a checkpoint, and
#                         writes the job's Flink REST URL to var/job/rest-url (atp status)
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
REST_URL_FILE="$HOME_DIR/rest-url"
CHECKPOINTS="$ROOT/var/checkpoints"
JOB_START_TIMEOUT="${JOB_START_TIMEOUT:-120}"

NAME=job
# shellcheck source=infra/lib.sh
. infra/lib.sh

# The embedded MiniCluster's REST API listens on a free port (fixed ports would collide
# with other local jobs, e.g. the tests'): find the one among the JVM's listening ports.
rest_url() {
    local java port
    for java in $(pgrep -P "$(cat "$PIDFILE")" java); do
        for port in $(ss -Hltnp 2>/dev/null | awk -v p="pid=$java," 'index($0, p) {n = split($4, a, ":"); print a[n]}'); do
            if curl -fsS -m 2 "http://127.0.0.1:$port/jobs/overview" >/dev/null 2>&1; then
                echo "http://127.0.0.1:$port"
                return 0
            fi
        done
    done
    return 1
}

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
    if rest_url >"$REST_URL_FILE"; then
        say "REST API at $(cat "$REST_URL_FILE")"
    else
        rm -f "$REST_URL_FILE"
        say "REST API not found (atp status falls back to the checkpoint directory)"
    fi
    say "running (pid $(cat "$PIDFILE")), first checkpoint after ${waited}s; log in ${LOG#"$ROOT"/}"
}

term_tree() { # `atp job` and its JVM
    local pid
    pid="$(cat "$PIDFILE")"
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid"
}

stop() {
    stop_pid 15 term_tree
    rm -f "$REST_URL_FILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) if pid_alive; then say "running (pid $(cat "$PIDFILE"))"; else say "stopped"; exit 3; fi ;;
    *) die "usage: infra/job.sh {start|stop|status}" ;;
esac
