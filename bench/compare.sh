#!/usr/bin/env bash
# bench/compare.sh - kiln's images against buildah's and BuildKit's, built from the same
# Dockerfiles in the peer lab: config fields, layers (file by file), and run output.
#
#   sudo bench/compare.sh [-p "PEERS"] [-d "DOCKERFILES"] [-k KILN] [-o DIR]
#
# Each peer builds each Dockerfile (peers.sh build); the images are exported (kiln save
# --format oci, buildah push oci-archive:, docker save), normalised by skopeo into OCI layouts,
# then compare.py lists, per Dockerfile, every difference between kiln and each peer:
# config (Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes, StopSignal),
# layer count, diff_ids, each layer's entries (type, mode, owner, size, content hash, link
# target; mtimes aside), and the output of `podman run` of the image (verify.sh run).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$PROJECT/../shared/peers}
PEERS="buildah-overlay-oci docker-buildkit"
DFS="a-simple b-multistage c-biglayer d-bigcontext f-meta"
KILN=${KILN:-$PROJECT/target/release/kiln}
OUT=""
while getopts "p:d:k:o:" o; do
  case $o in p) PEERS=$OPTARG ;; d) DFS=$OPTARG ;; k) KILN=$OPTARG ;; o) OUT=$OPTARG ;; *) sed -n '2,12p' "$0"; exit 2 ;; esac
done
LAB=${PEERLAB:-/tmp/peerlab}
OUT=${OUT:-$LAB/results/kiln-compare}
KILN=$(readlink -f "$KILN")
export KILN   # peers.sh runs it too
[ "$(id -u)" = 0 ] || { echo "compare.sh: run as root" >&2; exit 1; }
mkdir -p "$OUT"
"$PEERS_DIR/peers.sh" prepare >&2
export CONTAINERS_CONF=$LAB/containers.conf CONTAINERS_REGISTRIES_CONF=$LAB/registries.conf
export DOCKER_HOST=unix://$LAB/docker/docker.sock

export_image() {  # peer tag archive -> prints the skopeo source
  local peer=$1 tag=$2 ar=$3
  case $peer in
    kiln) "$KILN" --root "$LAB/st/kiln" save --format oci -o "$ar" "$tag"; echo "oci-archive:$ar" ;;
    buildah-*) local p=${peer%-j[0-9]*}
      buildah --root "$LAB/st/$p/root" --runroot "$LAB/st/$p/run" --storage-driver overlay \
        push -q "$tag" "oci-archive:$ar:$tag" >/dev/null; echo "oci-archive:$ar" ;;
    docker-*) /usr/bin/docker save -o "$ar" "$tag"; echo "docker-archive:$ar" ;;
  esac
}

for df in $DFS; do
  for peer in kiln $PEERS; do
    tag=localhost/compare/$df:$peer
    echo "== $peer $df" >&2
    "$PEERS_DIR/peers.sh" reset "$peer" >/dev/null 2>&1
    "$PEERS_DIR/peers.sh" build "$peer" "$df" "$tag" > "$OUT/$peer-$df.build.log" 2>&1 ||
      { echo "build failed: $OUT/$peer-$df.build.log" >&2; continue; }
    rm -rf "$OUT/$peer-$df" "$OUT/$peer-$df.tar"
    src=$(export_image "$peer" "$tag" "$OUT/$peer-$df.tar")
    skopeo copy -q "$src" "oci:$OUT/$peer-$df:img"
    "$PEERS_DIR/verify.sh" run "$src" > "$OUT/$peer-$df.run" 2>"$OUT/$peer-$df.run.err" || echo "run failed: $peer $df" >&2
    rm -f "$OUT/$peer-$df.tar"
  done
  "$PEERS_DIR/peers.sh" reset $PEERS kiln >/dev/null 2>&1 || true
done
python3 "$HERE/compare.py" "$OUT" "$PEERS" "$DFS" | tee "$OUT/report.md"
