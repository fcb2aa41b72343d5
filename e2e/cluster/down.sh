#!/usr/bin/env bash
# Stop a cluster started by up.sh: only the PIDs recorded in WORKDIR/pids (TERM, wait, KILL).
#
#   e2e/cluster/down.sh WORKDIR
#
# Keeps WORKDIR (logs, certs, etcd data). Exit 0 when no recorded process survives and the
# ports in WORKDIR/env are free; 1 otherwise. Running it twice is harmless.
set -euo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
W=$1
[[ -d $W/pids ]] || { echo "[down] no $W/pids, nothing to stop" >&2; exit 0; }
log() { echo "[down] $*" >&2; }

# ours PIDFILE: prints the pid if that process is still running and is the binary the file is
# named after (guards against PID reuse; setsid/env only in the instant before their exec);
# zombies count as gone.
ours() {
  local pid exe
  pid=$(<"$1") || return 1
  [[ $pid =~ ^[0-9]+$ && -d /proc/$pid ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  case ${exe##*/} in "$(basename "$1" .pid)" | setsid | env) ;; *) return 1 ;; esac
  echo "$pid"
}
running() { local f; for f in "$W"/pids/*.pid; do [[ -f $f ]] && ours "$f"; done; return 0; }

# Anything else recorded here (e.g. our controllers, started by scripts/up.sh) goes first.
for f in "$W"/pids/*.pid; do
  [[ -f $f ]] || continue
  case $(basename "$f" .pid) in kwok | kube-scheduler | kube-controller-manager | kube-apiserver | etcd) continue ;; esac
  if pid=$(ours "$f"); then log "stopping $(basename "$f" .pid) (pid $pid)"; kill -TERM "$pid" 2>/dev/null || true; fi
done
# Reverse start order: clients first, etcd last.
for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  f=$W/pids/$name.pid
  [[ -f $f ]] || continue
  if pid=$(ours "$f"); then log "stopping $name (pid $pid)"; kill -TERM "$pid" 2>/dev/null || true; fi
done
for _ in {1..50}; do [[ -z $(running) ]] && break; sleep 0.2; done
for pid in $(running); do log "pid $pid did not exit on TERM, sending KILL"; kill -KILL "$pid" 2>/dev/null || true; done
for _ in {1..25}; do [[ -z $(running) ]] && break; sleep 0.2; done

rc=0
if [[ -n $(running) ]]; then log "still running: $(running | tr '\n' ' ')"; rc=1; fi
if [[ -f $W/env ]]; then
  while read -r port; do
    for _ in {1..25}; do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || continue 2; sleep 0.2; done
    log "port $port is still in use"; rc=1
  done < <(sed -n 's/^export \(KUBE_API_PORT\|ETCD_PORT\|ETCD_PEER_PORT\)=//p' "$W/env")
fi
if (( rc == 0 )); then
  for f in "$W"/pids/*.pid; do [[ -f $f ]] && mv "$f" "${f%.pid}.stopped"; done
  log "stopped; logs kept in $W/logs"
fi
exit "$rc"
