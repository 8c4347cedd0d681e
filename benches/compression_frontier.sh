#!/usr/bin/env bash
# Re-quantizes the default model into each variant of docs/COMPRESSION.md's frontier with
# `lantern convert --quantize … --objective …`, then prints a markdown row per variant:
# weight bytes, perplexity on the evaluation text, and decode speed.
# Usage: benches/compression_frontier.sh MODEL.gguf EVAL.txt [CHUNKS] [DIR]
# Calibrated objectives run on the pinned calibration text (32 chunks of 512 tokens).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=$1 eval=$2 chunks=${3:-40} dir=${4:-${TMPDIR:-/tmp}/lantern-frontier}
lantern=${LANTERN:-$here/../target/release/lantern}
mkdir -p "$dir"

# name | --quantize spec | objective
variants=(
    "Q8_0|Q8_0|nearest"
    "Q5_0 (embd Q8_0)|Q5_0,embd=Q8_0|nearest"
    "Q4_0 (embd Q8_0)|Q4_0,embd=Q8_0|nearest"
    "Q4_0 (embd Q8_0)|Q4_0,embd=Q8_0|scale-search"
    "Q4_0 (embd Q8_0)|Q4_0,embd=Q8_0|error-feedback"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|nearest"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|scale-search"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|error-feedback"
    "Q3_0 (embd Q4_0)|Q3_0,embd=Q4_0|scale-search"
    "Q3_0 (embd Q4_0)|Q3_0,embd=Q4_0|error-feedback"
)

# Weight bytes (every tensor; the tied head reads the whole embedding per token).
weights() {
    "$lantern" inspect "$1" |
        awk '/^tensor bytes:/ { raw = $3 } / tensors .* bytes \(/ { sum += $(NF-3) } END { print raw ? raw : sum }'
}
ppl() { "$lantern" ppl -m "$1" -f "$eval" --chunks "$chunks" 2>/dev/null | sed -n 's/.*PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p'; }
tg() { "$lantern" bench -m "$1" -p 0 -n 64 -r 3 2>/dev/null | awk -F'|' '/tg64/ { gsub(/ /, "", $5); print $5 }'; }

echo "| variant | objective | weight MB | PPL ($chunks chunks) | decode t/s (tg64) |"
echo "|---|---|---:|---:|---:|"
row() { printf '| %s | %s | %.1f | %s | %s |\n' "$1" "$2" "$(echo "$(weights "$3") / 1000000" | bc -l)" "$(ppl "$3")" "$(tg "$3")"; }
row "Q4_1 (default file)" "-" "$model"
for v in "${variants[@]}"; do
    IFS='|' read -r name spec objective <<<"$v"
    out="$dir/$(echo "$spec-$objective" | tr ',=' '__').lantern"
    [ -s "$out" ] || "$lantern" convert "$model" -o "$out" -q --quantize "$spec" --objective "$objective" >&2
    row "$name" "$objective" "$out"
done
