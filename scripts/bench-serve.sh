#!/usr/bin/env bash
# `graphscale serve` under load, beside the FastAPI + PyTorch peer in the same run.
#
#   bash scripts/bench-serve.sh [OUT]      (default bench-out/serve)
#
# For an 11-service graph (online-boutique) and a 1,000-service one (random:1000), each with an
# HGT trained by `graphscale train` (2 epochs: speed, not accuracy, is measured): the time from
# process start to the first answered POST /v1/predict (5 cold starts), then /v1/predict under
# wrk (one wrk thread, on the second core) at 1, 8 and 64 connections, 3 runs of 5 s each (the
# median run is reported), and the server's resident memory under load. Then `graphscale bench
# keda` (GetMetrics over gRPC). With PEERS set to a copy of ../shared/peers that has its venv
# (see its README), the peer's bench_serve.py runs right after, on the same machine.
# Everything on 127.0.0.1. Needs wrk (Debian's `wrk`). Writes OUT/serve.json and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-out/serve}"
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
mkdir -p "$out/models"
cargo build --release --locked -q -p graphscale
gs="$PWD/target/release/graphscale"

prepare() { # NAME APP
  local name="$1" app="$2"
  if [ ! -f "$out/models/$name.safetensors" ]; then
    "$gs" sim run --app "$app" --scenario rush --seed 1 --duration 30m \
      --series-out "$out/$name-train.json" >/dev/null
    "$gs" train --model hgt --data "$out/$name-train.json" --epochs 2 \
      --out "$out/models/$name.safetensors" >/dev/null
  fi
  if [ ! -f "$out/$name-series.json" ]; then
    "$gs" sim run --app "$app" --scenario rush --seed 7 --duration 10m \
      --series-out "$out/$name-series.json" >/dev/null
  fi
  "$gs" topology show "$app" > "$out/$name-app.json"
}
prepare ob online-boutique
prepare r1k random:1000

GS="$gs" OUT="$out" python3 - <<'EOF'
import json, os, re, signal, statistics, subprocess, sys, time, urllib.request

gs, out = os.environ["GS"], os.environ["OUT"]
PORT = 18180
URL = f"http://127.0.0.1:{PORT}/v1/predict"

def body(name):
    s = json.load(open(f"{out}/{name}-series.json"))
    app = json.load(open(f"{out}/{name}-app.json"))
    w = 60  # more than any model's window: the server takes the newest `window` points
    cut = lambda v: v[-w:]
    s["start_ms"] += (s["len"] - min(w, s["len"])) * s["step_ms"]
    s["len"] = min(w, s["len"])
    for m in s["nodes"].values():
        for k in m:
            m[k] = cut(m[k])
    for e in s["edges"]:
        for k in e["metrics"]:
            e["metrics"][k] = cut(e["metrics"][k])
    services = {}
    for svc in app["services"]:
        services[svc["name"]] = {"cpu_request_millicores": svc["requests"]["cpu_millicores"],
                                 "memory_request_mib": svc["requests"]["memory_mib"],
                                 "max_replicas": svc["max_replicas"]}
    return json.dumps({"model": f"{name}.safetensors", "series": s, "services": services})

def post(data, timeout=5):
    r = urllib.request.Request(URL, data=data.encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        return resp.status, resp.read()

def start(models):
    return subprocess.Popen([gs, "serve", "--listen", f"127.0.0.1:{PORT}", "--models-dir", models],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def stop(p):
    p.send_signal(signal.SIGTERM)  # by PID
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()

def ready(data, limit=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if post(data)[0] == 200:
                return
        except Exception:
            time.sleep(0.002)
    raise SystemExit("the server did not answer in 60 s")

def rss_mib(pid):
    return int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0]) / 1024

UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)$", v)
    return float(m.group(1)) * UNIT[m.group(2)]

def wrk(conns, lua, secs=5):
    o = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", "-s", lua, URL],
                       capture_output=True, text=True, timeout=secs + 60).stdout
    r = {"connections": conns, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1))}
    for p in ("50", "90", "99"):
        r[f"p{p}_ms"] = ms(re.search(rf"\s{p}%\s+(\S+)", o).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", o)
    r["non_2xx"] = int(m.group(1)) if m else 0
    return r

res = {"date": time.strftime("%Y-%m-%d"), "graphs": {}}
for name, label in (("ob", "online-boutique (11 services)"), ("r1k", "random:1000 (1,000 services)")):
    data = body(name)
    models = f"{out}/only-{name}"
    os.makedirs(models, exist_ok=True)
    link = f"{models}/{name}.safetensors"
    if not os.path.exists(link):
        os.symlink(os.path.abspath(f"{out}/models/{name}.safetensors"), link)
    g = {"body_bytes": len(data), "start_to_first_answer_ms": []}
    for _ in range(5):
        t0 = time.monotonic(); p = start(models)
        try:
            ready(data)
            g["start_to_first_answer_ms"].append(round((time.monotonic() - t0) * 1000, 1))
        finally:
            stop(p)
    lua = f"{out}/{name}.lua"
    with open(f"{out}/{name}-body.json", "w") as f:
        f.write(data)
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'local f = io.open("{os.path.abspath(out)}/{name}-body.json")\nwrk.body = f:read("*a")\nf:close()\n')
    p = start(models)
    try:
        ready(data)
        status, answer = post(data)
        g["answer_services"] = len(json.loads(answer)["plan"])
        wrk(4, lua, 2)  # warm-up
        g["load"] = []
        peak = 0.0
        for c in (1, 8, 64):
            runs = []
            for _ in range(3):
                runs.append(wrk(c, lua))
                peak = max(peak, rss_mib(p.pid))
            runs.sort(key=lambda r: r["rps"])
            m = runs[1]
            m["runs_rps"] = [r["rps"] for r in runs]
            g["load"].append(m)
        g["rss_mib_under_load"] = round(peak, 1)
    finally:
        stop(p)
    res["graphs"][label] = g

json.dump(res, open(f"{out}/serve.json", "w"), indent=1)
print(f"graphscale serve, {res['date']}: /v1/predict with an HGT, wrk -t1, median of 3 x 5 s")
print()
print("| graph | body | start to first answer (median of 5) | connections | requests/s | p50 ms | p90 ms | p99 ms | non-2xx | RSS under load |")
print("|---|---|---|---|---|---|---|---|---|---|")
for label, g in res["graphs"].items():
    st = statistics.median(g["start_to_first_answer_ms"])
    for r in g["load"]:
        print(f"| {label} | {g['body_bytes'] / 1024:.0f} KiB | {st:.0f} ms | {r['connections']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | {r['non_2xx']} | {g['rss_mib_under_load']:.0f} MiB |")
EOF

echo
"$gs" bench keda

if [ -n "${PEERS:-}" ]; then
  echo
  echo "peer (FastAPI + PyTorch Geometric, $PEERS/bench_serve.py):"
  (cd "$PEERS" && mkdir -p results && venv/bin/python bench_serve.py)
  python3 - "$PEERS/results/serve.json" <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
print("| connections | requests/s (median of 5) | p50 ms | p99 ms | start to first answer | RSS under load |")
print("|---|---|---|---|---|---|")
for c in sorted({w["connections"] for w in r["wrk"]}):
    runs = sorted((w for w in r["wrk"] if w["connections"] == c), key=lambda w: w["rps"])
    m = runs[len(runs) // 2]
    print(f"| {c} | {m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {statistics.median(r['start_to_ready_s']) * 1000:.0f} ms | {r['server_rss_mib']:.0f} MiB |")
EOF
fi
