#!/usr/bin/env bash
# Builds one OCI image per controller without a container daemon: static (musl) release binaries,
# then images/Containerfile FROM scratch with buildah (vfs storage, no runtime needed: the build
# only COPYs), each written as an OCI archive and checked without running a container
# (images/check-archive.py: config, labels, layer contents, static binary, `--version`).
#
#   scripts/images.sh                      # build binaries and the four images
#   scripts/images.sh --skip-build         # take the binaries already built for the musl target
#   scripts/images.sh --bin-dir DIR        # take static binaries from DIR (implies --skip-build)
#   scripts/images.sh --only rollout-controller,analysis-controller
#   scripts/images.sh --out DIR --tag TAG  # default: ~/.cache/argo-rs/images/out, the workspace version
#   scripts/images.sh --check              # CI smoke test: one image (rollout-controller), in a temp dir
#
# Images are named $IMAGE_REPO/<controller>:<tag> (IMAGE_REPO defaults to ghcr.io/argo-rollouts-rs),
# also tagged `latest` (unless --no-latest), kept in the buildah store under
# ~/.cache/argo-rs/images/store, and written to <out>/<controller>.tar (oci-archive). Load or push:
#   skopeo copy oci-archive:<out>/rollout-controller.tar docker://REGISTRY/...
#   podman load -i <out>/rollout-controller.tar
#   buildah --root ~/.cache/argo-rs/images/store --storage-driver vfs push IMAGE docker://...
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$ROOT"

TARGET=x86_64-unknown-linux-musl
ALL=(rollout-controller analysis-controller experiment-controller notification-controller)
CACHE=$HOME/.cache/argo-rs/images
IMAGE_REPO=${IMAGE_REPO:-ghcr.io/argo-rollouts-rs}
IMAGE_SOURCE=${IMAGE_SOURCE:-https://github.com/argo-rollouts-rs/argo-rollouts-rs}
VERSION=$(awk '/^\[workspace.package\]/{p=1; next} /^\[/{p=0} p && $1=="version"{gsub(/"/,"",$3); print $3; exit}' Cargo.toml)
[[ -n $VERSION ]] || { echo "no version in [workspace.package] of Cargo.toml" >&2; exit 2; }

OUT=$CACHE/out TAG=$VERSION BUILD=1 BIN_DIR="" ONLY="" LATEST=1 CHECK=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    --bin-dir) BIN_DIR=$2; BUILD=0; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --no-latest) LATEST=0; shift ;;
    --check) CHECK=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
if [[ $CHECK == 1 ]]; then
  # One image is enough to prove the toolchain, the Containerfile and the checks; nothing kept.
  ONLY=${ONLY:-rollout-controller} LATEST=0
  OUT=$(mktemp -d "${TMPDIR:-/tmp}/argo-rs-images.XXXXXX")
  CACHE=$OUT
  trap 'rm -rf "$OUT"' EXIT
fi
CONTROLLERS=("${ALL[@]}")
if [[ -n $ONLY ]]; then
  IFS=, read -r -a CONTROLLERS <<<"$ONLY"
  for c in "${CONTROLLERS[@]}"; do
    [[ " ${ALL[*]} " == *" $c "* ]] || { echo "unknown controller: $c (one of ${ALL[*]})" >&2; exit 2; }
  done
fi
BIN_DIR=${BIN_DIR:-$CARGO_TARGET_DIR/$TARGET/release}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ $REVISION == unknown || -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || REVISION=$REVISION-dirty
# Reproducible images: file times and the image's creation time are the commit's.
EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

apt_install() { # apt_install PACKAGE...: Debian packages, only as root
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "missing $*: install it (Debian: apt-get install $*) or run as root" >&2
    exit 2
  fi
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@") >&2
}

phase "tools: buildah, ca-certificates, musl target"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
[[ -s $CA_BUNDLE ]] || missing+=(ca-certificates)
if [[ $BUILD == 1 ]]; then
  ensure_rust
  command -v x86_64-linux-musl-gcc >/dev/null || missing+=(musl-tools) # ring's C and assembly
fi
[[ ${#missing[@]} == 0 ]] || apt_install "${missing[@]}"
if [[ $BUILD == 1 ]] && ! rustup target list --installed | grep -qx $TARGET; then
  rustup target add $TARGET >&2
fi

if [[ $BUILD == 1 ]]; then
  phase "cargo build --release --target $TARGET"
  pkgs=(); for c in "${CONTROLLERS[@]}"; do pkgs+=(-p "$c"); done
  # ring's C and assembly build with x86_64-linux-musl-gcc (musl-tools), which the cc crate finds
  # by itself (setting CC_<target> here would rebuild ring and everything above it whenever a
  # build without it ran in between); rustc links with its bundled musl (static-pie).
  cargo build --locked --release --target $TARGET "${pkgs[@]}"
fi

phase "buildah bud (${#CONTROLLERS[@]} images)"
STORE=(--root "$CACHE/store" --runroot "$CACHE/run" --storage-driver vfs)
CONTEXT=$CACHE/context
rm -rf "$CONTEXT" && mkdir -p "$CONTEXT" "$OUT"
cp "$CA_BUNDLE" "$CONTEXT/ca-certificates.crt"
for c in "${CONTROLLERS[@]}"; do
  [[ -x $BIN_DIR/$c ]] || { echo "no binary $BIN_DIR/$c: build it (without --skip-build)" >&2; exit 2; }
  if readelf -l "$BIN_DIR/$c" | grep -q 'program interpreter'; then
    echo "$BIN_DIR/$c is dynamically linked: a FROM scratch image needs a static (musl) binary" >&2
    exit 2
  fi
  # Only the file the image gets: symbols stripped (the release profile keeps them).
  strip -o "$CONTEXT/$c" "$BIN_DIR/$c"
  image=$IMAGE_REPO/$c:$TAG
  buildah "${STORE[@]}" bud --quiet --layers=false --timestamp "$EPOCH" \
    --build-arg BINARY="$c" --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
    --build-arg SOURCE="$IMAGE_SOURCE" \
    -f "$ROOT/images/Containerfile" -t "$image" "$CONTEXT" >/dev/null
  [[ $LATEST == 0 || $TAG == latest ]] || buildah "${STORE[@]}" tag "$image" "$IMAGE_REPO/$c:latest"
  rm -f "$OUT/$c.tar"
  buildah "${STORE[@]}" push --quiet "$image" "oci-archive:$OUT/$c.tar:$image"
  buildah "${STORE[@]}" inspect --type image \
    --format "$image: entrypoint={{.OCIv1.Config.Entrypoint}} user={{.OCIv1.Config.User}} labels={{.OCIv1.Config.Labels}}" "$image"
  echo
done
buildah "${STORE[@]}" rmi --prune >/dev/null 2>&1 || true # earlier builds' untagged images
rm -rf "$CONTEXT"

phase "check the archives"
for c in "${CONTROLLERS[@]}"; do
  /usr/bin/python3 "$ROOT/images/check-archive.py" "$OUT/$c.tar" "$c" "$VERSION" \
    --revision "$REVISION" --source "$IMAGE_SOURCE" --ref "$IMAGE_REPO/$c:$TAG"
done
if [[ $CHECK == 0 ]]; then
  echo "images in $OUT:" >&2
  ls -l "$OUT"/*.tar >&2
fi
timings
