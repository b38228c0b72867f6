#!/usr/bin/env bash
# The whole loop on a real Kubernetes API server, in one command:
#   control plane (../shared/k8s) -> digital twin (graphscale sim serve --follow-cluster: the
#   simulated Online Boutique registers its Deployments and follows their replicas) ->
#   Prometheus (scrapes the twin) -> graphscale operator (a PredictiveAutoscaler) -> the
#   Deployments' scale subresource -> the twin.
# It prints a timeline of load, decisions and replicas: first in Recommend, then in Auto.
#
#   bash scripts/cluster-demo.sh [RECOMMEND_SECONDS] [AUTO_SECONDS]   (default 150 and 300)
#
# DEMO_AUTOSCALER picks the autoscaler (default graph-trend); DEMO_CHECKPOINT=FILE (a
# `graphscale train` file) starts a graph-model autoscaler from it: the file is put in the
# operator's --models-dir and named in spec.checkpoint.
#
# Everything binds to 127.0.0.1 and is stopped on exit. Needs: prometheus (Debian's), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
recommend_s="${1:-150}"
auto_s="${2:-300}"
shared="${GRAPHSCALE_SHARED:-$(cd .. && pwd)/shared}"
k8s="$shared/k8s/start-apiserver.sh"
[ -f "$k8s" ] || { echo "missing $k8s (set GRAPHSCALE_SHARED)" >&2; exit 1; }
prom="${PROMETHEUS:-$(command -v prometheus || true)}"
[ -n "$prom" ] || { echo "prometheus not found: apt-get install prometheus (or set PROMETHEUS)" >&2; exit 1; }

export API_PORT="${DEMO_API_PORT:-17443}" ETCD_PORT="${DEMO_ETCD_PORT:-13379}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  FRESH=0 bash "$k8s" stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== building graphscale (release)"
cargo build --release --locked -q -p graphscale
gs="$PWD/target/release/graphscale"

echo "== control plane on 127.0.0.1:$API_PORT"
FRESH=1 bash "$k8s" start >/dev/null
eval "$(bash "$k8s" env)"
kubectl create namespace demo >/dev/null
"$gs" crd | kubectl apply -f - >/dev/null

echo "== twin: Online Boutique, scenario short-rush, real time, namespace demo"
"$gs" sim serve --app online-boutique --scenario short-rush --namespace demo \
  --follow-cluster --listen 127.0.0.1:19464 --duration $((recommend_s + auto_s + 120)) \
  >"$work/twin.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:19464/metrics >/dev/null && break; sleep 0.2; done

cat >"$work/prometheus.yml" <<YML
global: {scrape_interval: 5s, evaluation_interval: 5s}
scrape_configs:
  - job_name: twin
    static_configs: [{targets: ["127.0.0.1:19464"]}]
YML
"$prom" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address=127.0.0.1:19090 >"$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:19090/-/ready >/dev/null && break; sleep 0.2; done

echo "== operator (leader election on a Lease in namespace demo)"
autoscaler="${DEMO_AUTOSCALER:-graph-trend}"
checkpoint_line=""
mkdir -p "$work/models"
if [ -n "${DEMO_CHECKPOINT:-}" ]; then
  cp "$DEMO_CHECKPOINT" "$work/models/demo.safetensors"
  checkpoint_line="  checkpoint: demo.safetensors"
fi
GRAPHSCALE_LOG=warn "$gs" operator --namespace demo --lease-namespace demo \
  --listen 127.0.0.1:18080 --identity demo-operator --models-dir "$work/models" \
  >"$work/operator.log" 2>&1 &
pids+=($!)

kubectl apply -f - >/dev/null <<YML
apiVersion: autoscaling.graphscale.dev/v1alpha1
kind: PredictiveAutoscaler
metadata: {name: boutique, namespace: demo}
spec:
  targets: {selector: {matchLabels: {graphscale.dev/twin: "true"}}}
  mode: Recommend
  autoscaler: $autoscaler
$checkpoint_line
  minReplicas: 1
  maxReplicas: 30
  slo: {p95Ms: 500}
  prometheus: {url: "http://127.0.0.1:19090"}
YML

cat >"$work/row.py" <<'PY'
import json, sys, time
mode, start = sys.argv[1], float(sys.argv[2])
pa = json.load(sys.stdin)
st = pa.get("status") or {}
ws = st.get("workloads") or []
cond = {c["type"]: c["status"] for c in st.get("conditions") or []}
fe = next((w for w in ws if w["name"] == "frontend"), {})
rps = (fe.get("forecast") or {}).get("observedRps")
cur = sum(w["currentReplicas"] for w in ws)
des = sum(w["desiredReplicas"] for w in ws)
hpa = sum(w.get("hpaShadowReplicas") or 0 for w in ws)
applied = sum(1 for w in ws if w.get("applied"))
rps = "-" if rps is None else "%.1f" % rps
conds = " ".join("%s=%s" % (k, cond.get(k, "-")) for k in ("Ready", "MetricsAvailable", "ModelReady"))
print("%6.0f  %-9s  %8s  %8d  %7d  %10d  %7d  %6d  %s" % (time.time() - start, mode, rps, cur, des, hpa, applied, st.get("rounds", 0), conds))
PY
timeline() {
  local until=$1 mode=$2
  while [ "$(date +%s)" -lt "$until" ]; do
    kubectl get pas boutique -n demo -o json | python3 "$work/row.py" "$mode" "$t0"
    sleep 15
  done
}

t0=$(date +%s)
printf '%6s  %-9s  %8s  %8s  %7s  %10s  %7s  %6s  %s\n' "t s" mode "fe rps" replicas desired "hpa shadow" applied rounds conditions
timeline $((t0 + recommend_s)) Recommend
kubectl patch pas boutique -n demo --type merge -p '{"spec":{"mode":"Auto"}}' >/dev/null
timeline $((t0 + recommend_s + auto_s)) Auto

echo "== Events (last 12)"
kubectl get events.events.k8s.io -n demo --sort-by=.metadata.creationTimestamp \
  -o custom-columns=REASON:.reason,OBJECT:.regarding.name,NOTE:.note --no-headers 2>/dev/null |
  grep -E '^(Scaled|Recommended|Conflict|Disabled) ' | tail -12 | cut -c1-200
echo "== Deployments"
kubectl get deploy -n demo -o custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas --no-headers | column -t
