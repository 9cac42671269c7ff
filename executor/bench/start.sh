#!/usr/bin/env bash
# Container start-to-exit of /bin/true: kiln vs runc (Debian's), same busybox
# rootfs, same run, interleaved so both see the same machine load.
# Usage (root, from the project root): executor/bench/start.sh [RUNS=200]
# Prints median and p99 in ms for each, and kiln/runc ratios.
set -euo pipefail
RUNS=${1:-200}
cd "$(dirname "$0")/../.."
command -v runc >/dev/null || { echo "runc is missing: scripts/deps.sh installs it" >&2; exit 1; }
if [ -z "${KILN:-}" ]; then
  cargo build --release -q --bin kiln
  KILN=$PWD/target/release/kiln
fi
cargo build --release -q -p kiln-executor --example start_bench
W=$(mktemp -d /tmp/kiln-bench.XXXXXX)
trap 'rm -rf --one-file-system "$W"' EXIT
RFS=$W/rootfs
(umask 022; mkdir -p "$RFS"/{bin,etc,tmp,root,proc,sys,dev,home})
cp /bin/busybox "$RFS/bin/busybox"
for a in $("$RFS/bin/busybox" --list); do [ -e "$RFS/bin/$a" ] || ln -s busybox "$RFS/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$RFS/etc/passwd"; printf 'root:x:0:\n' >"$RFS/etc/group"
# runc's bundle: its default spec (new pid, mount, ipc, uts, net namespaces,
# read-only root, docker-like masks and capabilities), running /bin/true.
mkdir -p "$W/bundle"
(cd "$W/bundle" && runc spec)
python3 - "$W/bundle/config.json" "$RFS" <<'PY'
import json, sys
p, rootfs = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["root"]["path"] = rootfs
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
python3 - "$KILN" "$W" "$RFS" "$RUNS" <<'PY'
import statistics, subprocess, sys, time
kiln, w, rfs, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
kiln_cmd = [kiln, "--root", f"{w}/kroot", "run", "--rm", "--network", "none", "--rootfs", rfs, "/bin/true"]
def runc_cmd(i): return ["runc", "--root", f"{w}/runcroot", "run", "--bundle", f"{w}/bundle", f"bench{i}"]
def timed(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    d = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode()}")
    return d
for i in range(5):  # warm caches
    timed(kiln_cmd); timed(runc_cmd(f"w{i}"))
k, r = [], []
for i in range(runs):
    k.append(timed(kiln_cmd)); r.append(timed(runc_cmd(i)))
def p99(xs): return sorted(xs)[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
km, rm_, k99, r99 = statistics.median(k), statistics.median(r), p99(k), p99(r)
print(f"runs: {runs} each, interleaved; load average: {open('/proc/loadavg').read().split()[0]}")
print(f"kiln run --rm --network none --rootfs DIR /bin/true: median {km:.1f} ms, p99 {k99:.1f} ms")
print(f"runc run (default spec, same rootfs):            median {rm_:.1f} ms, p99 {r99:.1f} ms")
print(f"ratio kiln/runc: median {km/rm_:.2f}, p99 {k99/r99:.2f}")
PY
echo "--- the library (what a RUN step costs)"
mkdir -p "$W/lib"
target/release/examples/start_bench "$RFS" "$W/bundle" "$W/lib" "$RUNS"
