#!/usr/bin/env bash
# Writes the peer's reference vectors for ggml types into crates/lantern-core/tests/data/peer/,
# one <TYPE>.bin per type, which crates/lantern-core/tests/peer_vectors.rs checks lantern's
# dequantization and kernels against. The files are committed: `cargo test` never runs this.
#
# Usage: scripts/peer-vectors.sh TYPE...     e.g. scripts/peer-vectors.sh Q3_K Q2_K Q4_K
#
# Builds scripts/peer-vectors.c against the peer's own ggml libraries (PEER names the folder
# that holds them and llama.cpp's tools; by default ../shared/peer/llama-ref.sh builds or
# finds it), with the headers of the same source tree. What the program writes, and how it
# draws blocks and activations, is described at the top of the C file.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 TYPE..." >&2; exit 2; }
bin=${PEER:-$(bash ../shared/peer/llama-ref.sh)}
src=$(cd "$bin/../.." && pwd)
out=target/peer-vectors
mkdir -p target crates/lantern-core/tests/data/peer
cc -O2 -std=c11 -Wall -Wextra -Werror -I"$src/ggml/include" scripts/peer-vectors.c \
    -L"$bin" -lggml-cpu -lggml-base -lm -Wl,-rpath,"$bin" -o "$out"
"$out" crates/lantern-core/tests/data/peer "$@"
