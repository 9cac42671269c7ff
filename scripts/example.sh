#!/usr/bin/env bash
# The README's example, offline: a base image packed from Debian's busybox-static,
# a real multi-stage build of examples/hello, then a run of the image.
# Needs root (namespaces, overlayfs). KILN=path picks the binary; KILN_ROOT the state dir.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${KILN:-target/release/kiln}
ROOT=${KILN_ROOT:-/tmp/kiln-example}
K=("$KILN" --root "$ROOT")

if ! "${K[@]}" image inspect busybox:latest >/dev/null 2>&1; then
  rfs=$(mktemp -d)
  trap 'rm -rf "$rfs"' EXIT
  (umask 022; mkdir -p "$rfs"/{bin,etc,tmp,root,proc,sys,dev,home})
  cp /bin/busybox "$rfs/bin/busybox"
  for applet in $("$rfs/bin/busybox" --list); do
    [ -e "$rfs/bin/$applet" ] || ln -s busybox "$rfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$rfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rfs/etc/group"
  chmod 1777 "$rfs/tmp"
  tar -C "$rfs" -c . | "${K[@]}" import - busybox:latest
fi

"${K[@]}" build --progress=plain -t hello:1 examples/hello
"${K[@]}" run --rm hello:1
