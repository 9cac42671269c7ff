#!/usr/bin/env bash
# Layer benchmarks for kiln-cache: create+compress (gzip, zstd; 1 and 2 threads), apply and
# digest throughput, with peak RSS, on a generated tree, against `tar | pigz` and `tar | zstd -T0`
# on the same tree in the same run. Results go to stdout as a markdown table.
#   cache/bench/bench.sh [SIZE_MB ...]     (default: 250 500; run from the workspace root)
# Needs pigz, zstd, openssl (scripts/deps.sh). Scratch in ${BENCH_DIR:-/tmp/kiln-bench}.
set -euo pipefail
SIZES=("${@:-250 500}")
read -r -a SIZES <<<"${SIZES[*]}"
D=${BENCH_DIR:-/tmp/kiln-bench}
mkdir -p "$D"
cargo build --release -q -p kiln-cache --example layer_bench
B=$PWD/target/release/examples/layer_bench
secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }

make_tree() {  # SIZE_MB: half incompressible, half text-like; 2 MB files plus 4,000 small ones
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

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
echo "| tree | what | MB/s (of tar bytes) | peak RSS | ratio vs peer |"
echo "|---|---|---|---|---|"
for size in "${SIZES[@]}"; do
  tree=$(make_tree "$size")
  bytes=$(tar -C "$tree" -cf - . | wc -c)
  mb() { echo "scale=1; $bytes / 1000000 / $1" | bc; }
  sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
  tar -C "$tree" -cf - . >/dev/null   # warm the page cache: every run below reads cached files
  for t in 1 2; do
    pig=$(secs bash -c "tar -C '$tree' -cf - . | pigz -p $t -6 >/dev/null")
    zst=$(secs bash -c "tar -C '$tree' -cf - . | zstd -q -T$t -3 >/dev/null")
    for c in gzip zstd; do
      out=$("$B" create "$tree" "$c" "$t")
      s=$(field secs <<<"$out"); k=$(field peak_rss_kb <<<"$out")
      peer=$pig; pname="pigz -p$t"; [ "$c" = zstd ] && { peer=$zst; pname="zstd -T$t"; }
      echo "| ${size} MB | create+$c, $t thread(s) | $(mb "$s") | $((k / 1024)) MB | $(echo "scale=2; $peer / $s" | bc)x of tar\\|$pname ($(mb "$peer") MB/s) |"
    done
  done
  zt0=$(secs bash -c "tar -C '$tree' -cf - . | zstd -q -T0 -3 >/dev/null")
  echo "| ${size} MB | peer: tar \\| zstd -T0 -3 | $(mb "$zt0") | - | - |"
  "$B" write "$tree" "$D/layer.tar" >/dev/null
  rm -rf "$D/apply"; out=$("$B" apply "$D/layer.tar" "$D/apply")
  s=$(field secs <<<"$out"); k=$(field peak_rss_kb <<<"$out")
  rm -rf "$D/untar"; mkdir -p "$D/untar"; ut=$(secs tar -C "$D/untar" -xf "$D/layer.tar")
  echo "| ${size} MB | apply (safe, fsync-free) | $(mb "$s") | $((k / 1024)) MB | $(echo "scale=2; $ut / $s" | bc)x of tar -x ($(mb "$ut") MB/s) |"
  out=$("$B" digest "$D/layer.tar"); s=$(field secs <<<"$out"); k=$(field peak_rss_kb <<<"$out")
  sh=$(secs sha256sum "$D/layer.tar"); os=$(secs openssl dgst -sha256 "$D/layer.tar")
  echo "| ${size} MB | sha256 digest | $(mb "$s") | $((k / 1024)) MB | $(echo "scale=2; $sh / $s" | bc)x of sha256sum, $(echo "scale=2; $os / $s" | bc)x of openssl |"
  rm -rf "$D/apply" "$D/untar" "$D/layer.tar"
done
