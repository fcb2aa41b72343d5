#!/usr/bin/env bash
# Regenerates everything the Rust `shared_types::hash` module takes from Go:
#   src/hash/go_layout.rs                 Go struct layout of corev1.PodTemplateSpec
#   tests/data/hash/golden.json           Go JSON bytes and hashes of tests/data/hash/templates.json
#   tests/data/hash/quantities_golden.json  canonical forms of tests/data/hash/quantities.json
# Needs Go and the module proxy (first run downloads k8s.io/api and k8s.io/apimachinery).
set -euo pipefail
cd "$(dirname "$0")"
crate=../..
data=$crate/tests/data/hash
go run . layout > "$crate/src/hash/go_layout.rs"
rustfmt --edition 2024 --config max_width=110 "$crate/src/hash/go_layout.rs"
go run . vectors < "$data/templates.json" > "$data/golden.json"
go run . quantities < "$data/quantities.json" > "$data/quantities_golden.json"
