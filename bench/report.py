#!/usr/bin/env python3
"""Turns one bench.sh run into a markdown report: kiln's median over each peer's, per column.

usage: report.py OUTDIR "PEERS"
Reads OUTDIR/bench.tsv (peers.sh bench), OUTDIR/kiln-rss.tsv (/usr/bin/time per kiln command)
and OUTDIR/overhead.tsv (N x `RUN true`).
"""
import csv
import os
import platform
import re
import statistics as st
import sys
import time

out, peers = sys.argv[1], sys.argv[2].split()
rows = list(csv.DictReader(open(os.path.join(out, "bench.tsv")), delimiter="\t"))

times, fails = {}, {}
for r in rows:
    k = (r["peer"], r["df"], r["phase"])
    if r["rc"] != "0":
        fails[k] = fails.get(k, 0) + 1
    else:
        times.setdefault(k, []).append(float(r["seconds"]))

dfs = list(dict.fromkeys(r["df"] for r in rows))
cols = [(d, ph) for d in dfs for ph in ("cold", "warm", "push")]


def colname(d, ph):
    return f"{d.split('-')[0]}.{ph}"


def med(peer, d, ph):
    v = times.get((peer, d, ph))
    return st.median(v) if v else None


# Targets from issue 8: kiln / docker-buildkit, same run (c.push: against the best peer).
TARGETS = {
    ("a", "cold"): 0.5, ("a", "warm"): 0.3, ("b", "cold"): 0.85,
    ("c", "cold"): 0.75, ("d", "cold"): 0.5, ("d", "warm"): 0.5,
}

print(f"# kiln benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
print()
print(f"machine: {os.cpu_count()} cores, kernel {platform.release()}, "
      f"runs per cell: {max((len(v) for v in times.values()), default=0)} (median)")
print()
print("## Median wall seconds")
print()
print("| peer | " + " | ".join(colname(d, ph) for d, ph in cols) + " |")
print("|---|" + "---|" * len(cols))
for p in ["kiln"] + peers:
    cells = []
    for d, ph in cols:
        m = med(p, d, ph)
        cells.append(f"{m:.2f}" if m is not None else ("FAIL" if (p, d, ph) in fails else "-"))
    print(f"| {p} | " + " | ".join(cells) + " |")
print()
print("## kiln / peer (below 1.00: kiln is faster)")
print()
print("| peer | " + " | ".join(colname(d, ph) for d, ph in cols) + " |")
print("|---|" + "---|" * len(cols))
for p in peers:
    cells = []
    for d, ph in cols:
        k, q = med("kiln", d, ph), med(p, d, ph)
        cells.append(f"{k / q:.2f}" if k is not None and q else "-")
    print(f"| {p} | " + " | ".join(cells) + " |")
print()

print("## Targets of issue 8")
print()
print("| column | kiln | reference | ratio | target | met |")
print("|---|---|---|---|---|---|")
for d in dfs:
    letter = d.split("-")[0]
    for ph in ("cold", "warm"):
        t = TARGETS.get((letter, ph))
        k, q = med("kiln", d, ph), med("docker-buildkit", d, ph)
        if t is None or k is None or not q:
            continue
        print(f"| {letter}.{ph} | {k:.2f} | docker-buildkit {q:.2f} | {k / q:.2f} | <= {t} | "
              f"{'yes' if k / q <= t else 'no'} |")
    if letter == "c":
        k = med("kiln", d, "push")
        best = min(((med(p, d, "push"), p) for p in peers if med(p, d, "push")), default=None)
        if k is not None and best:
            print(f"| c.push | {k:.2f} | {best[1]} {best[0]:.2f} (best peer) | {k / best[0]:.2f} | "
                  f"<= 0.5 | {'yes' if k / best[0] <= 0.5 else 'no'} |")

over = os.path.join(out, "overhead.tsv")
if os.path.exists(over):
    o = {}
    for r in csv.DictReader(open(over), delimiter="\t"):
        o.setdefault((r["peer"], int(r["steps"])), []).append(float(r["seconds"]))
    for p in dict.fromkeys(k[0] for k in o):
        if (p, 1) in o and (p, 50) in o:
            per = (st.median(o[(p, 50)]) - st.median(o[(p, 1)])) / 49 * 1000
            target = " (target < 15 ms)" if p == "kiln" else ""
            print(f"| per-RUN overhead, {p} | {per:.1f} ms | 50 steps {st.median(o[(p, 50)]):.2f} s, "
                  f"1 step {st.median(o[(p, 1)]):.2f} s | | {target} | "
                  f"{'yes' if p == 'kiln' and per < 15 else ('no' if p == 'kiln' else '')} |")
print()

rss = os.path.join(out, "kiln-rss.tsv")
if os.path.exists(rss):
    peak = {}
    for line in open(rss):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        kb, cmd = int(parts[0]), parts[2]
        m = re.search(r"bench/kiln-([a-z]-[a-z]+):r\d+", cmd)
        if not m:
            continue
        kind = "push" if " push " in cmd else ("build" if " build " in cmd else None)
        if kind:
            key = (m.group(1), kind)
            peak[key] = max(peak.get(key, 0), kb)
    print("## kiln peak RSS (max over runs, /usr/bin/time)")
    print()
    print("| dockerfile | build | push |")
    print("|---|---|---|")
    for d in dfs:
        b, p = peak.get((d, "build")), peak.get((d, "push"))
        print(f"| {d} | {f'{b / 1024:.0f} MiB' if b else '-'} | {f'{p / 1024:.0f} MiB' if p else '-'} |")
