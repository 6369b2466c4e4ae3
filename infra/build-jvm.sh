#!/usr/bin/env bash
# Compile the job's small JVM helpers (pipelines/jvm) into .cache/jars/flink/atp-jvm.jar,
# against the Flink jars of the pyflink wheel and the Kafka connector. Idempotent: rebuilds
# only when a source file or a version changes.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=infra/versions.env
. infra/versions.env

SRC="$ROOT/pipelines/jvm"
OUT="$ROOT/.cache/jars/flink"
JAR="$OUT/atp-jvm.jar"
CONNECTOR="$OUT/flink-sql-connector-kafka-${FLINK_KAFKA_CONNECTOR_VERSION}.jar"
FLINK_LIB="$("$ROOT/.venv/bin/python" -c 'import os, pyflink; print(os.path.join(os.path.dirname(pyflink.__file__), "lib"))')"

[ -f "$CONNECTOR" ] || { echo "build-jvm: $CONNECTOR missing; run infra/fetch-jars.sh" >&2; exit 1; }
stamp="$(cat "$ROOT/.cache/jars/redis/.stamp") $(cd "$SRC" && find . -name '*.java' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16) $FLINK_VERSION $FLINK_KAFKA_CONNECTOR_VERSION"
if [ -f "$JAR" ] && [ -f "$JAR.stamp" ] && [ "$(cat "$JAR.stamp")" = "$stamp" ]; then
    echo "build-jvm: atp-jvm.jar up to date"
    exit 0
fi
classes="$(mktemp -d)"
trap 'rm -rf "$classes"' EXIT
# Java 11 bytecode: Flink 2.2 runs on 11, 17 and 21.
javac --release 11 -nowarn -d "$classes" \
    -cp "$FLINK_LIB/flink-dist-${FLINK_VERSION}.jar:$CONNECTOR:$(ls "$ROOT"/.cache/jars/redis/*.jar | tr '\n' ':')" \
    $(find "$SRC" -name '*.java')
jar cf "$JAR.tmp" -C "$classes" .
mv "$JAR.tmp" "$JAR"
echo "$stamp" >"$JAR.stamp"
echo "build-jvm: built ${JAR#"$ROOT"/}"
