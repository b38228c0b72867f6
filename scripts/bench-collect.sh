#!/usr/bin/env bash
# Benchmark: time to collect node and edge series and build the graph, for simulated apps of
# 100 and 1,000 services, 241 points per series (an hour at 15 s steps, compressed: the simulator
# runs 15x real time and Prometheus scrapes every second, so 240 s of wall time hold the points).
# The simulator stops before collection, so that Prometheus has the machine (as in a cluster).
# Prometheus loads graphscale's recording rules for the p95s (`collect --print-recording-rules`,
# for the 5 s window used here) and evaluates them every second, as it scrapes; collect is timed
# three times reading the recorded p95s and three times with `recording_rules: false`
# (histogram_quantile at every step, as before the rules), on the same data.
# Baseline in the same run: one range query of one series over the same grid.
# Usage: scripts/bench-collect.sh [SERVICES...]   (default: 100 1000). Needs prometheus and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=target/release/graphscale
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
sizes=("$@")
[ $# -eq 0 ] && sizes=(100 1000)
echo '{"templates": {"window": "5s"}}' > "$work/c.json"
echo '{"templates": {"window": "5s", "recording_rules": false}}' > "$work/c-raw.json"
$bin collect --print-recording-rules --config "$work/c.json" > "$work/rules.yml"
echo "| services | node rows | graph nodes / edges | collect wall s, recorded p95s (3 runs) | collect wall s, histogram_quantile (3 runs) | baseline: 1-series range query s | slowest queries, recorded run (s template) | slowest queries, histogram run (s template) |"
echo "|---:|---:|---|---|---|---:|---|---|"
for n in "${sizes[@]}"; do
  sp=$((20000 + n)); pp=$((21000 + n))
  $bin sim serve --app "random:$n" --scenario peak --speed 15 --duration 2h --listen "127.0.0.1:$sp" >/dev/null &
  simpid=$!
  printf 'global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ["%s"]\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: ["127.0.0.1:%s"]\n' "$work/rules.yml" "$sp" > "$work/p$n.yml"
  prometheus --config.file="$work/p$n.yml" --storage.tsdb.path="$work/d$n" --web.listen-address="127.0.0.1:$pp" --log.level=error >/dev/null 2>&1 &
  prompid=$!
  sleep 250
  kill $simpid 2>/dev/null || true
  wait $simpid 2>/dev/null || true
  url="http://127.0.0.1:$pp"
  end=$(date +%s)
  declare -A times=()
  for i in 1 2 3; do
    for mode in rec raw; do
      cfg="$work/c.json"; [ $mode = raw ] && cfg="$work/c-raw.json"
      s=$(date +%s.%N)
      GRAPHSCALE_LOG=info $bin collect --prometheus "$url" --timeout-ms 120000 --range 240s --step 1s --time-scale 15 \
        --end "$end" --config "$cfg" --out "$work/out$n-$mode" --force >"$work/said$n-$mode" 2>"$work/log$n-$mode-$i"
      e=$(date +%s.%N)
      times[$mode]+="$(echo "$e - $s" | bc -l | xargs printf '%.2f') "
    done
  done
  grep -q "p95s recorded by the recording rules" "$work/said$n-rec" || { echo "collect did not read the recorded p95s: $(cat "$work/said$n-rec")" >&2; exit 1; }
  s=$(date +%s.%N)
  curl -s -o /dev/null "$url/api/v1/query_range?query=up&start=$((end-240))&end=$end&step=1"
  e=$(date +%s.%N)
  base=$(echo "$e - $s" | bc -l | xargs printf '%.3f')
  nodes=$(python3 -c "import json;g=json.load(open('$work/out$n-rec/graph.json'));print(len(g['nodes']),'/',len(g['edges']))")
  rows=$(($(wc -l < "$work/out$n-rec/nodes.csv") - 1))
  slowest() { sed 's/\x1b\[[0-9;]*m//g' "$1" | grep "range query" | sed -E 's/.*template=([^ ]+).*secs=([0-9.]+).*/\2 \1/' | sort -rn | head -3 | xargs printf '%.1f %s; ' 2>/dev/null || true; }
  echo "| $n | $rows | $nodes | ${times[rec]}| ${times[raw]}| $base | $(slowest "$work/log$n-rec-1") | $(slowest "$work/log$n-raw-1") |"
  kill $prompid 2>/dev/null || true
  wait $prompid 2>/dev/null || true
done
