#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test in the workspace.
# The README's second command and .ci/run both run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
