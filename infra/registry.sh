#!/usr/bin/env bash
# A Confluent-compatible Avro schema registry on 127.0.0.1: Apicurio Registry, run from
# its Maven Central bundle, BACKWARD compatibility enforced (the Confluent default;
# Apicurio's own default is NONE). Schemas are kept in an H2 database file under
# var/registry, so a restart keeps every schema id that framed records name.
#
#   infra/registry.sh start    start; returns once the ccompat API answers
#   infra/registry.sh stop [--purge]  stop (SIGTERM, then SIGKILL); --purge removes var/registry
#   infra/registry.sh status   exit 0 when answering, 3 when stopped
#   infra/registry.sh url      print the URL clients use
#
# Environment: REGISTRY_PORT (8085), REGISTRY_MANAGEMENT_PORT (9085), REGISTRY_START_TIMEOUT (90),
# REGISTRY_HOME_DIR (var/registry; relative to the repository).
# Apicurio 3 needs Java 21+: JAVA21_HOME, else the newest JDK 21+ under /usr/lib/jvm.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=versions.env
. infra/versions.env

REGISTRY_PORT="${REGISTRY_PORT:-8085}"
REGISTRY_MANAGEMENT_PORT="${REGISTRY_MANAGEMENT_PORT:-9085}"
REGISTRY_START_TIMEOUT="${REGISTRY_START_TIMEOUT:-90}"
URL="http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"
BUNDLE_DIR="$ROOT/.cache/registry/apicurio-$APICURIO_VERSION"
HOME_DIR="${REGISTRY_HOME_DIR:-var/registry}"
[[ "$HOME_DIR" = /* ]] || HOME_DIR="$ROOT/$HOME_DIR"
PIDFILE="$HOME_DIR/registry.pid"
LOG="$HOME_DIR/registry.log"

NAME=registry
# shellcheck source=infra/lib.sh
. infra/lib.sh

java21() {
    if [ -n "${JAVA21_HOME:-}" ]; then echo "$JAVA21_HOME/bin/java"; return; fi
    local candidate version
    for candidate in $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
        [ -x "$candidate/bin/java" ] || continue
        version="$("$candidate/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
        if [ -n "$version" ] && [ "$version" -ge 21 ]; then echo "$candidate/bin/java"; return; fi
    done
    die "Apicurio Registry needs Java 21 or newer; set JAVA21_HOME"
}

fetch() {
    [ -f "$BUNDLE_DIR/quarkus-run.jar" ] && return 0
    say "fetching Apicurio Registry $APICURIO_VERSION from Maven Central"
    local artifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all"
    mvn -q dependency:get -Dartifact="$artifact" -Dtransitive=false >/dev/null \
        || die "mvn could not fetch $artifact"
    local tarball="$HOME/.m2/repository/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
    mkdir -p "$BUNDLE_DIR.partial"
    tar xzf "$tarball" -C "$BUNDLE_DIR.partial"
    rm -rf "$BUNDLE_DIR"
    mv "$BUNDLE_DIR.partial" "$BUNDLE_DIR"
}

answers() { curl -fsS -m 2 "$URL/subjects" >/dev/null 2>&1; }

start() {
    if pid_alive && answers; then say "already running at $URL"; return 0; fi
    fetch
    mkdir -p "$HOME_DIR"
    local java
    java="$(java21)"
    nohup "$java" -Xmx256m \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
        -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MANAGEMENT_PORT" \
        -Dquarkus.http.access-log.enabled=false -Dquarkus.log.level=WARN \
        -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
        -Dapicurio.datasource.url="jdbc:h2:file:$HOME_DIR/schemas;DB_CLOSE_DELAY=-1" \
        -Dapicurio.rules.global.compatibility=BACKWARD \
        -jar "$BUNDLE_DIR/quarkus-run.jar" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    local waited=0
    until answers; do
        if ! pid_alive || [ "$waited" -ge "$REGISTRY_START_TIMEOUT" ]; then
            tail -n 30 "$LOG" >&2 || true
            die "did not answer at $URL within ${waited}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "running at $URL (${waited}s)"
}

stop() {
    stop_pid 10
    purge_home "${1:-}"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    status) if answers; then say "running at $URL"; else say "stopped"; exit 3; fi ;;
    url) echo "$URL" ;;
    *) die "usage: infra/registry.sh {start|stop [--purge]|status|url}" ;;
esac
