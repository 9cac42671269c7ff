#!/usr/bin/env python3
"""Differences between kiln's image and each peer's, per Dockerfile (see compare.sh).

usage: compare.py OUTDIR "PEERS" "DOCKERFILES"
Reads OUTDIR/<peer>-<df>/ (OCI layouts) and OUTDIR/<peer>-<df>.run (podman run output).
"""
import gzip
import hashlib
import json
import os
import sys
import tarfile

out, peers, dfs = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts",
                 "Volumes", "StopSignal"]
# Labels that name the builder, not the image.
BUILDER_LABELS = {"io.buildah.version"}


def blob(layout, digest):
    return os.path.join(layout, "blobs", *digest.split(":"))


def load(peer, df):
    layout = os.path.join(out, f"{peer}-{df}")
    if not os.path.exists(os.path.join(layout, "index.json")):
        return None
    index = json.load(open(os.path.join(layout, "index.json")))
    manifest = json.load(open(blob(layout, index["manifests"][0]["digest"])))
    config = json.load(open(blob(layout, manifest["config"]["digest"])))
    layers = []
    for layer in manifest["layers"]:
        path = blob(layout, layer["digest"])
        with open(path, "rb") as f:
            magic = f.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        entries = {}
        with opener(path, "rb") as f, tarfile.open(fileobj=f, mode="r|") as t:
            for m in t:
                name = m.name.lstrip("./").rstrip("/") or "."
                h = ""
                if m.isfile():
                    h = hashlib.sha256(t.extractfile(m).read()).hexdigest()[:12]
                kind = "f" if m.isfile() else "d" if m.isdir() else "l" if m.issym() else \
                    "h" if m.islnk() else "c" if m.ischr() else "b" if m.isblk() else "?"
                # Go's archive/tar (docker, BuildKit, buildah) also writes the file type bits
                # into the mode field (0o100644); kiln writes permissions only, as GNU tar
                # does. Both read back the same: compare permissions.
                entries[name] = (kind, oct(m.mode & 0o7777), f"{m.uid}:{m.gid}", m.size if m.isfile() else 0,
                                 h, m.linkname if (m.issym() or m.islnk()) else "")
        layers.append(entries)
    run_path = os.path.join(out, f"{peer}-{df}.run")
    run = open(run_path).read() if os.path.exists(run_path) else None
    return {"config": config.get("config", {}), "diff_ids": config["rootfs"]["diff_ids"],
            "layers": layers, "run": run, "history": config.get("history", [])}


def cfg(c, field):
    v = c.get(field)
    if field == "Labels" and v:
        v = {k: x for k, x in v.items() if k not in BUILDER_LABELS} or None
    return v or None


def merged(layers):
    """The final filesystem: layers applied in order, whiteouts honoured."""
    fs = {}
    for layer in layers:
        for name, e in sorted(layer.items()):
            base = os.path.basename(name)
            parent = os.path.dirname(name)
            if base == ".wh..wh..opq":
                for k in [k for k in fs if k.startswith(parent + "/")]:
                    if k not in layer:
                        del fs[k]
            elif base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                for k in [k for k in fs if k == gone or k.startswith(gone + "/")]:
                    del fs[k]
            else:
                fs[name] = e
    return fs


def describe_layer_diff(a, b, limit=6):
    lines = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x != y:
            lines.append(f"  `{name}`: kiln={x} peer={y}")
    more = len(lines) - limit
    return lines[:limit] + ([f"  ... {more} more"] if more > 0 else [])


for df in dfs:
    k = load("kiln", df)
    print(f"## {df}\n")
    if k is None:
        print("kiln: no image\n")
        continue
    for p in peers:
        o = load(p, df)
        print(f"### kiln vs {p}\n")
        if o is None:
            print("peer: no image\n")
            continue
        same = []
        for f in CONFIG_FIELDS:
            a, b = cfg(k["config"], f), cfg(o["config"], f)
            if a != b:
                print(f"- config {f}: kiln={json.dumps(a)} {p}={json.dumps(b)}")
            else:
                same.append(f)
        print(f"- config equal: {', '.join(same)}")
        print(f"- layers: kiln {len(k['layers'])}, {p} {len(o['layers'])}")
        eq_ids = sum(1 for a, b in zip(k["diff_ids"], o["diff_ids"]) if a == b)
        print(f"- identical diff_ids: {eq_ids} of {max(len(k['diff_ids']), len(o['diff_ids']))}")
        # Compare layer contents by pairing non-empty layers in order.
        kl = [l for l in k["layers"] if l]
        ol = [l for l in o["layers"] if l]
        for i, (a, b) in enumerate(zip(kl, ol)):
            d = describe_layer_diff(a, b)
            if d:
                print(f"- non-empty layer {i + 1}: {len(a)} vs {len(b)} entries, differences:")
                print("\n".join(d))
            else:
                print(f"- non-empty layer {i + 1}: same {len(a)} entries (type, mode, owner, size, content, link)")
        d = describe_layer_diff(merged(k["layers"]), merged(o["layers"]))
        if d:
            print("- final rootfs differs:")
            print("\n".join(d))
        else:
            print(f"- final rootfs: same {len(merged(k['layers']))} entries")
        if k["run"] is None or o["run"] is None:
            print("- run output: missing")
        elif k["run"] == o["run"]:
            print(f"- run output: equal ({len(k['run'].splitlines())} lines)")
        else:
            print(f"- run output differs: kiln={k['run'][:200]!r} {p}={o['run'][:200]!r}")
        print()
