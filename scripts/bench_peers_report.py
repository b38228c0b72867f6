#!/usr/bin/env python3
"""The side-by-side tables of scripts/bench-peers.sh: our Markdown tables and the peers' JSON in
OUT_DIR, with the ratios (peer time / our time: above 1 means we are faster). Standard library only."""
import json
import os
import sys

out = sys.argv[1]


def path(name):
    return os.path.join(out, name)


def rows(md_file):
    """The data rows of the Markdown table in a file (with or without its header), as lists of
    cells."""
    if not os.path.exists(md_file):
        return []
    table = [l for l in open(md_file) if l.startswith("|")]
    if len(table) >= 2 and table[1].startswith("|---"):
        table = table[2:]
    return [[c.strip() for c in l.strip().strip("|").split("|")] for l in table]


def load(name):
    p = path(name)
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        return None
    with open(p) as f:
        return json.load(f)


def ratio(peer, ours):
    return f"{peer / ours:.2f}x" if peer and ours else "-"


print(open(path("run.txt")).read().strip())
print()

# HGT: ours per peer size from `bench hgt --apps peer:SIZE`.
hgt = []
for threads in (1, 2):
    ours = {r[0].removeprefix("peer:"): r for r in rows(path(f"hgt-ours-t{threads}.md"))}
    for size in ("boutique11", "svc1k", "svc10k"):
        peer = load(f"hgt-peer-{size}-t{threads}.json")
        o = ours.get(size)
        if peer is None or o is None:
            continue
        pf, pt = peer["forward_no_grad"]["median_ms"], peer["train_step"]["median_ms"]
        of, ot = float(o[3]), float(o[4])
        edges = peer["graph"]["edges_total"]
        nodes = sum(peer["graph"]["nodes"].values())
        assert (nodes, edges) == (int(o[1]), int(o[2])), f"{size}: graphs differ: {o}"
        hgt.append((size, nodes, edges, threads, pf, of, pt, ot))
if hgt:
    print("HGT, 2 layers, 4 heads, hidden 64 (medians, ms; ratio = peer / ours)\n")
    print("| graph | nodes | edges | threads | PyG forward | ours forward | ratio | PyG train step | ours train step | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size, n, e, t, pf, of, pt, ot in hgt:
        print(f"| {size} | {n} | {e} | {t} | {pf:.2f} | {of:.2f} | {ratio(pf, of)} | {pt:.1f} | {ot:.1f} | {ratio(pt, ot)} |")
    print()

for cell, peer_name in (("lstm", "PyTorch"), ("gru", "PyTorch (nn.GRU in the LSTM harness)")):
    rec = []
    for threads in (1, 2):
        peer = load(f"{cell}-peer-t{threads}.json")
        ours = {r[0]: r for r in rows(path(f"nn-ours-t{threads}.md"))}
        o = ours.get(cell)
        if peer is None or o is None:
            continue
        pt, pf = peer["train_step_b64"]["median_ms"], peer["forward_b1"]["median_ms"]
        rec.append((threads, pt, float(o[1]), pf, float(o[2])))
    if rec:
        print(f"{cell.upper()}, 1 layer, hidden 64, window 60, 1 output (medians, ms; ratio = peer / ours)\n")
        print(f"| threads | {peer_name} train step (batch 64) | ours | ratio | {peer_name} forward (batch 1) | ours | ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for t, pt, ot, pf, of in rec:
            print(f"| {t} | {pt:.2f} | {ot:.2f} | {ratio(pt, ot)} | {pf:.3f} | {of:.3f} | {ratio(pf, of)} |")
        print()

peer = load("prophet-peer.json")
if peer is not None:
    pfit = peer["prophet"]["fit_plus_predict60"]["median_ms"]
    ours = {r[0]: r for r in rows(path("prophet-ours.md"))}
    o = ours.get("prophet")
    print(f"Prophet on the peer's series ({peer['n_points']} points, daily season), one thread\n")
    print("| Python Prophet fit + predict 60, ms | ours fit + predict 30, ms | ratio |")
    print("|---:|---:|---:|")
    if o is None:
        print(f"| {pfit:.0f} | failed (see prophet-ours.err) | - |")
    else:
        print(f"| {pfit:.0f} | {float(o[3]):.0f} | {ratio(pfit, float(o[3]))} |")
    print()
