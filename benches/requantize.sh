#!/usr/bin/env bash
# Re-quantizes a GGUF with the peer's llama-quantize into the formats the benchmarks compare
# (Q8_0, Q4_0, Q5_0, Q6_K, Q4_K_M, and F16 for the compressibility report) and prints the directory that holds them.
# Usage: DIR=$(benches/requantize.sh MODEL.gguf [DIR])
# SmolLM2-135M's rows of 576 values are not a multiple of 256, so llama-quantize stores most
# tensors of a K-quant file as Q5_0 or Q8_0 (see `lantern inspect`).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=$1 dir=${2:-${TMPDIR:-/tmp}/lantern-requantized}
peer=${PEER:-$(bash "$here/../../shared/peer/llama-ref.sh")}
mkdir -p "$dir"
for ty in Q8_0 Q4_0 Q5_0 Q6_K Q4_K_M F16; do
    out="$dir/$(basename "$model" .gguf).$ty.gguf"
    [ -s "$out" ] || "$peer/llama-quantize" --allow-requantize "$model" "$out.tmp" "$ty" 2 >&2
    [ -s "$out" ] || mv "$out.tmp" "$out"
done
echo "$dir"
