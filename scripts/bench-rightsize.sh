#!/usr/bin/env bash
# The HPA on CPU requests right-sized offline, the baseline of docs/benchmarks.md, "CPU requests
# sized with the plan": per app, the HPA runs the tuning seeds 1-5 of every scenario with its
# decisions recorded; scripts/vpa_requests.py sets each service's CPU request to the VPA
# recommender's target over those runs; the HPA then runs the held-out seeds 6-10 on that app.
#
#   bash scripts/bench-rightsize.sh OUT [GRAPHSCALE]
set -euo pipefail
out=${1:?usage: bench-rightsize.sh OUT [GRAPHSCALE]}
bin=${2:-target/release/graphscale}
scenarios=(rush fluctuating peak off-peak data/alibaba-ingress/alibaba-2022-ingress-per-minute.csv)
mkdir -p "$out"
for app in online-boutique train-ticket event-driven random:100; do
  name=${app//:/-}
  "$bin" topology show "$app" > "$out/$name.json"
  records=()
  for sc in "${scenarios[@]}"; do
    for seed in 1 2 3 4 5; do
      r="$out/$name-$(basename "$sc" .csv)-$seed.jsonl"
      "$bin" sim run --app "$app" --scenario "$sc" --autoscaler hpa --seed "$seed" \
        --record "$r" --force > /dev/null
      records+=("$r")
    done
  done
  python3 scripts/vpa_requests.py "$out/$name.json" "${records[@]}" > "$out/$name-vpa.json"
  rm -f "${records[@]}"
  old_ifs=$IFS; IFS=,; list="${scenarios[*]}"; IFS=$old_ifs
  "$bin" eval --apps "$out/$name-vpa.json" --scenarios "$list" --autoscalers hpa \
    --seeds 6-10 --threads 2 --out "$out/$name-vpa-eval" --force > /dev/null
done
