#!/usr/bin/env bash
# Build the integration-test control plane from upstream Go modules (docs/contributing.md).
#
# Produces static binaries of kube-apiserver, kube-controller-manager and kubectl
# (k8s.io/kubernetes at K8S_VERSION), etcd (go.etcd.io/etcd/server/v3 at ETCD_VERSION)
# and helm (helm.sh/helm/v3 at HELM_VERSION) in
#   ${FTI_CACHE_DIR:-$HOME/.cache/fti-operator}/controlplane/<K8S_VERSION>/bin
# with the Go module and build caches beside it, so nothing lands in the repository
# (FTI_CONTROLPLANE_TRIM=1 deletes those caches after a successful build).
#
# Idempotent: each binary has a stamp recording the version (and Go) it was built
# with; a present, matching binary is reused, anything else is rebuilt. bin/VERSIONS
# summarises a complete build. Pass --force to rebuild everything.
#
# Why a scratch module: k8s.io/kubernetes cannot be `go install`ed at a version because
# its go.mod replaces every k8s.io/* staging module with ./staging/... and requires them
# at v0.0.0. A module that requires it and replaces each staging module with the
# published v0.X.Y of the same release builds the identical source.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.8}"
# The etcd that this Kubernetes release is qualified with: build/dependencies.yaml of
# k8s.io/kubernetes@v1.35.8 names etcd 3.6.6 (checked again below after download).
ETCD_VERSION="${ETCD_VERSION:-v3.6.6}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"

CACHE_ROOT="${FTI_CACHE_DIR:-$HOME/.cache/fti-operator}"
BASE="$CACHE_ROOT/controlplane/$K8S_VERSION"
BIN="$BASE/bin"
STAMP="$BIN/VERSIONS"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if ! command -v go >/dev/null 2>&1; then
    for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
        if [[ -x "$candidate" ]]; then PATH="$(dirname "$candidate"):$PATH"; break; fi
    done
fi
if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: Go toolchain not found (need Go >= 1.26 on PATH; see https://go.dev/dl/)" >&2
    exit 2
fi

# Keep the caches out of the user's GOPATH and out of the repo; never download a
# different toolchain behind the user's back (the pinned modules need <= go 1.26).
export GOMODCACHE="$BASE/go/mod"
export GOCACHE="$BASE/go/build"
export GOTOOLCHAIN=local
export CGO_ENABLED=0
export GOFLAGS="-mod=mod -buildvcs=false"
# Checksums stay verified through sum.golang.org: no GONOSUMDB/GONOSUMCHECK/GOINSECURE.
unset GONOSUMDB GONOSUMCHECK GOINSECURE GOPRIVATE || true

GO_VERSION="$(go env GOVERSION)"
WANT_STAMP="k8s=$K8S_VERSION etcd=$ETCD_VERSION helm=$HELM_VERSION go=$GO_VERSION"
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm)

# current NAME VERSION: the binary exists and was built from VERSION with this Go.
current() { [[ -x "$BIN/$1" && -f "$BIN/.$1.stamp" && "$(cat "$BIN/.$1.stamp")" == "$2 go=$GO_VERSION" ]]; }
stamp() { echo "$2 go=$GO_VERSION" >"$BIN/.$1.stamp"; }

all_current() {
    current etcd "$ETCD_VERSION" && current helm "$HELM_VERSION" && current kube-apiserver "$K8S_VERSION" \
        && current kube-controller-manager "$K8S_VERSION" && current kubectl "$K8S_VERSION"
}

if [[ $FORCE == 1 ]]; then
    rm -f "$STAMP" "$BIN"/.*.stamp
fi
if [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$WANT_STAMP" ]] && all_current; then
    echo "control plane binaries up to date in $BIN ($WANT_STAMP)"
    exit 0
fi
rm -f "$STAMP"
mkdir -p "$BIN" "$BASE/src"

now() { date +%s; }
TOTAL_START=$(now)

# report NAME START: prints the elapsed time for one binary.
report() { echo "built $1 in $(( $(now) - $2 ))s"; }

# ---------------------------------------------------------------- Kubernetes
k8s_module() {
    local dir="$BASE/src/kubernetes"
    mkdir -p "$dir"
    cd "$dir"
    if [[ ! -f go.mod ]]; then
        go mod init fti.dev/controlplane/kubernetes >/dev/null 2>&1
    fi
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    # The staging modules are listed in k8s.io/kubernetes's own go.mod as
    # "k8s.io/<name> => ./staging/src/k8s.io/<name>"; all of them must be replaced,
    # since k8s.io/kubernetes requires them at the unpublished v0.0.0.
    local gomod staging minor moddir etcd_wanted
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    moddir="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    etcd_wanted="$(grep -A1 'name: "etcd"' "$moddir/build/dependencies.yaml" | sed -n 's/.*version: *//p' | head -n1)"
    if [[ -n "$etcd_wanted" && "v$etcd_wanted" != "$ETCD_VERSION" ]]; then
        echo "build.sh: WARNING: kubernetes $K8S_VERSION is qualified with etcd v$etcd_wanted, building $ETCD_VERSION" >&2
    fi
    staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => ./staging/.*#\1#p' "$gomod")"
    if [[ -z "$staging" ]]; then
        echo "build.sh: found no staging replaces in $gomod" >&2
        exit 1
    fi
    minor="v0.${K8S_VERSION#v1.}"
    local m
    for m in $staging; do
        go mod edit -replace="$m=$m@$minor"
    done
    echo "kubernetes $K8S_VERSION: replaced $(wc -w <<<"$staging") staging modules with $minor"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
           "k8s.io/kubernetes/cmd/kube-controller-manager@$K8S_VERSION" \
           "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
}

k8s_ldflags() {
    # The same variables hack/lib/version.sh sets, so /version reports the release.
    local commit major minor date
    commit="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' | head -n1)"
    major="${K8S_VERSION#v}"; major="${major%%.*}"
    minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
    date="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"Time": "\(.*\)",*$/\1/p' | head -n1)"
    local pkg flags="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
        [[ -n "$commit" ]] && flags+=" -X $pkg.gitCommit=$commit"
    done
    echo "$flags"
}

build_k8s() {
    local need=0 b
    for b in kube-apiserver kube-controller-manager kubectl; do current "$b" "$K8S_VERSION" || need=1; done
    [[ $need == 1 ]] || return 0
    local start
    start=$(now)
    (k8s_module)
    echo "resolved kubernetes modules in $(( $(now) - start ))s"
    local flags
    flags="$(cd "$BASE/src/kubernetes" && k8s_ldflags)"
    for b in kube-apiserver kube-controller-manager kubectl; do
        current "$b" "$K8S_VERSION" && continue
        start=$(now)
        (cd "$BASE/src/kubernetes" && go build -trimpath -ldflags "$flags" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b")
        mv "$BIN/$b.tmp" "$BIN/$b"
        stamp "$b" "$K8S_VERSION"
        report "$b" "$start"
    done
}

# ---------------------------------------------------------------------- etcd
build_etcd() {
    current etcd "$ETCD_VERSION" && return 0
    local dir="$BASE/src/etcd" start
    start=$(now)
    mkdir -p "$dir"
    # The upstream etcd binary is the root module go.etcd.io/etcd/v3, whose go.mod
    # replaces its sibling modules with ../ paths, so it cannot be built at a version.
    # Its main is a two-line wrapper around etcdmain.Main; this is the same wrapper.
    cat >"$dir/main.go" <<'EOF'
// Command etcd is upstream etcd: the same entry point as go.etcd.io/etcd/v3's main.go.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
EOF
    (
        cd "$dir"
        [[ -f go.mod ]] || go mod init fti.dev/controlplane/etcd >/dev/null 2>&1
        go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/api/v3@$ETCD_VERSION" \
            "go.etcd.io/etcd/client/v3@$ETCD_VERSION" "go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" \
            "go.etcd.io/etcd/pkg/v3@$ETCD_VERSION"
        go mod tidy
        local commit
        commit="$(go mod download -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' | head -n1)"
        # The proxy's .info carries the commit only for some releases (not v3.6.6);
        # without it keep etcd's own "Not provided" rather than an empty SHA.
        local flags="-s -w"
        [[ -n "$commit" ]] && flags+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=${commit:0:9}"
        go build -trimpath -ldflags "$flags" -o "$BIN/etcd.tmp" .
    )
    mv "$BIN/etcd.tmp" "$BIN/etcd"
    stamp etcd "$ETCD_VERSION"
    report etcd "$start"
}

# ---------------------------------------------------------------------- helm
build_helm() {
    current helm "$HELM_VERSION" && return 0
    local dir="$BASE/src/helm" start
    start=$(now)
    mkdir -p "$dir"
    (
        cd "$dir"
        [[ -f go.mod ]] || go mod init fti.dev/controlplane/helm >/dev/null 2>&1
        go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
        local commit moddir cgv major minor flags pkg
        commit="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"Hash": "\(.*\)",*$/\1/p' | head -n1)"
        flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
        [[ -n "$commit" ]] && flags+=" -X helm.sh/helm/v3/internal/version.gitCommit=$commit"
        flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
        # Helm's Makefile derives the default Kubernetes capabilities from client-go's
        # version (v0.N -> 1.N); the packages holding them moved between releases, so
        # find them instead of hard-coding.
        moddir="$(go list -m -f '{{.Dir}}' helm.sh/helm/v3)"
        cgv="$(go list -m -f '{{.Version}}' k8s.io/client-go)"; cgv="${cgv#v}"
        major=$(( ${cgv%%.*} + 1 )); minor="${cgv#*.}"; minor="${minor%%.*}"
        for pkg in $(grep -rl --include='*.go' '^[[:space:]]*k8sVersionMajor *=' "$moddir/pkg" 2>/dev/null | xargs -r -n1 dirname | sort -u); do
            pkg="helm.sh/helm/v3${pkg#"$moddir"}"
            flags+=" -X $pkg.k8sVersionMajor=$major -X $pkg.k8sVersionMinor=$minor"
        done
        go build -trimpath -ldflags "$flags" -o "$BIN/helm.tmp" helm.sh/helm/v3/cmd/helm
    )
    mv "$BIN/helm.tmp" "$BIN/helm"
    stamp helm "$HELM_VERSION"
    report helm "$start"
}

build_etcd
build_k8s
build_helm

echo "$WANT_STAMP" >"$STAMP"
echo "control plane built in $(( $(now) - TOTAL_START ))s into $BIN"
du -sh "$BIN" "$BASE/go/mod" "$BASE/go/build" 2>/dev/null || true

# The binaries are all the tests need; the Go caches (~5 GB) only make a rebuild
# after a version bump faster. CI caching just bin/ can drop them.
if [[ "${FTI_CONTROLPLANE_TRIM:-0}" == 1 ]]; then
    chmod -R u+w "$BASE/go" "$BASE/src" 2>/dev/null || true  # the module cache is read-only
    rm -rf "$BASE/go" "$BASE/src"
    echo "trimmed the Go caches (FTI_CONTROLPLANE_TRIM=1); kept $BIN"
fi
