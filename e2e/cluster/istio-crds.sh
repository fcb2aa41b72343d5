#!/usr/bin/env bash
# Print the Istio VirtualService and DestinationRule CRDs (networking.istio.io) on stdout.
#
#   e2e/cluster/istio-crds.sh [ISTIO_API_VERSION]
#
# Source: kubernetes/customresourcedefinitions.gen.yaml of the istio.io/api Go module.
# If that module cannot be fetched, print minimal structural CRDs (spec/status preserve unknown fields).
# Uses GOMODCACHE as set by the caller (build-deps.sh points it at ~/.cache/argo-rs/go/mod).
set -euo pipefail

ver=${1:-v1.32.0}
wanted='virtualservices.networking.istio.io|destinationrules.networking.istio.io'

dir=$(cd "${TMPDIR:-/tmp}" && GOFLAGS='' go mod download -json "istio.io/api@$ver" 2>/dev/null |
  sed -n 's/.*"Dir": "\(.*\)".*/\1/p') || true
gen=${dir:+$dir/kubernetes/customresourcedefinitions.gen.yaml}

if [[ -n $gen && -f $gen ]]; then
  echo "# From istio.io/api@$ver kubernetes/customresourcedefinitions.gen.yaml"
  # Split on '---' and keep the documents whose metadata.name is one we want.
  awk -v re="^  name: ($wanted)\$" '
    function flush() { if (keep) printf "---\n%s", doc; doc = ""; keep = 0 }
    /^---/ { flush(); next }
    { doc = doc $0 "\n"; if ($0 ~ re) keep = 1 }
    END { flush() }' "$gen"
  exit 0
fi

echo "[istio-crds] istio.io/api@$ver unavailable, writing minimal CRDs" >&2
for kind in VirtualService DestinationRule; do
  lower=$(echo "$kind" | tr '[:upper:]' '[:lower:]')
  cat <<EOF
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ${lower}s.networking.istio.io
spec:
  group: networking.istio.io
  names: {kind: $kind, listKind: ${kind}List, plural: ${lower}s, singular: $lower}
  scope: Namespaced
  versions:
EOF
  for v in v1 v1beta1 v1alpha3; do
    storage=false; [[ $v == v1 ]] && storage=true
    cat <<EOF
  - name: $v
    served: true
    storage: $storage
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
EOF
  done
done
