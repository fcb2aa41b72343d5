#!/usr/bin/env bash
# Brings up a local development environment: builds our binaries and the Kubernetes components
# (cached), starts a local control plane with our CRDs, starts our controllers against it and
# deploys the seed's canary example. Prints how to use and stop it.
#
#   scripts/up.sh [WORKDIR]      # default WORKDIR: ~/.cache/argo-rs/dev-cluster
#   scripts/down.sh [WORKDIR]
#
# Or install through the Helm charts (charts/) onto an existing cluster instead:
#
#   KUBECONFIG=... INSTALL=charts scripts/up.sh
#
# Env for INSTALL=charts: NAMESPACE (default argo-rollouts), IMAGE_REGISTRY (image.repository
# becomes $IMAGE_REGISTRY/<controller>), IMAGE_TAG (image.tag), HELM_EXTRA_ARGS (added to every
# `helm upgrade --install`, e.g. "--set replicas=2"), SEED=1 (also deploy the seed's canary
# example into the default namespace). Remove with `helm uninstall` (printed at the end).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

if [[ ${INSTALL:-local} == charts ]]; then
  [[ -n ${KUBECONFIG:-} ]] ||
    { echo "INSTALL=charts installs onto an existing cluster: set KUBECONFIG to it" >&2; exit 2; }
  phase "build Go binaries (cached: kubectl, helm)"
  BIN=$("$ROOT/e2e/cluster/build-deps.sh" | tail -n 1)
  NS=${NAMESPACE:-argo-rollouts}
  # The CRD chart's own files, applied directly: Helm installs a chart's crds/ once and never
  # upgrades them, so a second run of this script would leave changed CRDs behind.
  phase "apply the CRDs (charts/argo-rollouts-crds/crds)"
  "$BIN/kubectl" apply --server-side --force-conflicts -f "$ROOT/charts/argo-rollouts-crds/crds/" >&2
  phase "install the controller charts into namespace $NS"
  for c in rollout-controller analysis-controller experiment-controller notification-controller; do
    args=(upgrade --install "$c" "$ROOT/charts/$c" --namespace "$NS" --create-namespace)
    [[ -n ${IMAGE_REGISTRY:-} ]] && args+=(--set "image.repository=$IMAGE_REGISTRY/$c")
    [[ -n ${IMAGE_TAG:-} ]] && args+=(--set "image.tag=$IMAGE_TAG")
    # shellcheck disable=SC2086 # HELM_EXTRA_ARGS is a list of words
    "$BIN/helm" "${args[@]}" ${HELM_EXTRA_ARGS:-} >&2
  done
  if [[ ${SEED:-0} == 1 ]]; then
    phase "deploy the seed example (2.2.2 Canary Success)"
    "$BIN/kubectl" apply --server-side -n default \
      -f "$ROOT/examples/seed/manifest11-canary-success-test-case.yaml" >&2
  fi
  timings
  cat <<MSG

Controllers installed through the charts into namespace $NS of the cluster in $KUBECONFIG:

  $BIN/helm list -n $NS
  $BIN/kubectl -n $NS get deployments,pods

Remove them with:
  $BIN/helm uninstall -n $NS rollout-controller analysis-controller experiment-controller notification-controller
MSG
  exit 0
fi

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
