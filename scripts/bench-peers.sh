#!/usr/bin/env bash
# Our benchmarks and the Python peers' (../shared/peers) in one run, on the same sizes and
# configuration, one thread and two, and the ratios between them (issue #20).
#
#   scripts/bench-peers.sh [--setup] OUT_DIR
#
# --setup    copy ../shared/peers to $PEERS and install its venv there (PyTorch, PyTorch Geometric,
#            Prophet; about 6 GB, a few minutes). Never run by CI or the test script.
# PEERS      the peers' folder with its venv (default /tmp/peers)
# GRAPHSCALE our binary (default: target/release/graphscale, built here when missing)
# ONLY       a comma list of hgt, lstm, gru, prophet (default all four)
#
# Writes OUT_DIR/*.md (our tables), OUT_DIR/*.json (the peers' results), OUT_DIR/report.md (the
# side-by-side tables with the ratios, as in docs/benchmarks.md) and prints the report.
# Like for like: HGT with 2 layers, 4 heads, hidden 64, 8 input features, on the peer's graph
# schema (`bench hgt --apps peer:SIZE`: 4 node types, 12 relations: 6 and their reverses);
# LSTM with one layer, hidden 64, window 60, batch 64, one output; Prophet on the peer's own
# series (a synthetic week per minute, written to CSV for ours), daily season, one thread; ours
# is fitted in Rust (the default build's `prophet`).
set -euo pipefail

setup=0
if [[ "${1:-}" == "--setup" ]]; then
  setup=1
  shift
fi
out="${1:?usage: scripts/bench-peers.sh [--setup] OUT_DIR}"
here="$(cd "$(dirname "$0")/.." && pwd)"
peers="${PEERS:-/tmp/peers}"
only=",${ONLY:-hgt,lstm,gru,prophet},"
shared="${GRAPHSCALE_SHARED:-$(cd "$here/.." && pwd)/shared}"

if [[ $setup == 1 ]]; then
  mkdir -p "$peers"
  cp -r "$shared/peers/." "$peers/"
  python3 -m venv "$peers/venv"
  "$peers/venv/bin/pip" install -q torch torch_geometric prophet statsmodels pandas
fi
py="$peers/venv/bin/python"
if [[ ! -x "$py" ]]; then
  echo "no peer venv at $peers/venv: run with --setup (or set PEERS)" >&2
  exit 2
fi

bin="${GRAPHSCALE:-$here/target/release/graphscale}"
if [[ ! -x "$bin" ]]; then
  (cd "$here" && cargo build --release -p graphscale)
fi
mkdir -p "$out"
commit="$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $commit$(git -C "$here" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "command: scripts/bench-peers.sh $out (ONLY=${ONLY:-hgt,lstm,gru,prophet})"
} > "$out/run.txt"

for threads in 1 2; do
  one="OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads"
  if [[ $only == *,hgt,* ]]; then
    echo "hgt, $threads thread(s): ours" >&2
    # As many repetitions per size as the peer's forward samples (bench_hgt.py ITERS).
    : > "$out/hgt-ours-t$threads.md"
    for sr in boutique11:300 svc1k:40 svc10k:12; do
      env $one "$bin" bench hgt --apps "peer:${sr%%:*}" --layers 2 --heads 4 --dim 64 \
        --runs "${sr##*:}" | grep '^| peer:' >> "$out/hgt-ours-t$threads.md"
    done
    for size in boutique11 svc1k svc10k; do
      echo "hgt, $threads thread(s): peer $size" >&2
      (cd "$peers" && env $one PYTHONWARNINGS=ignore "$py" bench_hgt.py worker \
        --size "$size" --threads "$threads" | tail -n 1) > "$out/hgt-peer-$size-t$threads.json"
    done
  fi
  if [[ $only == *,lstm,* || $only == *,gru,* ]]; then
    echo "lstm and gru, $threads thread(s): ours" >&2
    env $one "$bin" bench nn --batch 64 --window 60 --hidden 64 --outputs 1 --runs 30 \
      > "$out/nn-ours-t$threads.md"
  fi
  if [[ $only == *,lstm,* ]]; then
    echo "lstm, $threads thread(s): peer" >&2
    (cd "$peers" && env $one "$py" -c "
import json, bench_lstm
bench_lstm.LAYERS, bench_lstm.HORIZON = 1, 1
print(json.dumps(bench_lstm.worker($threads)))" | tail -n 1) > "$out/lstm-peer-t$threads.json"
  fi
  if [[ $only == *,gru,* ]]; then
    # The peer's LSTM harness (same sizes, timing and Adam) with torch.nn.GRU in place of the
    # LSTM: the peers have no GRU benchmark of their own.
    echo "gru, $threads thread(s): peer" >&2
    (cd "$peers" && env $one "$py" -c "
import json, torch, bench_lstm
from torch import nn
bench_lstm.LAYERS, bench_lstm.HORIZON = 1, 1
class Gru(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(bench_lstm.IN, bench_lstm.HID, num_layers=1, batch_first=True)
        self.head = nn.Linear(bench_lstm.HID, 1)
    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1, :])
def make():
    torch.manual_seed(0)
    return Gru()
bench_lstm.make_model = make
print(json.dumps(bench_lstm.worker($threads)))" | tail -n 1) > "$out/gru-peer-t$threads.json"
  fi
done

if [[ $only == *,prophet,* ]]; then
  # The peer's series, written for ours; Prophet is fitted on one thread by both.
  (cd "$peers" && "$py" -c "
import bench_prophet
df = bench_prophet.make_series()
print('unix_ts,requests')
for ds, y in zip(df['ds'], df['y']):
    print(f'{int(ds.timestamp())},{y!r}')") > "$out/prophet-series.csv"
  echo "prophet: ours" >&2
  if ! "$bin" bench forecast --csv "$out/prophet-series.csv" --models prophet \
      > "$out/prophet-ours.md" 2> "$out/prophet-ours.err"; then
    echo "prophet: ours failed: $(tail -n 1 "$out/prophet-ours.err")" >&2
    rm -f "$out/prophet-ours.md"
  fi
  echo "prophet: peer" >&2
  (cd "$peers" && OMP_NUM_THREADS=1 "$py" bench_prophet.py --reps 5 --hw-est-reps 1 \
    --out "$out/prophet-peer.json" > /dev/null)
fi

python3 "$here/scripts/bench_peers_report.py" "$out" | tee "$out/report.md"
