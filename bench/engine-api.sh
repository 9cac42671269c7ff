#!/usr/bin/env bash
# bench/engine-api.sh - the Docker Engine API face against dockerd and against kiln's own CLI,
# in one run, on one machine.
#
#   sudo bench/engine-api.sh [-n RUNS] [-b BUILD_RUNS] [-k KILN] [-o DIR]
#
# 1. `docker run --rm busybox true` through kiln's socket (`kiln system service`) and through
#    a reference dockerd (Debian's docker.io, as the peer lab runs it: --bridge=none
#    --iptables=false), each RUNS times interleaved after 3 warm-ups: median ratio kiln/dockerd.
#    The reference dockerd runs in a network namespace this script makes (nsenter --net=), so
#    it cannot touch the host's network; its state lives under the scratch dir.
# 2. `docker build` of the peer lab's Dockerfiles a-d through kiln's socket against
#    `kiln build` of the same, on the same store, BUILD_RUNS times each (cold: --no-cache):
#    median ratio API/CLI (the API's cost: the context as a tar stream and the JSON stream).
# 3. The idle service's RSS (after start, and after all of the above).
# 4. 50 concurrent `docker run --rm busybox true` through one service: how many succeed.
#
# Prints a table and writes it to DIR/results.md. Noise on the 2-core lab machine is ~15%.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$PROJECT/../shared/peers}
RUNS=30
BUILD_RUNS=3
KILN=${KILN:-$PROJECT/target/release/kiln}
OUT=""
while getopts "n:b:k:o:" o; do
  case $o in
    n) RUNS=$OPTARG ;; b) BUILD_RUNS=$OPTARG ;; k) KILN=$OPTARG ;; o) OUT=$OPTARG ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
  esac
done
DOCKER=/usr/local/bin/docker
[ -x "$DOCKER" ] || DOCKER=/usr/bin/docker
KILN=$(readlink -f "$KILN")
[ -x "$KILN" ] || { echo "engine-api.sh: no kiln binary at $KILN (cargo build --release)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "engine-api.sh: run as root" >&2; exit 1; }
command -v dockerd >/dev/null || apt-get install -y -qq docker.io >/dev/null
command -v "$DOCKER" >/dev/null || { echo "engine-api.sh: no docker CLI" >&2; exit 1; }

W=$(mktemp -d /tmp/kiln-bench-api.XXXXXX)
OUT=${OUT:-$W/out}
mkdir -p "$OUT"
SVC_PID="" DOCKERD_PID="" NS_PID=""
cleanup() {
  set +e
  [ -n "$SVC_PID" ] && kill "$SVC_PID" 2>/dev/null && wait "$SVC_PID" 2>/dev/null
  if [ -n "$DOCKERD_PID" ]; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  [ -n "$NS_PID" ] && kill "$NS_PID" 2>/dev/null
  # dockerd's overlay mounts live in the host's mount namespace: none may stay behind.
  grep -o " $W/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$W"
}
trap cleanup EXIT

now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
timed() { local t0; t0=$(now_ms); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; echo $(( $(now_ms) - t0 )); }

# ---------------------------------------------------------------- kiln's service and store
K=("$KILN" --root "$W/root")
rfs=$W/rootfs
(umask 022; mkdir -p "$rfs"/{bin,etc,tmp,root,proc,sys,dev,home})
cp /bin/busybox "$rfs/bin/busybox"
for a in $("$rfs/bin/busybox" --list); do [ -e "$rfs/bin/$a" ] || ln -s busybox "$rfs/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rfs/etc/group"
chmod 1777 "$rfs/tmp"
tar -C "$rfs" -c . | "${K[@]}" import - busybox:latest >/dev/null
"${K[@]}" save -o "$W/busybox.tar" busybox:latest

SOCK=$W/kiln.sock
"${K[@]}" system service --time 0 "unix://$SOCK" >"$W/service.log" 2>&1 & SVC_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
sleep 1
RSS_START=$(rss_kib "$SVC_PID")
DK=("$DOCKER" -H "unix://$SOCK")

# ---------------------------------------------------------------- the reference dockerd, in its own netns
unshare --net --fork sleep infinity & NS_PID=$!
sleep 0.2
NS=(nsenter --net=/proc/$NS_PID/ns/net)
"${NS[@]}" ip link set lo up
DSOCK=$W/docker.sock
"${NS[@]}" dockerd --data-root "$W/docker/data" --exec-root "$W/docker/exec" --pidfile "$W/docker/dockerd.pid" \
  -H "unix://$DSOCK" --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
  --userland-proxy=false --storage-driver overlay2 >"$W/dockerd.log" 2>&1 </dev/null & DOCKERD_PID=$!
DD=("$DOCKER" -H "unix://$DSOCK")
for _ in $(seq 150); do "${DD[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
"${DD[@]}" version >/dev/null || { tail -5 "$W/dockerd.log"; exit 1; }
"${DD[@]}" load -i "$W/busybox.tar" >/dev/null

# ---------------------------------------------------------------- 1. docker run --rm busybox true
for _ in 1 2 3; do "${DK[@]}" run --rm busybox true; "${DD[@]}" run --rm busybox true; done
: >"$W/run-kiln"; : >"$W/run-dockerd"
for _ in $(seq "$RUNS"); do
  timed "${DK[@]}" run --rm busybox true >>"$W/run-kiln"
  timed "${DD[@]}" run --rm busybox true >>"$W/run-dockerd"
done
RUN_K=$(median <"$W/run-kiln"); RUN_D=$(median <"$W/run-dockerd")

# ---------------------------------------------------------------- 2. docker build through the socket vs kiln build
python3 "$PEERS_DIR/gen_contexts.py" "$W/ctx" >/dev/null
declare -A CTX=([a-simple]=a-simple [b-multistage]=empty [c-biglayer]=empty [d-bigcontext]=d-bigcontext)
BUILD_ROWS=""
for df in a-simple b-multistage c-biglayer d-bigcontext; do
  f=$PEERS_DIR/dockerfiles/$df/Dockerfile c=$W/ctx/${CTX[$df]}
  : >"$W/b-api-$df"; : >"$W/b-cli-$df"
  for _ in $(seq "$BUILD_RUNS"); do
    timed "${DK[@]}" build --no-cache --build-arg BASE=busybox:latest -f "$f" -t bench/api-$df "$c" >>"$W/b-api-$df"
    timed "${K[@]}" build --no-cache --progress=plain --build-arg BASE=busybox:latest -f "$f" -t bench/cli-$df "$c" >>"$W/b-cli-$df"
  done
  a=$(median <"$W/b-api-$df"); k=$(median <"$W/b-cli-$df")
  BUILD_ROWS+="| docker build $df via kiln's socket / kiln build | $a ms | $k ms | $(awk -v a="$a" -v b="$k" 'BEGIN{printf "%.2f", a/b}') |"$'\n'
done

# ---------------------------------------------------------------- 3, 4. RSS and 50 at once
RSS_AFTER=$(rss_kib "$SVC_PID")
sleep 6
RSS_IDLE=$(rss_kib "$SVC_PID")
: >"$W/conc"
for i in $(seq 50); do
  ( "${DK[@]}" run --rm busybox sh -c "echo run-$i" >"$W/conc-$i.out" 2>&1 && grep -qx "run-$i" "$W/conc-$i.out" && echo ok >>"$W/conc" ) &
done
wait_jobs() { for j in $(jobs -p); do [ "$j" = "$SVC_PID" ] || [ "$j" = "$DOCKERD_PID" ] || [ "$j" = "$NS_PID" ] || wait "$j" || true; done; }
wait_jobs
CONC_OK=$(wc -l <"$W/conc")
LEFT=$("${K[@]}" ps -aq | wc -l)

{
  echo "## Engine API ($(date -u +%Y-%m-%d), $(nproc) cores, kiln $("$KILN" --version | head -1), dockerd $(dockerd --version | sed 's/,.*//'))"
  echo
  echo "| what | kiln | peer | ratio |"
  echo "|---|---|---|---|"
  echo "| docker run --rm busybox true, median of $RUNS: kiln's socket / dockerd | $RUN_K ms | $RUN_D ms | $(awk -v a="$RUN_K" -v b="$RUN_D" 'BEGIN{printf "%.2f", a/b}') |"
  printf '%s' "$BUILD_ROWS"
  echo
  echo "- service RSS: $((RSS_START / 1024)) MiB at start, $((RSS_AFTER / 1024)) MiB after the runs and builds, $((RSS_IDLE / 1024)) MiB idle 6 s later"
  echo "- 50 concurrent docker run --rm through one service: $CONC_OK/50 succeeded, $LEFT containers left"
} | tee "$OUT/results.md"
