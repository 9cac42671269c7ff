#!/usr/bin/env bash
# Layer benchmarks for kiln-cache: create+compress (gzip, zstd; 1 and 2 threads), apply and
# digest throughput, with peak RSS, on a generated tree, against `tar | pigz` and `tar | zstd`
# on the same tree in the same run. Prints a markdown table.
#   cache/bench/bench.sh [SIZE_MB ...]     (default: 250 500; run from the workspace root, as root)
# Every command runs under `nice -n -15` and is timed with /usr/bin/time: wall MB/s depends on
# what else the machine runs, so MB per CPU-second (user+sys, all threads and pipeline members)
# is reported too. Needs pigz, zstd, openssl, bc. Scratch in ${BENCH_DIR:-/tmp/kiln-bench}.
set -euo pipefail
read -r -a SIZES <<<"${*:-250 500}"
D=${BENCH_DIR:-/tmp/kiln-bench}
mkdir -p "$D"
cargo build --release -q -p kiln-cache --example layer_bench
B=$PWD/target/release/examples/layer_bench

make_tree() {  # SIZE_MB: half incompressible, half base64 text; 2 MB files plus 4,000 small ones
  local t=$D/tree-$1 n
  [ -d "$t" ] && { echo "$t"; return; }
  mkdir -p "$t/big" "$t/small"
  n=$(( ($1 - 16) / 2 ))
  for i in $(seq 1 "$n"); do
    if (( i % 2 )); then head -c 2000000 /dev/urandom >"$t/big/r$i"
    else head -c 1500000 /dev/urandom | base64 >"$t/big/t$i"; fi
  done
  for i in $(seq 1 4000); do head -c 4000 /dev/urandom | base64 >"$t/small/s$i"; done
  echo "$t"
}

# timed CMD...: runs it, sets WALL, CPU (user+sys seconds) and OUT (its stdout)
timed() {
  local tf=$D/time.$$
  OUT=$(nice -n -15 /usr/bin/time -o "$tf" -f '%e %U %S' "$@")
  read -r WALL u s <"$tf"; CPU=$(echo "$u + $s" | bc); rm -f "$tf"
}
rate() { echo "scale=1; $BYTES / 1000000 / $1" | bc; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$OUT"; }

echo "| tree | what | wall MB/s | MB per CPU-s | peak RSS | peer (same run): wall MB/s, MB per CPU-s |"
echo "|---|---|---|---|---|---|"
for size in "${SIZES[@]}"; do
  tree=$(make_tree "$size")
  BYTES=$(tar -C "$tree" -cf - . | wc -c)
  for t in 1 2; do
    for c in gzip zstd; do
      timed "$B" create "$tree" "$c" "$t"; w=$WALL; cpu=$CPU; k=$(field peak_rss_kb)
      if [ "$c" = gzip ]; then peer="tar | pigz -p$t -6"; else peer="tar | zstd -T$t -3"; fi
      timed bash -c "tar -C '$tree' -cf - . | ${peer#tar | } >/dev/null"
      echo "| ${size} MB | create+$c, $t thread(s) | $(rate "$w") | $(rate "$cpu") | $((k / 1024)) MB | ${peer//|/\\|}: $(rate "$WALL"), $(rate "$CPU") |"
    done
  done
  "$B" write "$tree" "$D/layer.tar" >/dev/null
  rm -rf "$D/apply"; timed "$B" apply "$D/layer.tar" "$D/apply"; w=$WALL; cpu=$CPU; k=$(field peak_rss_kb)
  rm -rf "$D/untar"; mkdir -p "$D/untar"; timed tar -C "$D/untar" -xf "$D/layer.tar"
  echo "| ${size} MB | apply (safe) | $(rate "$w") | $(rate "$cpu") | $((k / 1024)) MB | tar -x: $(rate "$WALL"), $(rate "$CPU") |"
  timed "$B" digest "$D/layer.tar"; w=$WALL; cpu=$CPU; k=$(field peak_rss_kb)
  timed sha256sum "$D/layer.tar"; sw=$WALL
  timed openssl dgst -sha256 "$D/layer.tar"
  echo "| ${size} MB | sha256 digest | $(rate "$w") | $(rate "$cpu") | $((k / 1024)) MB | sha256sum: $(rate "$sw"); openssl: $(rate "$WALL"), $(rate "$CPU") |"
  rm -rf "$D/apply" "$D/untar" "$D/layer.tar"
done
echo
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
