#!/usr/bin/env bash
# Builds top_logits against the peer llama.cpp and prints the binary's path.
# Usage: TOP=$(benches/peer/build.sh) && "$TOP" MODEL.gguf 64 "prompt"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(bash "$here/../../../shared/peer/llama-ref.sh")
src=$(cd "$bin/../.." && pwd)
out="$bin/lantern-top-logits"
if [ ! -x "$out" ] || [ "$here/top_logits.cpp" -nt "$out" ]; then
    g++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" "$here/top_logits.cpp" \
        -L"$bin" -lllama -lggml -lggml-base -Wl,-rpath,"$bin" -o "$out" >&2
fi
echo "$out"
