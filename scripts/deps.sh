#!/usr/bin/env bash
# Installs the Debian packages that building and testing kiln need. Idempotent.
# Needs root (or sudo) and Debian's package mirrors; nothing else from the network.
set -euo pipefail
PKGS=(
  build-essential pkg-config   # crates that build C
  busybox-static               # the offline base image for examples and tests
  python3 python3-venv         # test helpers; a venv for the Engine API's Python clients (from PyPI)
  docker-compose               # Engine API tests: Debian's compose 1.29 drives kiln's socket
  git                          # git build contexts (git daemon on loopback)
  skopeo umoci jq podman       # store tests: images checked by tools kiln did not write
  buildah                      # differential tests: testdata/build-diff built by kiln and by buildah
  pigz zstd                    # store benchmarks compare against these
  slirp4netns                  # the default network mode of kiln run, and user networks' way out
  iptables                     # NAT and isolation rules inside a user network's own namespace (never the host's)
  runc                         # the runtime benchmark compares against it
  bsdutils curl                # script(1) for pty tests, curl for port publishing
  docker-registry apache2-utils skopeo openssl   # registry tests: a real registry, htpasswd, image checks, token keys
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo not found: install Rust with rustup first" >&2; exit 1; }
