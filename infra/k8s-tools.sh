#!/usr/bin/env bash
# Build the chart's test tools from the Go module proxy into .cache/bin:
#   helm         (helm.sh/helm/v3)                       lint and render the chart
#   kubeconform  (github.com/yannh/kubeconform)          validate the rendered manifests
# Idempotent: a tool whose binary already reports the pinned version is not rebuilt. The first
# build takes a few minutes (helm pulls in the Kubernetes client libraries); later runs are instant.
#
#   infra/k8s-tools.sh          build what is missing, print the binaries' paths
#   infra/k8s-tools.sh check    exit 0 when both are present at the pinned versions, 1 otherwise
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# shellcheck source=infra/versions.env
. infra/versions.env

BIN="$ROOT/.cache/bin"
HELM="$BIN/helm"
KUBECONFORM="$BIN/kubeconform"

NAME=k8s-tools
# shellcheck source=infra/lib.sh
. infra/lib.sh

# As helm's release builds do: the version it reports, and the Kubernetes version it assumes
# without a cluster (that of its client-go, v0.36 -> 1.36). A stamp records the flags built with.
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
    HELM_LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=36"
done

helm_ok() {
    [ -x "$HELM" ] && [ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ] \
        && [ "$(cat "$HELM.stamp" 2>/dev/null)" = "$HELM_LDFLAGS" ]
}
kubeconform_ok() { [ -x "$KUBECONFORM" ] && [ "$("$KUBECONFORM" -v 2>/dev/null)" = "$KUBECONFORM_VERSION" ]; }

if [ "${1:-}" = "check" ]; then
    helm_ok && kubeconform_ok
    exit
fi

need_go() {
    # The usual install location, when it is not on PATH (e.g. a non-login shell).
    command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
    command -v go >/dev/null || die "go not found; install Go 1.26 or newer (helm v3.21 and kubeconform v0.8 need it)"
}

mkdir -p "$BIN"
if helm_ok; then
    say "helm $HELM_VERSION present"
else
    need_go
    say "building helm $HELM_VERSION (a few minutes the first time)"
    t0=$SECONDS
    # nice: the machine is shared with running services.
    GOBIN="$BIN" GOFLAGS=-trimpath CGO_ENABLED=0 nice go install -ldflags "$HELM_LDFLAGS" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
    echo "$HELM_LDFLAGS" >"$HELM.stamp"
    helm_ok || die "built helm does not report $HELM_VERSION"
    say "helm built in $((SECONDS - t0))s"
fi
if kubeconform_ok; then
    say "kubeconform $KUBECONFORM_VERSION present"
else
    need_go
    say "building kubeconform $KUBECONFORM_VERSION"
    t0=$SECONDS
    GOBIN="$BIN" GOFLAGS=-trimpath nice go install -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
        "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    kubeconform_ok || die "built kubeconform does not report $KUBECONFORM_VERSION"
    say "kubeconform built in $((SECONDS - t0))s"
fi
echo "$HELM"
echo "$KUBECONFORM"
