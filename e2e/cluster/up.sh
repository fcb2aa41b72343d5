#!/usr/bin/env bash
# Start a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok with N fake Nodes) as plain processes on free loopback ports.
#
#   e2e/cluster/up.sh WORKDIR          # WORKDIR must be new or empty
#   eval "$(e2e/cluster/up.sh WORKDIR)"  # stdout is one line: export KUBECONFIG=WORKDIR/kubeconfig
#
# Writes WORKDIR/{kubeconfig,env,pki/,logs/*.log,pids/*.pid}. Progress goes to stderr.
# Exit 0 when ready; non-zero after printing the failing component's log tail and stopping
# whatever was started. Stop with e2e/cluster/down.sh WORKDIR.
#
# Env: ARGO_RS_BIN (bin dir; default: run build-deps.sh), KWOK_NODES (default 3),
#      KWOK_NODE_PODS (pods each Node holds, default 1000, at most 4000: each Node has a /20 pod CIDR),
#      UP_TIMEOUT (seconds per wait, default 120), CRD_DIR (default REPO/charts/argo-rollouts-crds/crds),
#      EXTRA_CRDS (colon-separated CRD files or dirs of *.yaml, installed before KCM like the others),
#      AUDIT_LOG (1: the apiserver writes every request to WORKDIR/logs/audit.log, JSON lines at
#      Metadata level without the RequestReceived stage; default off),
#      KUBE_CLIENT_QPS (client-side rate limit of KCM and the scheduler, default 100; burst is twice that),
#      SCALE_FLAGS (1: API server and etcd limits for thousands of objects, as scale-bench uses them:
#      --max-requests-inflight=3000 --max-mutating-requests-inflight=1000, etcd quota 8 GiB and
#      --max-request-bytes 10 MiB; default off).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[[ $# -eq 1 ]] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
T0=$(date +%s%N)
NODES=${KWOK_NODES:-3}
TIMEOUT=${UP_TIMEOUT:-120}
CRD_DIR=${CRD_DIR:-$REPO/charts/argo-rollouts-crds/crds}
if ! [[ $NODES =~ ^[0-9]+$ ]] || (( NODES < 1 || NODES > 16 )); then
  echo "KWOK_NODES must be 1..16" >&2; exit 2
fi
NODE_PODS=${KWOK_NODE_PODS:-1000}
if ! [[ $NODE_PODS =~ ^[0-9]+$ ]] || (( NODE_PODS < 1 || NODE_PODS > 4000 )); then
  echo "KWOK_NODE_PODS must be 1..4000" >&2; exit 2
fi
QPS=${KUBE_CLIENT_QPS:-100}
if ! [[ $QPS =~ ^[0-9]+$ ]] || (( QPS < 1 )); then
  echo "KUBE_CLIENT_QPS must be a positive integer" >&2; exit 2
fi

log() { echo "[up $(elapsed)s] $*" >&2; }
elapsed() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }

mkdir -p "$1"
W=$(cd "$1" && pwd)
if [[ -n "$(ls -A "$W")" ]]; then echo "[up] $W is not empty; use a fresh WORKDIR" >&2; exit 2; fi
mkdir -p "$W"/{pki,logs,pids,kwok-home,apiserver}

BIN=${ARGO_RS_BIN:-$("$HERE/build-deps.sh" | tail -n 1)}
ISTIO_CRDS=${ISTIO_CRDS:-$(dirname "$BIN")/istio-crds.yaml}
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [[ -x $BIN/$b ]] || { echo "[up] missing $BIN/$b; run e2e/cluster/build-deps.sh" >&2; exit 2; }
done
k() { "$BIN/kubectl" --kubeconfig "$W/kubeconfig" --request-timeout=10s "$@"; }

# ---- failure handling --------------------------------------------------------------------
CURRENT=setup READY=0
on_exit() {
  local rc=$?
  (( READY )) && return 0
  log "FAILED at component '$CURRENT' (exit $rc)"
  if [[ -f $W/logs/$CURRENT.log ]]; then
    echo "----- tail of $W/logs/$CURRENT.log -----" >&2
    tail -n 40 "$W/logs/$CURRENT.log" >&2
    echo "-----" >&2
  fi
  "$HERE/down.sh" "$W" >&2 || true
  exit $(( rc ? rc : 1 ))
}
trap on_exit EXIT
trap 'exit 130' INT TERM
fail() { log "$*"; exit 1; }

start() { # start NAME CMD... : run detached, log to logs/NAME.log, pid to pids/NAME.pid
  local name=$1; shift
  CURRENT=$name
  log "starting $name"
  setsid "$@" </dev/null >"$W/logs/$name.log" 2>&1 &
  echo $! >"$W/pids/$name.pid"
}
all_alive() { # sets CURRENT to the first dead component
  local f
  for f in "$W"/pids/*.pid; do
    kill -0 "$(<"$f")" 2>/dev/null || { CURRENT=$(basename "$f" .pid); return 1; }
  done
}
wait_for() { # wait_for COMPONENT DESCRIPTION CMD...
  local comp=$1 desc=$2 deadline=$((SECONDS + TIMEOUT)); shift 2
  CURRENT=$comp
  until "$@" >/dev/null 2>&1; do
    all_alive || fail "process '$CURRENT' exited while waiting for $desc"
    (( SECONDS < deadline )) || fail "timed out after ${TIMEOUT}s waiting for $desc"
    sleep 0.2
  done
  CURRENT=$comp
  log "ok: $desc"
}

# ---- ports ------------------------------------------------------------------------------
PICKED=" "
pick_port() { # pick_port VAR: a random free port in 20000-31999 (below the ephemeral range)
  local p _
  for _ in {1..200}; do
    p=$((20000 + RANDOM % 12000))
    [[ $PICKED == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      PICKED+="$p "; printf -v "$1" '%s' "$p"; return 0
    fi
  done
  fail "no free port found"
}
pick_port ETCD_PORT; pick_port ETCD_PEER_PORT; pick_port API_PORT
cat >"$W/env" <<EOF
export KUBECONFIG=$W/kubeconfig
export ARGO_RS_BIN=$BIN
export PATH=$BIN:\$PATH
export KUBE_API_SERVER=https://127.0.0.1:$API_PORT
export KUBE_API_PORT=$API_PORT
export ETCD_PORT=$ETCD_PORT
export ETCD_PEER_PORT=$ETCD_PEER_PORT
EOF

# ---- PKI --------------------------------------------------------------------------------
CURRENT=pki
log "generating certificates"
(
  cd "$W/pki"
  exec 2>"$W/logs/pki.log"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=argo-rs-e2e-ca \
    -keyout ca.key -out ca.crt -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature
  sign() { # sign NAME SUBJECT EXTENSIONS
    openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -out "$1.crt" -extfile <(printf '%b' "$3")
  }
  sans="IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default"
  sans+=",DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign apiserver /CN=kube-apiserver \
    "subjectAltName=$sans\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE"
  sign admin "/O=system:masters/CN=argo-rs-admin" \
    "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=CA:FALSE"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
  openssl pkey -in sa.key -pubout -out sa.pub
  chmod 600 ./*.key
)
b64() { base64 -w0 <"$1"; }
cat >"$W/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: argo-rs-e2e
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$W/pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$W/pki/admin.crt")
    client-key-data: $(b64 "$W/pki/admin.key")
contexts:
- name: argo-rs-e2e
  context: {cluster: argo-rs-e2e, user: admin, namespace: default}
current-context: argo-rs-e2e
EOF
chmod 600 "$W/kubeconfig"

# ---- etcd + kube-apiserver --------------------------------------------------------------
AUDIT_ARGS=()
if [[ ${AUDIT_LOG:-0} == 1 ]]; then
  cat >"$W/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
EOF
  # blocking: every request is logged before it is answered (nothing dropped under load);
  # maxsize is in MB, so the log is never rotated in a test run.
  AUDIT_ARGS=(--audit-policy-file="$W/audit-policy.yaml" --audit-log-path="$W/logs/audit.log"
    --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=100000 --audit-log-maxbackup=1)
fi

ETCD_QUOTA=4294967296 ETCD_SCALE_ARGS=() APISERVER_SCALE_ARGS=()
if [[ ${SCALE_FLAGS:-0} == 1 ]]; then
  ETCD_QUOTA=8589934592
  ETCD_SCALE_ARGS=(--max-request-bytes=10485760)
  APISERVER_SCALE_ARGS=(--max-requests-inflight=3000 --max-mutating-requests-inflight=1000)
fi

start etcd "$BIN/etcd" --name=default --data-dir="$W/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync=true --log-level=warn --quota-backend-bytes="$ETCD_QUOTA" \
  --auto-compaction-mode=periodic --auto-compaction-retention=5m "${ETCD_SCALE_ARGS[@]}"
wait_for etcd "etcd /health" curl -fsS "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --cert-dir="$W/apiserver" \
  --tls-cert-file="$W/pki/apiserver.crt" --tls-private-key-file="$W/pki/apiserver.key" \
  --client-ca-file="$W/pki/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$W/pki/sa.pub" --service-account-signing-key-file="$W/pki/sa.key" \
  --authorization-mode=Node,RBAC \
  --service-cluster-ip-range=10.96.0.0/16 \
  --endpoint-reconciler-type=none \
  --allow-privileged=true --profiling=false --v=1 "${AUDIT_ARGS[@]}" "${APISERVER_SCALE_ARGS[@]}"
wait_for kube-apiserver "kube-apiserver /readyz" \
  curl -fsS --cacert "$W/pki/ca.crt" --cert "$W/pki/admin.crt" --key "$W/pki/admin.key" \
  "https://127.0.0.1:$API_PORT/readyz"

# ---- CRDs, before KCM so the garbage collector's first discovery already sees them --------
crd_served() { # crd_served CRD-NAME: every served version lists the plural in discovery
  local group plural versions v
  read -r group plural versions < <(k get crd "$1" -o \
    jsonpath='{.spec.group} {.spec.names.plural} {.spec.versions[?(@.served==true)].name}')
  for v in $versions; do
    k get --raw "/apis/$group/$v" | grep -q "\"name\":\"$plural\"" || return 1
  done
}
CURRENT=crds
crd_files=()
shopt -s nullglob
crd_files+=("$CRD_DIR"/*.yaml)
[[ -f $ISTIO_CRDS ]] && crd_files+=("$ISTIO_CRDS")
IFS=: read -ra extra <<<"${EXTRA_CRDS:-}"
for e in "${extra[@]}"; do
  if [[ -d $e ]]; then crd_files+=("$e"/*.yaml); elif [[ -f $e ]]; then crd_files+=("$e"); fi
done
shopt -u nullglob
if (( ${#crd_files[@]} )); then
  log "installing CRDs from ${#crd_files[@]} file(s)"
  k apply --server-side --force-conflicts --field-manager=argo-rs-e2e -o name "${crd_files[@]/#/-f}" \
    >"$W/crds.applied" 2>"$W/logs/crds.log" || fail "kubectl apply of the CRDs failed"
  crds=()
  while read -r name; do crds+=("${name#*/}"); done <"$W/crds.applied"
  [[ ${#crds[@]} -gt 0 ]] || fail "no CRDs were applied"
  "$BIN/kubectl" --kubeconfig "$W/kubeconfig" wait --for=condition=Established --timeout="${TIMEOUT}s" \
    "${crds[@]/#/crd/}" >/dev/null
  for c in "${crds[@]}"; do wait_for kube-apiserver "discovery of $c" crd_served "$c"; done
else
  log "no CRD files found (CRD_DIR=$CRD_DIR), skipping"
fi

# The namespace our controllers (like Argo's) keep their leader-election Leases in by default.
k create namespace argo-rollouts >/dev/null 2>>"$W/logs/crds.log" || fail "cannot create namespace argo-rollouts"

# ---- controllers, scheduler, kwok -------------------------------------------------------
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$W/kubeconfig" --leader-elect=false \
  --bind-address=127.0.0.1 --secure-port=0 \
  --controllers='*' \
  --root-ca-file="$W/pki/ca.crt" --service-account-private-key-file="$W/pki/sa.key" \
  --node-monitor-period=5s --node-monitor-grace-period=40s \
  --kube-api-qps="$QPS" --kube-api-burst=$((2 * QPS)) --v=1

cat >"$W/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $W/kubeconfig
  qps: $QPS
  burst: $((2 * QPS))
leaderElection:
  leaderElect: false
EOF
start kube-scheduler "$BIN/kube-scheduler" --config="$W/scheduler.yaml" \
  --bind-address=127.0.0.1 --secure-port=0 --v=1

{ for s in "$(dirname "$BIN")"/kwok-stages/*.yaml; do echo "---"; cat "$s"; done; } >"$W/kwok.yaml"
# HOME is redirected because kwok reads ~/.kwok/kwok.yaml first if it exists.
start kwok env HOME="$W/kwok-home" "$BIN/kwok" --kubeconfig="$W/kubeconfig" --config="$W/kwok.yaml" \
  --manage-all-nodes=true --node-lease-duration-seconds=40 --cidr=10.244.0.0/16

CURRENT=nodes
log "creating $NODES kwok nodes"
for ((i = 0; i < NODES; i++)); do
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
spec:
  podCIDR: 10.244.$((i * 16)).0/20
  podCIDRs: [10.244.$((i * 16)).0/20]
status:
  addresses:
  - {type: InternalIP, address: 10.240.0.$((i + 1))}
  - {type: Hostname, address: kwok-node-$i}
  allocatable: {cpu: "1000", memory: 1Ti, pods: "$NODE_PODS"}
  capacity: {cpu: "1000", memory: 1Ti, pods: "$NODE_PODS"}
EOF
done >"$W/nodes.yaml"
k apply -f "$W/nodes.yaml" >/dev/null

nodes_ready() { # all NODES nodes Ready=True and without the not-ready/unreachable taints
  local out
  local ready='{.status.conditions[?(@.type=="Ready")].status}'
  out=$(k get nodes -l type=kwok -o jsonpath="{range .items[*]}$ready {.spec.taints[*].key}{\"\\n\"}{end}")
  [[ $(grep -c '^True *$' <<<"$out") -eq $NODES ]]
}
sa_ready() { k -n default get sa default && k -n kube-system get sa default; }
wait_for kube-controller-manager "default ServiceAccount in default and kube-system" sa_ready
wait_for kwok "$NODES nodes Ready and untainted" nodes_ready

# Canary: one bare Pod must be scheduled and made Ready (scheduler + kwok), then deleted.
CURRENT=kube-scheduler
k -n kube-system run up-canary --image=canary --restart=Never >/dev/null
canary_ready() {
  [[ $(k -n kube-system get pod up-canary \
    -o jsonpath='{.status.podIP}/{.status.conditions[?(@.type=="Ready")].status}') == ?*/True ]]
}
wait_for kube-scheduler "canary pod scheduled and Ready" canary_ready
k -n kube-system delete pod up-canary --wait=true --timeout=30s >/dev/null

READY=1
log "cluster ready in $(elapsed)s (api https://127.0.0.1:$API_PORT, etcd $ETCD_PORT, logs in $W/logs)"
echo "export KUBECONFIG=$W/kubeconfig"
