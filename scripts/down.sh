#!/usr/bin/env bash
# Stops what scripts/up.sh started (controllers and the local cluster); keeps the logs.
set -euo pipefail
W=${1:-$HOME/.cache/argo-rs/dev-cluster}
exec "$(dirname "${BASH_SOURCE[0]}")/../e2e/cluster/down.sh" "$W"
