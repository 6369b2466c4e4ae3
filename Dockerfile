# syntax=docker/dockerfile:1
# The atp-stream image: the official Flink 2.2.1 image (Java 17, Ubuntu 24.04), Python 3.11 with
# the project, and the stream job's jars in /opt/flink/lib. One image runs all three parts the
# chart deploys (helm/atp-stream): the stream job (started by the Flink Kubernetes Operator),
# the read API (`atp serve`) and channel sync (`atp channel-sync`).
#
#   docker build --platform=linux/amd64 -t atp-stream:0.1.0 .
#
# The versions below must equal those of pyproject.toml and infra/versions.env;
# tests/unit/test_image_recipe.py checks them, and that every file copied exists. No secret is
# built in: passwords and keys come from Kubernetes Secrets at run time.

ARG FLINK_VERSION=2.2.1

FROM --platform=linux/amd64 flink:${FLINK_VERSION}-scala_2.12-java17 AS flink

# ---- 1. The job's jars: the Kafka connector and Jedis from Maven Central (deploy/jars.pom.xml),
#         and the project's JVM helpers (pipelines/jvm) compiled against this Flink.
FROM --platform=linux/amd64 maven:3.9-eclipse-temurin-17 AS jars
ARG FLINK_KAFKA_CONNECTOR_VERSION=5.0.0-2.2
ARG JEDIS_VERSION=5.2.0
WORKDIR /build
COPY deploy/jars.pom.xml pom.xml
RUN set -eux; \
    copy() { mvn -B -q -Dflink.kafka.connector.version="$FLINK_KAFKA_CONNECTOR_VERSION" \
        -Djedis.version="$JEDIS_VERSION" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime "$@"; }; \
    copy -DincludeArtifactIds=flink-sql-connector-kafka -DoutputDirectory=/jars/flink; \
    copy -DexcludeArtifactIds=flink-sql-connector-kafka -DoutputDirectory=/jars/redis
COPY --from=flink /opt/flink/lib/ /opt/flink/lib/
COPY pipelines/jvm/ src/
# Java 11 bytecode, as infra/build-jvm.sh builds it: Flink 2.2 runs on 11, 17 and 21.
RUN set -eux; \
    javac --release 11 -nowarn -d classes -cp "/opt/flink/lib/*:/jars/flink/*:/jars/redis/*" \
        $(find src -name '*.java'); \
    jar cf /jars/flink/atp-jvm.jar -C classes .

# ---- 2. Python 3.11 (the base image has 3.12), built with a shared libpython: PyFlink's thread
#         mode embeds the interpreter. Then PyFlink and the project, in the same prefix.
FROM flink AS python
USER root
ARG FLINK_VERSION
ARG PYTHON_VERSION=3.11.15
ARG PYTHON_SHA256=272179ddd9a2e41a0fc8e42e33dfbdca0b3711aa5abf372d3f2d51543d09b625
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends build-essential ca-certificates wget xz-utils \
        libbz2-dev libffi-dev liblzma-dev libncursesw5-dev libreadline-dev libsqlite3-dev \
        libssl-dev uuid-dev zlib1g-dev; \
    wget -nv -O /tmp/python.tar.xz \
        "https://www.python.org/ftp/python/${PYTHON_VERSION}/Python-${PYTHON_VERSION}.tar.xz"; \
    echo "${PYTHON_SHA256} */tmp/python.tar.xz" | sha256sum -c -; \
    mkdir /tmp/python; \
    tar -xJf /tmp/python.tar.xz -C /tmp/python --strip-components=1; \
    cd /tmp/python; \
    ./configure --prefix=/opt/python --enable-shared --with-ensurepip=install \
        LDFLAGS="-Wl,-rpath,/opt/python/lib"; \
    make -j"$(nproc)"; \
    make install; \
    cd /; \
    rm -rf /tmp/python /tmp/python.tar.xz; \
    find /opt/python -depth -type d \( -name test -o -name tests -o -name idle_test \) \
        -exec rm -rf '{}' +; \
    # The Debian packages of the shared libraries it links, for the runtime stage to install.
    find /opt/python -type f \( -name '*.so*' -o -perm -u+x \) -exec ldd '{}' + 2>/dev/null \
        | awk '/=>/ { so = $(NF-1); if (index(so, "/opt/python/") == 1) next; \
                      sub("^/(usr/)?", "", so); print "*" so }' \
        | sort -u | xargs -r dpkg-query --search | cut -d: -f1 | sort -u \
        > /opt/python/runtime-packages.txt
ENV PATH=/opt/python/bin:$PATH
# apache-flink first, as infra/bootstrap.sh does: its pins bound everything else.
RUN pip install --no-cache-dir --upgrade pip \
    && pip install --no-cache-dir "apache-flink==${FLINK_VERSION}"
# The project is installed in place (editable): the Avro schemas in avro/ are read from the
# source tree, and the job's workers put the project root on their Python path.
WORKDIR /opt/atp-stream
COPY pyproject.toml README.md ./
COPY avro/ avro/
COPY transforms/ transforms/
COPY state/ state/
COPY pipelines/ pipelines/
COPY api/ api/
RUN pip install --no-cache-dir -e . && python -m compileall -q /opt/atp-stream

# ---- 3. The image: Flink, Python with the project, the jars.
FROM flink
ARG FLINK_VERSION
USER root
COPY --from=python /opt/python /opt/python
COPY --from=python /opt/atp-stream /opt/atp-stream
# The jars live where pipelines/stream_config.py looks for them (the project's .cache/jars) and
# are linked into lib/, the cluster's classpath. flink-python goes to lib/ as well (the job's
# jarURI still names the copy in opt/): with `pemja.` loaded parent-first, the embedded
# interpreter's native library is loaded once per TaskManager, not once per job restart.
COPY --from=jars /jars/ /opt/atp-stream/.cache/jars/
RUN set -eux; \
    apt-get update; \
    xargs -r apt-get install -y --no-install-recommends < /opt/python/runtime-packages.txt; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s /opt/python/bin/python3 /usr/local/bin/python; \
    ln -s /opt/python/bin/python3 /usr/local/bin/python3; \
    ln -s /opt/python/bin/atp /usr/local/bin/atp; \
    ln -s /opt/atp-stream/.cache/jars/flink/*.jar /opt/atp-stream/.cache/jars/redis/*.jar \
        /opt/flink/lib/; \
    cp "/opt/flink/opt/flink-python-${FLINK_VERSION}.jar" /opt/flink/lib/; \
    chown -h flink:flink /opt/flink/lib/*.jar; \
    python -c "import pyflink, pipelines.stream_job, api.app"
ENV PATH=/opt/python/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="atp-stream" \
      org.opencontainers.image.description="Streaming available-to-promise: Flink job, read API, channel sync" \
      org.opencontainers.image.licenses="Apache-2.0"
USER flink
