#!/usr/bin/env bash
# Build the local control-plane binaries from Go modules, into a version-keyed cache.
#
#   e2e/cluster/build-deps.sh          # builds what is missing; last stdout line = bin dir
#
# Env: ARGO_RS_CACHE (default ~/.cache/argo-rs), BUILD_NICE (default 10), GO_PARALLEL (default 2).
# Versions: kube and etcd are pinned by the wrapper modules in gomod/{kube,etcd}/go.mod;
# kwok, helm and istio.io/api below. Progress goes to stderr, only the bin dir to stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${ARGO_RS_CACHE:-$HOME/.cache/argo-rs}
KWOK_VERSION=v0.8.0
# Helm 4 (v3.22.0 is served by the proxy but not approved); the charts (apiVersion v2) lint,
# render and install unchanged with it, and e2e/tests/charts.rs asserts its schema messages.
HELM_MODULE=helm.sh/helm/v4
HELM_VERSION=v4.3.2
ISTIO_API_VERSION=v1.32.0

log() { echo "[build-deps] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

modver() { # modver GOMOD MODULE -> version required in that go.mod
  awk -v m="$2" '($1 == m && $2 ~ /^v/) {print $2; exit} ($1 == "require" && $2 == m) {print $3; exit}' "$1"
}

KUBE_VERSION=$(modver "$HERE/gomod/kube/go.mod" k8s.io/kubernetes)
ETCD_VERSION=$(modver "$HERE/gomod/etcd/go.mod" go.etcd.io/etcd/server/v3)
[[ -n $KUBE_VERSION && -n $ETCD_VERSION ]] || die "cannot read versions from gomod/*/go.mod"

BIN=$CACHE/k8s-$KUBE_VERSION/bin
LOGS=$CACHE/logs
mkdir -p "$BIN" "$LOGS" "$CACHE/go/mod" "$CACHE/go/build"
export GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build CGO_ENABLED=0 GOTOOLCHAIN=local
export GOFLAGS="-p=${GO_PARALLEL:-2} -buildvcs=false -mod=readonly"
NICE=(nice -n "${BUILD_NICE:-10}")

# up_to_date NAME VERSION: the binary exists and its stamp file says VERSION.
up_to_date() { [[ -x $BIN/$1 && "$(cat "$BIN/.$1.version" 2>/dev/null)" == "$2" ]]; }
stamp() { echo "$2" > "$BIN/.$1.version"; }

timed() { # timed NAME VERSION HINT CMD... : run CMD with progress lines, timing and a log file
  local name=$1 ver=$2 hint=$3 start; shift 3
  log "building $name $ver ($hint; log: $LOGS/$name.log)..."
  start=$(date +%s)
  if ! "$@" >"$LOGS/$name.log" 2>&1; then
    tail -n 30 "$LOGS/$name.log" >&2
    die "build of $name $ver failed"
  fi
  stamp "$name" "$ver"
  log "built $name $ver in $(( $(date +%s) - start ))s"
}

# Kubernetes binaries, stamped the way hack/lib/version.sh does.
minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldf="-s -w"
for kv in gitVersion="$KUBE_VERSION" gitMajor=1 gitMinor="$minor" gitTreeState=clean \
          buildDate=1970-01-01T00:00:00Z; do
  ldf+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done
build_kube() { # build_kube NAME
  (cd "$HERE/gomod/kube" && "${NICE[@]}" go build -trimpath -tags selinux,notest \
    -ldflags "$ldf" -o "$BIN/$1.tmp" "k8s.io/kubernetes/cmd/$1") && mv "$BIN/$1.tmp" "$BIN/$1"
}
build_etcd() {
  (cd "$HERE/gomod/etcd" && "${NICE[@]}" go build -trimpath -ldflags "-s -w" \
    -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3) && mv "$BIN/etcd.tmp" "$BIN/etcd"
}
go_install() { # go_install NAME PKG@VER [LDFLAGS]: no replace directives upstream, so plain `go install`
  local gobin; gobin=$(mktemp -d)
  GOBIN=$gobin GOFLAGS="${GOFLAGS/-mod=readonly/}" "${NICE[@]}" go install -trimpath -ldflags "-s -w ${3:-}" "$2" \
    && mv "$gobin/$1" "$BIN/$1"; local rc=$?; rm -rf "$gobin"; return $rc
}

up_to_date etcd "$ETCD_VERSION" || timed etcd "$ETCD_VERSION" "cold build ~1 min" build_etcd
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  hint="cold build ~0.5-3 min"; [[ $b == kube-apiserver ]] && hint="cold build, ~5-10 min on 2 cores"
  up_to_date "$b" "$KUBE_VERSION" || timed "$b" "$KUBE_VERSION" "$hint" build_kube "$b"
done
up_to_date kwok "$KWOK_VERSION" ||
  timed kwok "$KWOK_VERSION" "cold build ~2-3 min" go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
up_to_date helm "$HELM_VERSION" ||
  timed helm "$HELM_VERSION" "cold build ~2-3 min" go_install helm "$HELM_MODULE/cmd/helm@$HELM_VERSION" \
    "-X $HELM_MODULE/internal/version.version=$HELM_VERSION"

# kwok's own Stage objects (node initialize and heartbeat, pod ready/complete/delete), taken from
# the kwok module at build time rather than copied into this repository.
STAGES=$CACHE/k8s-$KUBE_VERSION/kwok-stages
if [[ "$(cat "$STAGES/.version" 2>/dev/null)" != "$KWOK_VERSION" ]]; then
  log "extracting kwok stages from sigs.k8s.io/kwok $KWOK_VERSION"
  kwok_dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$STAGES.tmp"
  for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
    pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    cp "$kwok_dir/kustomize/stage/$stage.yaml" "$STAGES.tmp/"
  done
  echo "$KWOK_VERSION" > "$STAGES.tmp/.version"
  rm -rf "$STAGES" && mv "$STAGES.tmp" "$STAGES"
fi

# Istio CRDs (VirtualService, DestinationRule) from the istio.io/api module.
ISTIO_CRDS=$CACHE/k8s-$KUBE_VERSION/istio-crds.yaml
if [[ "$(cat "$ISTIO_CRDS.version" 2>/dev/null)" != "$ISTIO_API_VERSION" ]]; then
  log "extracting Istio CRDs from istio.io/api $ISTIO_API_VERSION"
  "$HERE/istio-crds.sh" "$ISTIO_API_VERSION" > "$ISTIO_CRDS.tmp"
  mv "$ISTIO_CRDS.tmp" "$ISTIO_CRDS"
  echo "$ISTIO_API_VERSION" > "$ISTIO_CRDS.version"
fi

# Debian packages: prometheus (for metric-provider tests) and openssl (certs).
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v prometheus >/dev/null || missing+=(prometheus)
if (( ${#missing[@]} )); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "${missing[@]}" >"$LOGS/apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update first"
    apt-get update -q >>"$LOGS/apt.log" 2>&1 || true
    apt-get install -y -q "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
      { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
fi

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm; do
  [[ -x $BIN/$b ]] || die "missing $BIN/$b"
done
log "all binaries present: etcd $ETCD_VERSION, kubernetes $KUBE_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION"
echo "$BIN"
