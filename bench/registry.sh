#!/usr/bin/env bash
# bench/registry.sh - push and pull of the c-biglayer image (~520 MB, one layer) to a local
# registry: kiln against `skopeo copy` and podman, in the same run, with peak RSS.
#
#   sudo bench/registry.sh [-n RUNS] [-k KILN] [-o DIR]
#
# Every tool pushes the same image (built once by kiln, handed to skopeo as an OCI layout and
# to podman through `podman load`) to an empty registry (127.0.0.1:5001, wiped before each
# push), compressing its layer with gzip as it goes; kiln forgets its remembered gzip digests
# first so that it compresses too. Every tool then pulls the image kiln pushed into an empty
# store. Prints median seconds, kiln's time over each peer's and peak RSS (/usr/bin/time).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$PROJECT/../shared/peers}
RUNS=3
KILN=${KILN:-$PROJECT/target/release/kiln}
OUT=""
while getopts "n:k:o:" o; do
  case $o in n) RUNS=$OPTARG ;; k) KILN=$OPTARG ;; o) OUT=$OPTARG ;; *) sed -n '2,11p' "$0"; exit 2 ;; esac
done
LAB=${PEERLAB:-/tmp/peerlab}
OUT=${OUT:-$LAB/results/kiln-registry-$(date -u +%Y%m%dT%H%M%S)}
KILN=$(readlink -f "$KILN")
[ "$(id -u)" = 0 ] || { echo "registry.sh: run as root" >&2; exit 1; }
mkdir -p "$OUT"
"$PEERS_DIR/peers.sh" prepare >&2
export CONTAINERS_CONF=$LAB/containers.conf CONTAINERS_REGISTRIES_CONF=$LAB/registries.conf

KR=$LAB/st/kiln-registry            # kiln's store holding the built image
IMG=bench/c-biglayer:src
DEST=127.0.0.1:5001/bench/c-biglayer
PODMAN="podman --root $LAB/st/podman-reg/root --runroot $LAB/st/podman-reg/run --storage-driver overlay --tmpdir $LAB/st/podman-reg/tmp"
# Pulls go to a store of their own, emptied before each: the pushing store holds the layer.
PODMAN_PULL="podman --root $LAB/st/podman-pull/root --runroot $LAB/st/podman-pull/run --storage-driver overlay --tmpdir $LAB/st/podman-reg/tmp"
mkdir -p "$LAB/st/podman-reg/tmp"

echo "== preparing the image" >&2
"$KILN" --root "$KR" pull -q localhost:5000/busybox:latest >/dev/null
"$KILN" --root "$KR" build -q --network none -t "$IMG" -f "$PEERS_DIR/dockerfiles/c-biglayer/Dockerfile" "$LAB/ctx/empty" >/dev/null
rm -rf "$OUT/oci"
"$KILN" --root "$KR" save --format oci -o "$OUT/oci.tar" "$IMG"
mkdir -p "$OUT/oci" && tar -xf "$OUT/oci.tar" -C "$OUT/oci" && rm "$OUT/oci.tar"
OCI_TAG=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"] // empty' "$OUT/oci/index.json")
$PODMAN rmi -a -f >/dev/null 2>&1 || true
skopeo copy -q "oci:$OUT/oci${OCI_TAG:+:$OCI_TAG}" "containers-storage:[overlay@$LAB/st/podman-reg/root+$LAB/st/podman-reg/run]localhost/bench/c-biglayer:src"

wipe_sink() {  # the lab's push sink, empty
  local pidf=$LAB/registry/sink.pid
  if [ -f "$pidf" ]; then kill "$(cat "$pidf")" 2>/dev/null || true; sleep 0.5; rm -f "$pidf"; fi
  rm -rf "$LAB/registry/sink"
  "$PEERS_DIR/peers.sh" start >/dev/null 2>&1
}

T=$OUT/times.tsv
printf 'tool\tphase\trun\tseconds\tmax_rss_kb\n' > "$T"
timed() {  # tool phase run cmd...
  local tool=$1 phase=$2 run=$3; shift 3
  /usr/bin/time -o "$OUT/t.tmp" -f "%e %M" "$@" >"$OUT/$tool-$phase-$run.log" 2>&1 || {
    echo "FAILED: $tool $phase (log $OUT/$tool-$phase-$run.log)" >&2; tail -5 "$OUT/$tool-$phase-$run.log" >&2; return 1; }
  read -r s kb < <(tail -1 "$OUT/t.tmp")
  printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$phase" "$run" "$s" "$kb" >> "$T"
  printf '%-8s %-5s r%s %7ss %6s MiB\n' "$tool" "$phase" "$run" "$s" "$((kb / 1024))" >&2
}

for r in $(seq 1 "$RUNS"); do
  wipe_sink; sync
  rm -rf "$KR/push-gzip"
  "$KILN" --root "$KR" tag "$IMG" "$DEST:kiln"
  timed kiln push "$r" "$KILN" --root "$KR" push -q "$DEST:kiln"
  wipe_sink; sync
  timed skopeo push "$r" skopeo copy -q --dest-tls-verify=false "oci:$OUT/oci${OCI_TAG:+:$OCI_TAG}" "docker://$DEST:skopeo"
  wipe_sink; sync
  timed podman push "$r" $PODMAN push -q --tls-verify=false localhost/bench/c-biglayer:src "docker://$DEST:podman"
  # Pulls of one image, pushed by kiln, into empty stores.
  "$KILN" --root "$KR" push -q "$DEST:kiln" >/dev/null
  rm -rf "$OUT/pull-kiln" "$OUT/pull-oci"; $PODMAN_PULL rmi -a -f >/dev/null 2>&1 || true; sync
  timed kiln pull "$r" "$KILN" --root "$OUT/pull-kiln" pull -q "$DEST:kiln"
  timed skopeo pull "$r" skopeo copy -q --src-tls-verify=false "docker://$DEST:kiln" "oci:$OUT/pull-oci:x"
  timed podman pull "$r" $PODMAN_PULL pull -q --tls-verify=false "docker://$DEST:kiln"
  $PODMAN_PULL rmi -a -f >/dev/null 2>&1 || true
done
rm -rf "$OUT/pull-kiln" "$OUT/pull-oci" "$OUT/t.tmp"

python3 - "$T" <<'EOF' | tee "$OUT/results.md"
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
rss = {}
for r in rows:
    med.setdefault((r["tool"], r["phase"]), []).append(float(r["seconds"]))
    k = (r["tool"], r["phase"])
    rss[k] = max(rss.get(k, 0), int(r["max_rss_kb"]))
print("| tool | push s | pull s | push peak RSS | pull peak RSS | kiln/tool push | kiln/tool pull |")
print("|---|---|---|---|---|---|---|")
for t in ("kiln", "skopeo", "podman"):
    p, q = st.median(med[(t, "push")]), st.median(med[(t, "pull")])
    kp, kq = st.median(med[("kiln", "push")]), st.median(med[("kiln", "pull")])
    print(f"| {t} | {p:.2f} | {q:.2f} | {rss[(t, 'push')] // 1024} MiB | {rss[(t, 'pull')] // 1024} MiB"
          f" | {kp / p:.2f} | {kq / q:.2f} |")
print(f"\nmedian of {len(med[('kiln', 'push')])} runs; below 1.00 kiln is faster")
EOF
