#!/usr/bin/env bash
# The operator at scale: CPU per reconcile and peak memory with N services (default 1,000).
#
#   bash scripts/bench-operator.sh [SERVICES] [ROUNDS] [MODE]   (default 1000, 8, Recommend)
#
# Starts the loopback control plane (../shared/k8s), the digital twin of a random N-service
# app (its Deployments registered on the API server), Prometheus scraping it, and
# `graphscale operator` with one PredictiveAutoscaler selecting every Deployment (graph-trend,
# 15-s rounds). After one warm-up round it samples the operator process's CPU time
# (/proc/PID/stat, user + system) over ROUNDS rounds and prints CPU seconds per round (every
# round collects, decides and actuates for all N services; the idle watch costs are included)
# and the peak resident memory (VmHWM). Everything on 127.0.0.1, stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
services="${1:-1000}"
rounds="${2:-8}"
mode="${3:-Recommend}"
shared="${GRAPHSCALE_SHARED:-$(cd .. && pwd)/shared}"
k8s="$shared/k8s/start-apiserver.sh"
[ -f "$k8s" ] || { echo "missing $k8s (set GRAPHSCALE_SHARED)" >&2; exit 1; }
prom="${PROMETHEUS:-$(command -v prometheus || true)}"
[ -n "$prom" ] || { echo "prometheus not found (apt-get install prometheus, or set PROMETHEUS)" >&2; exit 1; }
export API_PORT="${BENCH_API_PORT:-18443}" ETCD_PORT="${BENCH_ETCD_PORT:-14379}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  FRESH=0 bash "$k8s" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cargo build --release --locked -q -p graphscale
gs="$PWD/target/release/graphscale"
# No kube-controller-manager: the twin simulates the pods, so no ReplicaSets or Pods are made.
KCM=0 FRESH=1 bash "$k8s" start >/dev/null
eval "$(bash "$k8s" env)"
kubectl create namespace bench >/dev/null
"$gs" crd | kubectl apply -f - >/dev/null

"$gs" sim serve --app "random:$services:1" --scenario fluctuating --namespace bench \
  --follow-cluster --listen 127.0.0.1:19465 --duration 2h >"$work/twin.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do grep -q "^serving" "$work/twin.log" && break; sleep 0.5; done
grep -q "^serving" "$work/twin.log" || { cat "$work/twin.log" >&2; exit 1; }
cat >"$work/prometheus.yml" <<YML
global: {scrape_interval: 15s, evaluation_interval: 15s}
scrape_configs:
  - job_name: twin
    static_configs: [{targets: ["127.0.0.1:19465"]}]
YML
"$prom" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:19091 >"$work/prometheus.log" 2>&1 &
pids+=($!)
sleep 35  # two scrapes, so rates exist
GRAPHSCALE_LOG=warn "$gs" operator --namespace bench --no-leader-election \
  --listen 127.0.0.1:18081 >"$work/operator.log" 2>&1 &
op=$!
pids+=($op)
kubectl apply -f - >/dev/null <<YML
apiVersion: autoscaling.graphscale.dev/v1alpha1
kind: PredictiveAutoscaler
metadata: {name: bench, namespace: bench}
spec:
  targets: {selector: {matchLabels: {graphscale.dev/twin: "true"}}}
  mode: $mode
  autoscaler: graph-trend
  maxReplicas: 30
  prometheus: {url: "http://127.0.0.1:19091"}
YML
rounds_now() { kubectl get pas bench -n bench -o jsonpath='{.status.rounds}' 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$op/stat"; }
wait_rounds() {
  local want=$1
  for _ in $(seq 1 600); do
    r=$(rounds_now); [ -n "$r" ] && [ "$r" -ge "$want" ] && return 0; sleep 0.5
  done
  echo "no round $want: operator log:" >&2; tail -20 "$work/operator.log" >&2; exit 1
}
wait_rounds 1
r0=$(rounds_now); c0=$(cpu_ticks); t0=$(date +%s.%N)
wait_rounds $((r0 + rounds))
r1=$(rounds_now); c1=$(cpu_ticks); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
workloads=$(kubectl get pas bench -n bench -o jsonpath='{.status.workloadCount}')
metrics=$(kubectl get pas bench -n bench -o jsonpath='{.status.conditions[?(@.type=="MetricsAvailable")].status}')
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$op/status")
rss=$(awk '/VmRSS/ {print $2}' "/proc/$op/status")
python3 - "$services" "$workloads" "$metrics" "$r0" "$r1" "$c0" "$c1" "$hz" "$t0" "$t1" "$hwm" "$rss" "$mode" <<'PY'
import sys
n, w, m, r0, r1, c0, c1, hz, t0, t1, hwm, rss, mode = sys.argv[1:]
rounds = int(r1) - int(r0)
cpu = (int(c1) - int(c0)) / int(hz)
print(f"services {n}, targets {w}, mode {mode}, MetricsAvailable={m}")
print(f"rounds measured {rounds} over {float(t1) - float(t0):.1f} s wall")
print(f"operator CPU per round: {cpu / rounds:.3f} s (user + system, all threads)")
print(f"operator memory: peak RSS {int(hwm) / 1024:.1f} MiB, now {int(rss) / 1024:.1f} MiB")
PY
