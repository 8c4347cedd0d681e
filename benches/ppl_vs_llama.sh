#!/usr/bin/env bash
# Perplexity of lantern and llama.cpp on the same GGUF and text, one after the other.
# Usage: benches/ppl_vs_llama.sh MODEL.gguf TEXT [CHUNKS] [THREADS]
# (the full WikiText-2 test split is 592 chunks of 512 tokens: about an hour for both.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=$1 text=$2 chunks=${3:-} threads=${4:-2}
peer=${PEER:-$(bash "$here/../../shared/peer/llama-ref.sh")}
args=(-m "$model" -f "$text" -c 512 -t "$threads")
[ -n "$chunks" ] && args+=(--chunks "$chunks")
echo "lantern:"
"$here/../target/release/lantern" ppl "${args[@]}" 2>/dev/null
echo "llama.cpp:"
"$peer/llama-perplexity" "${args[@]}" 2>&1 | grep -E "Final estimate|seconds per pass|tokens per second" || true
