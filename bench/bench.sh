#!/usr/bin/env bash
# bench/bench.sh - kiln against BuildKit and buildah, in one run, on one machine.
#
#   sudo bench/bench.sh [-n RUNS] [-p "PEERS"] [-d "DOCKERFILES"] [-k KILN] [-o DIR]
#
# Uses the peer lab (../shared/peers, or $PEERS_DIR): it installs the peers, starts the local
# registries and dockerd, and times cold build, warm rebuild and push for each Dockerfile and
# peer, interleaved so that kiln and its peers share the machine's state in every run. kiln runs
# under /usr/bin/time to record its peak RSS per command. Then it times the per-RUN sandbox
# overhead: a Dockerfile of 50 `RUN true` steps minus one of 1 step, over 49.
#
# Prints (and writes to DIR/results.md) kiln's median time divided by each peer's, per column;
# below 1.00 kiln is faster. Noise on the 2-core lab machine is about 15%: compare only numbers
# from the same run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$PROJECT/../shared/peers}
RUNS=3
PEERS="docker-buildkit buildah-overlay-oci"
DFS="a-simple b-multistage c-biglayer d-bigcontext"
KILN=${KILN:-$PROJECT/target/release/kiln}
OUT=""
while getopts "n:p:d:k:o:" o; do
  case $o in
    n) RUNS=$OPTARG ;; p) PEERS=$OPTARG ;; d) DFS=$OPTARG ;; k) KILN=$OPTARG ;; o) OUT=$OPTARG ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
  esac
done
LAB=${PEERLAB:-/tmp/peerlab}
OUT=${OUT:-$LAB/results/kiln-bench-$(date -u +%Y%m%dT%H%M%S)}
KILN=$(readlink -f "$KILN")
[ -x "$KILN" ] || { echo "bench.sh: no kiln binary at $KILN (cargo build --release)" >&2; exit 1; }
[ -x "$PEERS_DIR/peers.sh" ] || { echo "bench.sh: no peer lab at $PEERS_DIR (set PEERS_DIR)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root (the peers and kiln's sandbox need it)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
mkdir -p "$OUT"

# kiln as the lab sees it: the real binary under /usr/bin/time, one line per command.
RSS=$OUT/kiln-rss.tsv
: > "$RSS"
WRAP=$OUT/kiln
cat > "$WRAP" <<EOF
#!/bin/sh
exec /usr/bin/time -a -o "$RSS" -f "%M	%e	%C" "$KILN" "\$@"
EOF
chmod +x "$WRAP"

"$PEERS_DIR/peers.sh" prepare
echo "== builds: $RUNS run(s) of $DFS for kiln $PEERS" >&2
KILN=$WRAP "$PEERS_DIR/peers.sh" bench -n "$RUNS" -p "kiln $PEERS" -d "$DFS" -o "$OUT/bench.tsv" >&2

# Per-RUN overhead: cold builds of N x `RUN true`, no cache, for kiln and BuildKit.
echo "== per-RUN overhead" >&2
OVER=$OUT/overhead.tsv
printf 'peer\tsteps\trun\tseconds\n' > "$OVER"
CTX=$OUT/overhead-ctx
mkdir -p "$CTX"
for n in 1 50; do
  {
    echo "FROM localhost:5000/busybox:latest"
    for i in $(seq 1 "$n"); do echo "RUN true # $i"; done
  } > "$CTX/Dockerfile.$n"
done
export DOCKER_HOST=unix://$LAB/docker/docker.sock
stamp() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(stamp)" 'BEGIN { printf "%.3f", b - a }'; }
for r in $(seq 1 "$RUNS"); do
  for n in 1 50; do
    t0=$(stamp)
    "$KILN" --root "$LAB/st/kiln" build -q --no-cache --network none -f "$CTX/Dockerfile.$n" "$CTX" >/dev/null
    printf 'kiln\t%s\t%s\t%s\n' "$n" "$r" "$(since "$t0")" >> "$OVER"
    if [[ " $PEERS " == *" docker-buildkit "* ]]; then
      t0=$(stamp)
      DOCKER_BUILDKIT=1 /usr/bin/docker build -q --no-cache --network none -f "$CTX/Dockerfile.$n" "$CTX" >/dev/null
      printf 'docker-buildkit\t%s\t%s\t%s\n' "$n" "$r" "$(since "$t0")" >> "$OVER"
    fi
  done
done

python3 "$HERE/report.py" "$OUT" "$PEERS" | tee "$OUT/results.md"
echo "(raw data in $OUT)" >&2
