#!/usr/bin/env bash
# Runs every test: formatting and lint checks, unit tests, then the end-to-end tests against a
# local control plane that this script starts and stops. Prints the time of each phase.
#
#   scripts/test.sh            # everything
#   E2E=0 scripts/test.sh      # skip the cluster phases
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"
ensure_rust

W=""
RESULTS=$(mktemp)
# Every `cargo test` summary also goes to $RESULTS, for the totals printed last.
run_tests() { "$@" 2>&1 | tee -a "$RESULTS"; }
cleanup() { [[ -n $W ]] && "$ROOT/e2e/cluster/down.sh" "$W" >&2 || true; }
trap cleanup EXIT

if [[ ${E2E:-1} != 0 ]]; then
  phase "build Go binaries (cached)"
  BIN=$("$ROOT/e2e/cluster/build-deps.sh" | tail -n 1)
  # The plugin's live-view test drives a real terminal.
  if ! command -v tmux >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq tmux) >&2
  fi
fi
# Real servers from Debian packages: Prometheus for the analysis tests (the analysis controller's
# provider tests and the e2e library's helper test need it in the unit phase too), and an SMTP
# server (aiosmtpd) the notification e2e tests deliver email to.
missing=()
[[ -x ${PROMETHEUS_BIN:-/usr/bin/prometheus} ]] || missing+=(prometheus)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
if [[ ${#missing[@]} -gt 0 && $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >&2
fi

phase "cargo fmt --check"
cargo fmt --all --check

phase "build Rust (debug, all targets)"
cargo build --workspace --all-targets --locked

phase "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

phase "unit and golden tests"
run_tests cargo test --workspace --locked

if [[ ${IMAGES:-1} != 0 ]]; then
  # One image (static musl build, FROM scratch with buildah, checked without running it): proves
  # the toolchain, images/Containerfile and scripts/images.sh. IMAGES=0 skips it.
  phase "container image (rollout-controller)"
  "$ROOT/scripts/images.sh" --check >&2
fi

if [[ ${E2E:-1} != 0 ]]; then
  phase "start local cluster"
  W=$(mktemp -d "${TMPDIR:-/tmp}/argo-rs-e2e.XXXXXX")
  rmdir "$W"
  ARGO_RS_BIN=$BIN "$ROOT/e2e/cluster/up.sh" "$W" >/dev/null

  phase "end-to-end tests"
  ARGO_RS_E2E_KUBECONFIG=$W/kubeconfig ARGO_RS_KUBECTL=$BIN/kubectl ARGO_RS_BIN_DIR=$RUST_BIN \
    PATH="$RUST_BIN:$BIN:$PATH" \
    run_tests cargo test -p e2e --locked -- --ignored --test-threads="${E2E_THREADS:-4}"
  # Library tests that need the cluster (leader election on real Leases).
  ARGO_RS_E2E_KUBECONFIG=$W/kubeconfig run_tests cargo test -p shared-runtime --locked -- --ignored

  phase "stop local cluster"
  "$ROOT/e2e/cluster/down.sh" "$W" >&2
  W=""
fi
timings
# One closing line with the totals over all test binaries (unit, golden and end-to-end).
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$RESULTS"
