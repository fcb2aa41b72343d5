#!/usr/bin/env bash
# Brings up a local development environment: builds our binaries and the Kubernetes components
# (cached), starts a local control plane with our CRDs, starts our controllers against it and
# deploys the seed's canary example. Prints how to use and stop it.
#
#   scripts/up.sh [WORKDIR]      # default WORKDIR: ~/.cache/argo-rs/dev-cluster
#   scripts/down.sh [WORKDIR]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
ensure_rust
W=${1:-$HOME/.cache/argo-rs/dev-cluster}
for pidfile in "$W"/pids/*.pid; do
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "a cluster already runs in $W: stop it first with scripts/down.sh $W" >&2
    exit 2
  fi
done

phase "build Go binaries (cached)"
BIN=$("$ROOT/e2e/cluster/build-deps.sh" | tail -n 1)
phase "build Rust binaries"
cargo build --workspace --bins --locked
phase "start local cluster"
rm -rf "$W"
ARGO_RS_BIN=$BIN "$ROOT/e2e/cluster/up.sh" "$W" >/dev/null
export KUBECONFIG=$W/kubeconfig

phase "start controllers"
for c in rollout-controller analysis-controller experiment-controller notification-controller; do
  case $c in
    rollout-controller) port=8090 ;;
    analysis-controller) port=8091 ;;
    experiment-controller) port=8092 ;;
    notification-controller) port=8093 ;;
  esac
  "$RUST_BIN/$c" --kubeconfig "$KUBECONFIG" --metrics-addr "127.0.0.1:$port" --healthz-addr "127.0.0.1:$port" \
    >"$W/logs/$c.log" 2>&1 &
  pid=$!
  sleep 1
  if kill -0 "$pid" 2>/dev/null; then
    echo "$pid" >"$W/pids/$c.pid"
    echo "  $c running (pid $pid, metrics http://127.0.0.1:$port/metrics, log $W/logs/$c.log)" >&2
  else
    echo "  $c: $(tail -n 1 "$W/logs/$c.log")" >&2
  fi
done

phase "deploy the seed example (2.2.2 Canary Success)"
"$BIN/kubectl" apply --server-side -f "$ROOT/examples/seed/manifest11-canary-success-test-case.yaml" >&2
timings
cat <<MSG

Local cluster ready. Use it with:

  export KUBECONFIG=$W/kubeconfig
  export PATH=$RUST_BIN:$BIN:\$PATH
  kubectl argo rollouts get rollout mock-server

Stop everything with:  scripts/down.sh $W
MSG
