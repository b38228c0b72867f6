#!/usr/bin/env python3
"""Table of scripts/bench-fidelity.sh's runs: per app, scenario and autoscaler, the SLO-violation
minutes, the CPU core-hours against the HPA's under the same simulator, and the scaling actions
(means over the seeds), under each simulator."""
import json
import os
import sys

CONFIGS = ["before", "startups", "contention", "ca-free", "ca120"]


def load(path):
    with open(path) as f:
        r = json.load(f)
    out = {}
    for s in r["summary"]:
        m = {x["metric"]: x["mean"] for x in s["metrics"]}
        out[(s["scenario"], s["autoscaler"])] = m
    return r.get("git_revision"), out


def main(root):
    print("Each cell: SLO-violation minutes / CPU vs `hpa` / scaling actions.")
    print()
    print("| app | scenario | autoscaler | " + " | ".join(CONFIGS) + " |")
    print("|---|---|---|" + "---|" * len(CONFIGS))
    revs = set()
    for app in ["online-boutique", "train-ticket"]:
        runs = {}
        for c in CONFIGS:
            p = os.path.join(root, f"{app}-{c}", "results.json")
            if os.path.exists(p):
                rev, runs[c] = load(p)
                revs.add(rev)
        keys = []
        for c in runs.values():
            for k in c:
                if k not in keys:
                    keys.append(k)
        for scen, scaler in keys:
            cells = []
            for c in CONFIGS:
                m = runs.get(c, {}).get((scen, scaler))
                hpa = runs.get(c, {}).get((scen, "hpa"))
                if m is None or hpa is None:
                    cells.append("-")
                    continue
                cpu = 100.0 * (m["cpu_core_hours"] / hpa["cpu_core_hours"] - 1.0)
                cells.append(
                    f"{m['slo_violation_minutes']:.1f} / {cpu:+.1f} % / {m['scaling_actions']:.0f}"
                )
            name = "alibaba trace" if "alibaba" in scen else scen
            short = scaler.split(":")[0]
            print(f"| {app} | {name} | {short} | " + " | ".join(cells) + " |")
    print()
    print("Node core-hours with the cluster autoscaler (ca120), against the HPA's:")
    print()
    print("| app | scenario | autoscaler | node core-h | vs `hpa` |")
    print("|---|---|---|---|---|")
    for app in ["online-boutique", "train-ticket"]:
        p = os.path.join(root, f"{app}-ca120", "results.json")
        if not os.path.exists(p):
            continue
        _, runs = load(p)
        for (scen, scaler), m in runs.items():
            hpa = runs[(scen, "hpa")]
            v, h = m.get("node_core_hours"), hpa.get("node_core_hours")
            if v is None or not h:
                continue
            name = "alibaba trace" if "alibaba" in scen else scen
            print(f"| {app} | {name} | {scaler.split(':')[0]} | {v:.2f} | {100.0 * (v / h - 1.0):+.1f} % |")
    print()
    print("git revisions:", ", ".join(sorted(str(r) for r in revs)))


if __name__ == "__main__":
    main(sys.argv[1])
