#!/usr/bin/env bash
# Builds the peer's llama-simple a second time with AVX2 only (no AVX-512), from the source
# that ../shared/peer/llama-ref.sh unpacked, and prints the folder that holds it. On an
# AVX-512 CPU the native peer sums in 16-lane steps; lantern's kernels follow the AVX2
# build's order, so token-for-token comparisons there use this build:
#   PEER=$(benches/peer/avx2.sh) python3 benches/greedy_vs_llama.py MODEL.gguf 64
# First run: about 10 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(bash "$here/../../../shared/peer/llama-ref.sh")
src=$(cd "$native/../.." && pwd)
out="$src/build-avx2"
if [ ! -x "$out/bin/llama-simple" ]; then
    cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF \
        -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF >&2
    cmake --build "$out" -j"$(nproc)" --target llama-simple >&2
fi
echo "$out/bin"
