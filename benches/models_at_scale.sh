#!/usr/bin/env bash
# Random-weight GGUFs with public models' shapes, in the formats people download, for speed
# and memory measurements at scale. Files go to $LANTERN_SCALE_DIR (by default
# ~/.cache/lantern/scale), never into the repository; existing ones are kept.
#
# Usage: benches/models_at_scale.sh SHAPE [FORMAT...]
#   SHAPE: llama-3.2-1b | llama-3.2-3b | llama-3.1-8b (lantern-lab random-model --like)
#   FORMAT: llama-quantize's names; by default Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0 Q3_K_M IQ4_XS
# Prints one path per format. Needs the peer (PEER=$(../shared/peer/llama-ref.sh)) for
# llama-quantize and a release build of lantern-lab (cargo build --release -p lantern-lab).
# The F16 file takes 2.5 GB (1B), 6.4 GB (3B) or 16 GB (8B) of disk while quantizing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shape=$1
shift
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0 Q3_K_M IQ4_XS)
dir=${LANTERN_SCALE_DIR:-$HOME/.cache/lantern/scale}
peer=${PEER:-$(bash "$here/../../shared/peer/llama-ref.sh")}
mkdir -p "$dir"
f16="$dir/$shape-F16.gguf"
missing=0
for f in "${formats[@]}"; do [ -f "$dir/$shape-$f.gguf" ] || missing=1; done
if [ $missing = 1 ] && [ ! -f "$f16" ]; then
    "$here/../target/release/lantern-lab" random-model --like "$shape" -o "$f16" >&2
fi
for f in "${formats[@]}"; do
    out="$dir/$shape-$f.gguf"
    if [ ! -f "$out" ]; then
        "$peer/llama-quantize" "$f16" "$out.tmp" "$f" >/dev/null 2>&1 || {
            echo "llama-quantize $f failed" >&2
            exit 1
        }
        mv "$out.tmp" "$out"
    fi
    echo "$out"
done
