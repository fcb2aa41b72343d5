# Shared by scripts/*.sh: repository paths, the cached Cargo target dir, timing helpers.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Heavy build output lives in ~/.cache keyed by the toolchain, so warm runs (and CI on the same
# machine) reuse it. An explicit CARGO_TARGET_DIR wins.
RUSTC_ID=$(rustc --version 2>/dev/null | tr -cd '[:alnum:].-' | cut -c1-40)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/argo-rs/cargo-target/$RUSTC_ID}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
RUST_BIN=$CARGO_TARGET_DIR/debug

PHASE_NAME="" PHASE_T0=0 TIMINGS=()
phase() { # phase NAME: ends the previous phase (printing its time) and starts NAME
  local now; now=$(date +%s)
  if [[ -n $PHASE_NAME ]]; then
    TIMINGS+=("$(printf '%-28s %4ss' "$PHASE_NAME" $((now - PHASE_T0)))")
    echo "==> $PHASE_NAME done in $((now - PHASE_T0))s" >&2
  fi
  PHASE_NAME=$1 PHASE_T0=$now
  [[ -n $1 ]] && echo "==> $1" >&2
  return 0
}
timings() { phase ""; echo "---- phase timings ----" >&2; printf '%s\n' "${TIMINGS[@]}" >&2; }

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 2; }
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >&2 || true
}
