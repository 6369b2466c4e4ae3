#!/usr/bin/env bash
# Standalone Flink session cluster (one JobManager, one TaskManager with 2 slots) on 127.0.0.1,
# run from the Flink distribution inside the apache-flink wheel in .venv. The wheel is never
# modified: the cluster reads its configuration from var/flink/conf and its jars from
# var/flink/lib (links to the wheel's lib/ plus flink-sql-connector-kafka). All state lives
# under var/flink (checkpoints, savepoints, logs, pid files, temp files). FLINK_HOME_DIR,
# FLINK_REST_PORT and FLINK_RPC_PORT run a second cluster next to it (the fault test does).
#
#   infra/flink.sh start          start; returns once the REST API reports a TaskManager
#   infra/flink.sh stop [--purge] stop the cluster (stop-cluster.sh, then leftovers); --purge removes var/flink
#   infra/flink.sh clean          stop and remove var/flink
#   infra/flink.sh status         exit 0 when a TaskManager is registered, 3 when stopped, 1 otherwise
#   infra/flink.sh taskmanager start   start one more TaskManager; returns once it has registered
#   infra/flink.sh taskmanager kill    SIGKILL the cluster's TaskManager(s), as a machine crash would
#   infra/flink.sh env            print the exports that point bin/flink at this cluster, e.g.
#                                   eval "$(infra/flink.sh env)"; "$FLINK_HOME/bin/flink" run -py job.py
#   infra/flink.sh metrics-ports  print "jobmanager|taskmanager PORT" for each process's Prometheus
#                                   reporter (what infra/prometheus.sh scrapes)
#
# Environment: FLINK_REST_PORT (8081), FLINK_RPC_PORT (6123, the JobManager's RPC port),
# FLINK_HOME_DIR (var/flink; relative to the repository), FLINK_SETTINGS (more key=value settings,
# space-separated, e.g. web.refresh-interval=200ms), FLINK_START_TIMEOUT (90), FLINK_STOP_TIMEOUT (30),
# FLINK_PROMETHEUS (1: Flink's Prometheus reporter on every JobManager and TaskManager, each on the
# first free port of FLINK_PROMETHEUS_PORTS, 9249-9260; 0 turns it off).
# The reporter has no bind-address option: unlike everything else here it listens on all
# interfaces. Its metrics hold no secret, but on a machine others can reach, firewall the range
# (e.g. iptables -A INPUT -p tcp --dport 9249:9260 ! -i lo -j DROP) or set FLINK_PROMETHEUS=0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=infra/versions.env
. infra/versions.env

FLINK_REST_PORT="${FLINK_REST_PORT:-8081}"
FLINK_RPC_PORT="${FLINK_RPC_PORT:-6123}"
FLINK_START_TIMEOUT="${FLINK_START_TIMEOUT:-90}"
FLINK_STOP_TIMEOUT="${FLINK_STOP_TIMEOUT:-30}"
FLINK_PROMETHEUS="${FLINK_PROMETHEUS:-1}"
FLINK_PROMETHEUS_PORTS="${FLINK_PROMETHEUS_PORTS:-9249-9260}"
PY="$ROOT/.venv/bin/python"
HOME_DIR="${FLINK_HOME_DIR:-var/flink}"
[[ "$HOME_DIR" = /* ]] || HOME_DIR="$ROOT/$HOME_DIR"
CONF_DIR="$HOME_DIR/conf"
LIB_DIR="$HOME_DIR/lib"
LOG_DIR="$HOME_DIR/log"
PID_DIR="$HOME_DIR/pid"
CONNECTOR="$ROOT/.cache/jars/flink/flink-sql-connector-kafka-${FLINK_KAFKA_CONNECTOR_VERSION}.jar"
REST="http://127.0.0.1:$FLINK_REST_PORT"

NAME=flink
# shellcheck source=infra/lib.sh
. infra/lib.sh

[ -x "$PY" ] || die "$PY missing; run infra/bootstrap.sh (make setup) first"
PYFLINK="$("$PY" -c 'import os, pyflink; print(os.path.dirname(os.path.abspath(pyflink.__file__)))')"
[ -x "$PYFLINK/bin/start-cluster.sh" ] || die "no Flink distribution in $PYFLINK"
SITE_PACKAGES="$(dirname "$PYFLINK")"

# bin/config.sh honours these: the wheel stays untouched.
export FLINK_HOME="$PYFLINK"
export FLINK_CONF_DIR="$CONF_DIR"
export FLINK_LIB_DIR="$LIB_DIR"
export FLINK_LOG_DIR="$LOG_DIR"
export FLINK_PID_DIR="$PID_DIR"

overview() { # prints the REST overview JSON, fails when the REST API does not answer
    curl -fsS --max-time 3 "$REST/overview" 2>/dev/null
}

taskmanagers() { # number of registered TaskManagers, 0 when the REST API does not answer
    overview | "$PY" -c 'import json, sys; print(json.load(sys.stdin).get("taskmanagers", 0))' 2>/dev/null || echo 0
}

our_pids() { # live pids from the cluster's pid files ($1: a glob of them, all by default)
    local f pid
    for f in "$PID_DIR"/${1:-*}.pid; do
        [ -f "$f" ] || continue
        while read -r pid; do
            [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
                && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$LOG_DIR" \
                && echo "$pid"
        done <"$f"
    done
    return 0
}

prepare() {
    mkdir -p "$HOME_DIR" "$LOG_DIR" "$PID_DIR" "$HOME_DIR/checkpoints" "$HOME_DIR/savepoints" "$HOME_DIR/tmp"
    # 1. our own copy of the wheel's conf/, made once; settings below are re-applied on every start
    if [ ! -f "$CONF_DIR/config.yaml" ]; then
        rm -rf "$CONF_DIR"
        cp -r "$PYFLINK/conf" "$CONF_DIR"
        echo "127.0.0.1:$FLINK_REST_PORT" >"$CONF_DIR/masters"
        echo "127.0.0.1" >"$CONF_DIR/workers"
        say "copied $PYFLINK/conf to ${CONF_DIR#"$ROOT"/}"
    fi
    # 2. lib/: links to the wheel's jars plus the Kafka connector, rebuilt on every start so that a
    #    reinstalled wheel or a new connector version is picked up
    [ -f "$CONNECTOR" ] || infra/fetch-jars.sh
    [ -f "$CONNECTOR" ] || die "$CONNECTOR missing after infra/fetch-jars.sh"
    rm -rf "$LIB_DIR"
    mkdir -p "$LIB_DIR"
    ln -s "$PYFLINK"/lib/*.jar "$LIB_DIR/"
    # flink-python (and the pemja it embeds) on the cluster classpath, loaded parent-first below:
    # the embedded interpreter's native library can then be loaded once per TaskManager instead of
    # once per job, which on Java 17 fails from the second Python job on
    ln -s "$PYFLINK"/opt/flink-python-*.jar "$LIB_DIR/"
    cp "$CONNECTOR" "$LIB_DIR/"
    # 3. settings, written with Flink's own configuration tool (it keeps config.yaml standard YAML)
    local settings=(
        jobmanager.bind-host=127.0.0.1
        jobmanager.rpc.address=127.0.0.1
        jobmanager.rpc.port="$FLINK_RPC_PORT"
        taskmanager.bind-host=127.0.0.1
        taskmanager.host=127.0.0.1
        rest.address=127.0.0.1
        rest.bind-address=127.0.0.1
        rest.port="$FLINK_REST_PORT"
        taskmanager.numberOfTaskSlots=2
        jobmanager.memory.process.size=1024m
        taskmanager.memory.process.size=2048m
        # the hashmap backend keeps state on the heap: give the heap what managed memory would take
        taskmanager.memory.managed.fraction=0.2
        state.backend.type=hashmap
        execution.checkpointing.dir="file://$HOME_DIR/checkpoints"
        execution.checkpointing.savepoint-dir="file://$HOME_DIR/savepoints"
        python.execution-mode=thread
        python.executable="$PY"
        python.client.executable="$PY"
        # the embedded (thread-mode) interpreter starts from the base Python, not the venv: give it
        # the venv's packages and the project's own modules
        python.pythonpath="$SITE_PACKAGES:$ROOT"
        classloader.parent-first-patterns.additional=pemja.
        env.log.dir="$LOG_DIR"
        env.pid.dir="$PID_DIR"
        io.tmp.dirs="$HOME_DIR/tmp"
        web.tmpdir="$HOME_DIR/tmp"
    )
    if [ "$FLINK_PROMETHEUS" = "1" ]; then
        # the wheel's plugins/ folder holds the reporter (FLINK_HOME points there)
        [ -n "$(find "$PYFLINK/plugins" -name 'flink-metrics-prometheus-*.jar' 2>/dev/null)" ] \
            || die "no flink-metrics-prometheus jar in $PYFLINK/plugins (or set FLINK_PROMETHEUS=0)"
        settings+=(
            metrics.reporter.prom.factory.class=org.apache.flink.metrics.prometheus.PrometheusReporterFactory
            metrics.reporter.prom.port="$FLINK_PROMETHEUS_PORTS"
            # label values as Flink names them (job_name="atp-stream", not "atp_stream"): what
            # the chart's alert rules and dashboard select
            metrics.reporter.prom.filterLabelValueCharacters=false
        )
    fi
    local extra
    read -ra extra <<<"${FLINK_SETTINGS:-}"
    settings+=("${extra[@]}")
    local args=() s
    for s in "${settings[@]}"; do args+=(-D "$s"); done
    if [ "$FLINK_PROMETHEUS" != "1" ]; then
        args+=(-rmKey metrics.reporter.prom.factory.class -rmKey metrics.reporter.prom.port
            -rmKey metrics.reporter.prom.filterLabelValueCharacters)
    fi
    bash "$PYFLINK/bin/config-parser-utils.sh" "$CONF_DIR" "$PYFLINK/bin" "$LIB_DIR" "${args[@]}" >/dev/null \
        || die "could not write ${CONF_DIR#"$ROOT"/}/config.yaml"
}

log_tail() {
    local f
    for f in "$LOG_DIR"/flink-*standalonesession*.log "$LOG_DIR"/flink-*taskexecutor*.log \
        "$LOG_DIR"/flink-*.out "$LOG_DIR/start-cluster.out"; do
        [ -s "$f" ] || continue
        echo "---- tail of $f ----" >&2
        tail -n 25 "$f" >&2
    done
}

start() {
    if [ "$(taskmanagers)" -ge 1 ]; then
        say "already running: $REST ($(taskmanagers) TaskManager(s))"
        return 0
    fi
    if [ -n "$(our_pids)" ]; then
        die "cluster processes $(our_pids | tr '\n' ' ')are running but $REST reports no TaskManager; try infra/flink.sh stop"
    fi
    if overview >/dev/null; then
        die "something else answers on $REST; stop it or set FLINK_REST_PORT"
    fi
    prepare
    local t0=$SECONDS
    say "starting cluster (REST $REST)"
    "$PYFLINK/bin/start-cluster.sh" >"$LOG_DIR/start-cluster.out" 2>&1 \
        || { cat "$LOG_DIR/start-cluster.out" >&2; die "start-cluster.sh failed"; }
    local deadline=$((SECONDS + FLINK_START_TIMEOUT))
    until [ "$(taskmanagers)" -ge 1 ]; do
        if [ -z "$(our_pids)" ]; then
            log_tail
            die "cluster processes exited during start-up (see ${LOG_DIR#"$ROOT"/})"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail
            die "no TaskManager registered at $REST within ${FLINK_START_TIMEOUT}s (processes still running: infra/flink.sh stop)"
        fi
        sleep 1
    done
    local slots
    slots="$(overview | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["slots-total"])')"
    say "up: $REST, $(taskmanagers) TaskManager(s), $slots slots, after $((SECONDS - t0))s"
}

stop() {
    if [ -n "$(our_pids)" ]; then
        say "stopping cluster"
        "$PYFLINK/bin/stop-cluster.sh" >"$LOG_DIR/stop-cluster.out" 2>&1 || true
        local i pid
        for ((i = 0; i < FLINK_STOP_TIMEOUT * 5; i++)); do
            [ -z "$(our_pids)" ] && break
            sleep 0.2
        done
        for pid in $(our_pids); do
            say "pid $pid still alive after ${FLINK_STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        done
        say "stopped"
    else
        say "not running"
    fi
    rm -f "$PID_DIR"/*.pid
    if [ "${1:-}" = "--purge" ]; then
        rm -rf "$HOME_DIR"
        say "removed ${HOME_DIR#"$ROOT"/}"
    fi
}

status() {
    local json
    if json="$(overview)"; then
        echo "$json" | "$PY" -c 'import json, sys
o = json.load(sys.stdin)
print("flink: running %s: flink %s, %d TaskManager(s), %d/%d slots free, %d job(s) running" % (
    sys.argv[1], o.get("flink-version"), o["taskmanagers"], o["slots-available"], o["slots-total"],
    o["jobs-running"]))' "$REST"
        [ "$(taskmanagers)" -ge 1 ] || return 1
        return 0
    fi
    if [ -n "$(our_pids)" ]; then
        say "processes $(our_pids | tr '\n' ' ')running but $REST does not answer"
        return 1
    fi
    say "stopped"
    return 3
}

metrics_ports() { # "ROLE PORT" for each reporter port a process of this cluster listens on
    local lo="${FLINK_PROMETHEUS_PORTS%-*}" hi="${FLINK_PROMETHEUS_PORTS#*-}" role pid port
    for role in jobmanager:standalonesession taskmanager:taskexecutor; do
        for pid in $(our_pids "*${role#*:}*"); do
            for port in $(ss -Hltnp 2>/dev/null \
                | awk -v p="pid=$pid," 'index($0, p) { n = split($4, a, ":"); print a[n] }'); do
                if [ "$port" -ge "$lo" ] && [ "$port" -le "$hi" ]; then
                    echo "${role%:*} $port"
                fi
            done
        done
    done
}

registered_since() { # exit 0 once a TaskManager whose id is not in $1 (space-separated) is registered
    curl -fsS --max-time 3 "$REST/taskmanagers" 2>/dev/null | "$PY" -c 'import json, sys
known = set(sys.argv[1].split())
ids = {tm["id"] for tm in json.load(sys.stdin)["taskmanagers"]}
sys.exit(0 if ids - known else 1)' "$1" 2>/dev/null
}

taskmanager_start() {
    overview >/dev/null || die "no JobManager answers on $REST; run infra/flink.sh start"
    local known t0=$SECONDS
    # A killed TaskManager stays registered until its heartbeats time out: wait for a new id.
    known="$(curl -fsS --max-time 3 "$REST/taskmanagers" \
        | "$PY" -c 'import json, sys; print(" ".join(tm["id"] for tm in json.load(sys.stdin)["taskmanagers"]))')"
    "$PYFLINK/bin/taskmanager.sh" start >>"$LOG_DIR/taskmanager.out" 2>&1 \
        || { cat "$LOG_DIR/taskmanager.out" >&2; die "taskmanager.sh start failed"; }
    local deadline=$((SECONDS + FLINK_START_TIMEOUT))
    until registered_since "$known"; do
        if [ -z "$(our_pids '*taskexecutor*')" ]; then
            log_tail
            die "the TaskManager exited during start-up (see ${LOG_DIR#"$ROOT"/})"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "no new TaskManager registered within ${FLINK_START_TIMEOUT}s"
        sleep 0.2
    done
    say "TaskManager $(our_pids '*taskexecutor*' | tail -n 1) registered after $((SECONDS - t0))s"
}

taskmanager_kill() {
    local pids pid
    pids="$(our_pids '*taskexecutor*')"
    [ -n "$pids" ] || die "no TaskManager of this cluster is running"
    for pid in $pids; do
        kill -KILL "$pid" 2>/dev/null || true
        # gone once its cmdline is (a zombie has none)
        while our_pids '*taskexecutor*' | grep -qx "$pid"; do sleep 0.05; done
        say "killed TaskManager pid $pid"
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    clean) stop --purge ;;
    status) status ;;
    taskmanager)
        case "${2:-}" in
            start) taskmanager_start ;;
            kill) taskmanager_kill ;;
            *) echo "usage: $0 taskmanager {start|kill}" >&2; exit 2 ;;
        esac
        ;;
    metrics-ports) metrics_ports ;;
    env)
        printf 'export FLINK_HOME=%q FLINK_CONF_DIR=%q FLINK_LIB_DIR=%q FLINK_LOG_DIR=%q FLINK_PID_DIR=%q\n' \
            "$FLINK_HOME" "$FLINK_CONF_DIR" "$FLINK_LIB_DIR" "$FLINK_LOG_DIR" "$FLINK_PID_DIR"
        ;;
    *) echo "usage: $0 {start|stop [--purge]|clean|status|taskmanager {start|kill}|env|metrics-ports}" >&2; exit 2 ;;
esac
