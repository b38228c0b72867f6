#!/usr/bin/env bash
# The web page of `graphscale serve` in headless Chromium (Debian's `chromium`): a server on
# 127.0.0.1 with a small trained model and the simulated cluster at 300x real time; one decision
# applied through POST /v1/apply; then the page's DOM after its scripts ran must show every panel
# drawn (the service graph, a forecast band per service, the decisions with the HPA's shadow, the
# applied decision with its reasons) and no script error, and a screenshot is written to
# ${PAGE_OUT:-target/page}/board.png. Called by scripts/test.sh after the cargo tests.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [ -z "$chromium" ]; then echo "chromium not found (Debian: apt-get install chromium)" >&2; exit 1; fi
bin="${GRAPHSCALE_BIN:-${CARGO_TARGET_DIR:-target}/debug/graphscale}"
if [ ! -x "$bin" ]; then echo "no graphscale binary at $bin (cargo build first)" >&2; exit 1; fi
out="${PAGE_OUT:-${CARGO_TARGET_DIR:-target}/page}"
mkdir -p "$out"
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
die() { echo "page test: $*" >&2; for f in "$work"/serve.err "$work"/dom.html; do [ -f "$f" ] && tail -c 3000 "$f" >&2; done; exit 1; }

mkdir -p "$work/models"
"$bin" train --model mlp --data sim:online-boutique:diurnal:1:1800 --epochs 2 \
  --out "$work/models/board.safetensors" >/dev/null
printf 'page-test-token-0123456789\n' > "$work/token"
"$bin" serve --listen 127.0.0.1:0 --models-dir "$work/models" --token-file "$work/token" \
  --sim-scenario diurnal --sim-speed 300 > "$work/serve.out" 2> "$work/serve.err" &
pid=$!
addr=""
for _ in $(seq 1 300); do
  addr="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/serve.out" 2>/dev/null | head -n1 || true)"
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || die "graphscale serve exited"
  sleep 0.1
done
[ -n "$addr" ] || die "graphscale serve printed no address"
# Wait (at most 30 s) for enough history for the model's forecast.
for _ in $(seq 1 300); do
  curl -sf "$addr/v1/board" > "$work/board.json" && grep -q '"forecast":{' "$work/board.json" && break
  sleep 0.1
done
grep -q '"forecast":{' "$work/board.json" || die "no forecast on /v1/board: $(head -c 600 "$work/board.json")"
curl -sf -X POST "$addr/v1/apply" -H "Authorization: Bearer page-test-token-0123456789" \
  -H 'content-type: application/json' \
  -d '{"decisions":[{"workload":"currencyservice","replicas":3,"reasons":[{"rule":"plan.forecast","detail":"from the page test"}]}]}' \
  > "$work/apply.json" || die "POST /v1/apply failed"
grep -q '"outcome":"applied"' "$work/apply.json" || die "not applied: $(cat "$work/apply.json")"

page() {
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$work/chrome" --window-size=1400,1100 --virtual-time-budget=5000 "$@" "$addr/" \
    2>> "$work/chrome.log"
}
page --dump-dom > "$work/dom.html" \
  || die "chromium --dump-dom failed: $(tail -5 "$work/chrome.log")"
expect() { grep -q -- "$1" "$work/dom.html" || die "the page lacks $1"; }
expect '<body data-state="ready" data-errors="0">'
expect '<section id="graph" data-rendered="1" data-nodes="10">'
expect '<section id="forecast" data-rendered="1" data-charts="10" data-bands="10">'
expect '<section id="decisions" data-rendered="1" data-rows="10">'
expect '<section id="applied" data-rendered="1" data-rows="1">'
expect 'plan.forecast: from the page test'
expect 'HPA hpa.'
expect 'class="band"'
page --screenshot="$out/board.png" >/dev/null \
  || die "chromium --screenshot failed: $(tail -5 "$work/chrome.log")"
size="$(stat -c %s "$out/board.png")"
[ "$(head -c 8 "$out/board.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || die "board.png is not a PNG"
[ "$size" -gt 20000 ] || die "board.png is only $size bytes"
echo "page test: every panel drawn, no script error; screenshot $out/board.png ($size bytes)"
