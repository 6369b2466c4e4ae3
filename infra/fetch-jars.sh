#!/usr/bin/env bash
# Download the jars the local platform runs from Maven Central into .cache/jars:
#   .cache/jars/kafka/  the Kafka broker (KRaft) with its runtime dependencies and a log4j2 binding
#   .cache/jars/flink/  flink-sql-connector-kafka (the fat jar PyFlink jobs need)
#   .cache/jars/redis/  Jedis and its dependencies, for the job's Redis snapshot sink
# Idempotent: a stamp file per set records what it holds; a set whose stamp matches is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=infra/versions.env
. infra/versions.env

JARS="$ROOT/.cache/jars"
WORK="$ROOT/.cache/jars/.pom"
MVN="${MVN:-mvn}"
NAME=fetch-jars
# shellcheck source=infra/lib.sh
. infra/lib.sh

# Maven fetches the jars; a JDK compiles the job's JVM helpers (infra/build-jvm.sh).
[ "$MVN" != mvn ] || apt_install maven mvn
apt_install default-jdk-headless javac jar

# copy_deps NAME DEST STAMP DEPENDENCIES_XML
#   writes a small pom with the given <dependency> elements and copies their runtime closure to DEST.
copy_deps() {
    local name="$1" dest="$2" deps="$4" stamp
    # the stamp names the versions and hashes the dependency list, so any change refetches
    stamp="$3 $(printf '%s' "$deps" | sha256sum | cut -c1-12)"
    if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
        echo "fetch-jars: $name jars present ($stamp)"
        return 0
    fi
    echo "fetch-jars: fetching $name jars ($stamp)"
    mkdir -p "$WORK/$name"
    cat >"$WORK/$name/pom.xml" <<POM
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 http://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.atp</groupId>
  <artifactId>jars-$name</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
$deps
  </dependencies>
</project>
POM
    local tmp="$dest.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    "$MVN" -B -q -Dstyle.color=never -f "$WORK/$name/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
    echo "$stamp" >"$tmp/.stamp"
    rm -rf "$dest"
    mv "$tmp" "$dest"
    echo "fetch-jars: $name: $(find "$dest" -name '*.jar' | wc -l) jars in ${dest#"$ROOT"/}"
}

dep() { # groupId artifactId version
    printf '    <dependency><groupId>%s</groupId><artifactId>%s</artifactId><version>%s</version></dependency>\n' "$1" "$2" "$3"
}

kafka_deps="$(
    dep org.apache.kafka "kafka_${KAFKA_SCALA_VERSION}" "$KAFKA_VERSION"
    dep org.apache.kafka kafka-server "$KAFKA_VERSION"
    dep org.apache.kafka kafka-tools "$KAFKA_VERSION"
    dep org.apache.logging.log4j log4j-core "$LOG4J_VERSION"
    dep org.apache.logging.log4j log4j-slf4j-impl "$LOG4J_VERSION"
)"
copy_deps kafka "$JARS/kafka" "kafka_${KAFKA_SCALA_VERSION}-${KAFKA_VERSION} log4j-${LOG4J_VERSION}" "$kafka_deps"

# The connector is a shaded fat jar: copy only it, not its (provided) dependencies.
flink_deps="$(
    printf '    <dependency><groupId>org.apache.flink</groupId><artifactId>flink-sql-connector-kafka</artifactId><version>%s</version>\n' "$FLINK_KAFKA_CONNECTOR_VERSION"
    printf '      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>\n'
)"
copy_deps flink "$JARS/flink" "flink-sql-connector-kafka-${FLINK_KAFKA_CONNECTOR_VERSION}" "$flink_deps"

# The Redis client of the job's snapshot sink; Flink brings its own slf4j.
redis_deps="$(
    printf '    <dependency><groupId>redis.clients</groupId><artifactId>jedis</artifactId><version>%s</version>\n' "$JEDIS_VERSION"
    printf '      <exclusions><exclusion><groupId>org.slf4j</groupId><artifactId>*</artifactId></exclusion></exclusions></dependency>\n'
)"
copy_deps redis "$JARS/redis" "jedis-${JEDIS_VERSION}" "$redis_deps"

# The job's own JVM helpers, compiled against the jars above.
"$ROOT/infra/build-jvm.sh"
