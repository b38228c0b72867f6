#!/usr/bin/env python3
"""The app with each service's CPU request set as the Kubernetes VPA recommender would set it
from recorded runs: the 90th percentile of its ready pods' CPU samples plus a 15 % margin, at
least 25 m (the recommender's --pod-recommendation-min-cpu-millicores), at most the app's own
request (limits and memory are kept: the VPA's controlledValues RequestsOnly). It is the
baseline of docs/benchmarks.md, "CPU requests sized with the plan": the HPA on requests
right-sized offline, as a platform team would set them from a VPA in recommendation mode.

    graphscale topology show APP > app.json
    graphscale sim run --app APP --scenario S --autoscaler hpa --seed K --record R.jsonl ...
    python3 scripts/vpa_requests.py app.json R1.jsonl R2.jsonl ... > app-vpa.json
"""
import json
import math
import sys


def quantile(xs, q):
    xs = sorted(xs)
    pos = q * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def main(argv):
    if len(argv) < 3:
        sys.exit(f"usage: {argv[0]} APP_JSON RECORD.jsonl...")
    with open(argv[1]) as f:
        app = json.load(f)
    samples = {s["name"]: [] for s in app["services"]}
    for path in argv[2:]:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    snap = json.loads(line)["snapshot"]
                except (ValueError, KeyError) as e:
                    sys.exit(f"{path}:{n}: not a decision record: {e}")
                for w in snap["workloads"]:
                    if w["name"] not in samples:
                        continue
                    for p in w["pods"]:
                        cpu = p.get("cpu")
                        if p.get("ready") and p["phase"] == "running" and cpu:
                            samples[w["name"]].append(cpu["millicores"])
    for s in app["services"]:
        xs = samples[s["name"]]
        if not xs:
            sys.exit(f"no CPU sample of service `{s['name']}` in the records")
        own = s["requests"]["cpu_millicores"]
        s["requests"]["cpu_millicores"] = round(min(own, max(25.0, 1.15 * quantile(xs, 0.9))), 1)
    app["description"] = (
        app.get("description", "")
        + "; CPU requests at the VPA recommender's target from "
        + f"{len(argv) - 2} recorded runs (p90 + 15 %, at least 25 m)"
    )
    json.dump(app, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv)
