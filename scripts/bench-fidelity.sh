#!/usr/bin/env bash
# The simulator-fidelity ablation of docs/benchmarks.md (issue #17 item 6): the same held-out
# evaluation under four simulators, one rule added at a time, and a table of the results.
#
#   bash scripts/bench-fidelity.sh OUT [GRAPHSCALE]
#
# before    : every start-up 30 s (OB) / 60 s (TT), no node CPU contention (the model until then)
# startups  : start-up times from the apps' manifests, no contention
# contention: the default simulator (start-ups and node CPU contention)
# ca-free   : a cluster autoscaler (4-core nodes Ready 120 s after the request), no contention
# ca120     : the default plus that cluster autoscaler
set -euo pipefail
out=${1:?usage: bench-fidelity.sh OUT [GRAPHSCALE]}
bin=${2:-target/release/graphscale}
specs=docs/specs/fidelity
scenarios=rush,fluctuating,peak,data/alibaba-ingress/alibaba-2022-ingress-per-minute.csv
mkdir -p "$out"
for app in online-boutique train-ticket; do
  scalers="hpa,hpa-tuned,graphscale,rl-gat:data/rl/$app-gat.safetensors"
  start=$specs/$app-start30.json
  [ "$app" = train-ticket ] && start=$specs/$app-start60.json
  run() { # name, app file, extra flags
    local name=$1 file=$2; shift 2
    "$bin" eval --apps "$file" --scenarios "$scenarios" --autoscalers "$scalers" --seeds 6-10 \
      --out "$out/$app-$name" --force "$@"
  }
  run before "$start" --spec $specs/no-contention.json
  run startups "$app" --spec $specs/no-contention.json
  run contention "$app"
  run ca-free "$specs/$app-ca120.json" --spec $specs/no-contention.json
  run ca120 "$specs/$app-ca120.json"
done
python3 scripts/fidelity_report.py "$out"
