# shellcheck shell=bash
# Sourced by the service scripts after they `cd` to the repository root and set NAME (the
# prefix of every message). The pid-file helpers read PIDFILE and, optionally, PID_MATCH: a
# piece of the process's command line, so that a recycled pid is never taken for ours.

say() { echo "$NAME: $*"; }
die() { echo "$NAME: $*" >&2; exit 1; }

pid_alive() { # the pid file names a live process (whose command line holds PID_MATCH)
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ -z "${PID_MATCH:-}" ] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$PID_MATCH"
}

apt_install() { # PACKAGE COMMAND...: installs Debian's PACKAGE unless every COMMAND exists
    local package=$1 command missing=0
    shift
    for command in "$@"; do command -v "$command" >/dev/null || missing=1; done
    [ "$missing" = 1 ] || return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "$1 is missing and installing it needs root (apt-get install $package)"
        sudo="sudo"
    fi
    say "installing $package with apt-get"
    local out
    out="$(mktemp)"
    if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$package"; } >"$out" 2>&1; then
        cat "$out" >&2
        rm -f "$out"
        die "apt-get install $package failed"
    fi
    rm -f "$out"
    for command in "$@"; do command -v "$command" >/dev/null || die "$command still missing after apt-get install $package"; done
}

stop_pid() { # GRACE_SECONDS [COMMAND...]: asks the pid file's process to stop (COMMAND, else
    # SIGTERM), sends SIGKILL after GRACE_SECONDS, and removes the pid file
    local grace=$1
    shift
    if pid_alive; then
        local pid i
        pid="$(cat "$PIDFILE")"
        say "stopping pid $pid"
        if [ $# -eq 0 ] || ! "$@" >/dev/null 2>&1; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
        for ((i = 0; i < grace * 5; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid still alive after ${grace}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5 # the kernel frees its ports just after
        fi
        say "stopped"
    else
        say "not running"
    fi
    rm -f "$PIDFILE"
}

tls_files() { # DIR: a local CA and a server certificate for 127.0.0.1 and localhost, made once:
    # DIR/ca.crt (what clients trust), DIR/server.crt and DIR/server.key (PKCS#8), DIR/server.pem
    # (key and certificate, a Kafka PEM keystore), DIR/truststore.p12 (the CA, for JVM clients)
    local dir=$1
    [ -s "$dir/server.pem" ] && [ -s "$dir/truststore.p12" ] && return 0
    command -v openssl >/dev/null || die "openssl is missing (apt-get install openssl)"
    mkdir -p "$dir"
    local out="$dir/openssl.out"
    (
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=atp-stream local CA" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt"
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$dir/server.key" -out "$dir/server.csr"
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 825 -extfile "$dir/server.ext" -out "$dir/server.crt"
        cat "$dir/server.key" "$dir/server.crt" >"$dir/server.pem"
    ) >"$out" 2>&1 || { cat "$out" >&2; die "could not generate TLS certificates in ${dir#"$ROOT"/}"; }
    chmod 644 "$dir/ca.crt" "$dir/server.crt"
    # A truststore for JVM clients: the CA only, no secret in it.
    rm -f "$dir/truststore.p12"
    if command -v keytool >/dev/null; then
        # unencrypted and without integrity password, so a JVM reads it with no password set
        keytool -importcert -noprompt -alias atp-local-ca -file "$dir/ca.crt" -storetype PKCS12 \
            -J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE -J-Dkeystore.pkcs12.macAlgorithm=NONE \
            -keystore "$dir/truststore.p12" -storepass changeit >>"$out" 2>&1 \
            || { cat "$out" >&2; die "keytool could not write ${dir#"$ROOT"/}/truststore.p12"; }
    fi
    say "generated a local CA and a server certificate in ${dir#"$ROOT"/}"
}

purge_home() { # with --purge, removes HOME_DIR
    [ "${1:-}" = "--purge" ] || return 0
    rm -rf "$HOME_DIR"
    say "removed ${HOME_DIR#"$ROOT"/}"
}
