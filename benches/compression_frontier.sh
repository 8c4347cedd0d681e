#!/usr/bin/env bash
# Re-quantizes the default model into each variant of docs/COMPRESSION.md's frontier with
# `lantern-lab convert --quantize … --objective …` (and `--budget-bytes` for per-layer
# policies), then prints a markdown row per variant: weight bytes, perplexity on the
# evaluation text, and decode speed. It also writes DIR/frontier.tsv and plots it into
# PLOT (default DIR/frontier.png) with `lantern-lab report frontier`.
# Needs release builds of both binaries: cargo build --release -p lantern-cli -p lantern-lab.
# Usage: benches/compression_frontier.sh MODEL.gguf EVAL.txt [CHUNKS] [DIR]
# Calibrated objectives run on the pinned calibration text (32 chunks of 512 tokens; 16 for
# the objectives that train scales through the blocks, which take 10–30 minutes each).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=$1 eval=$2 chunks=${3:-40} dir=${4:-${TMPDIR:-/tmp}/lantern-frontier}
lantern=${LANTERN:-$here/../target/release/lantern}
lab=${LANTERN_LAB:-$here/../target/release/lantern-lab}
plot=${PLOT:-$dir/frontier.png}
mkdir -p "$dir"
tsv=$dir/frontier.tsv
echo "# series	label	MB	perplexity" >"$tsv"

# name | --quantize spec | objective [| more convert arguments]
variants=(
    "Q8_0|Q8_0|nearest"
    "Q5_0 (embd Q8_0)|Q5_0,embd=Q8_0|nearest"
    "Q4_0 (embd Q8_0)|Q4_0,embd=Q8_0|nearest"
    "Q4_0 (embd Q8_0)|Q4_0,embd=Q8_0|scale-search"
    "Q4_0 (embd Q8_0)|Q4_0,embd=Q8_0|error-feedback"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|nearest"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|scale-search"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|error-feedback"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|block|--calibration-chunks 16"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|window|--calibration-chunks 16"
    "Q3_0 (embd Q8_0)|Q3_0,embd=Q8_0|downstream|--calibration-chunks 16"
    "Q3_0 (embd Q4_0)|Q3_0,embd=Q4_0|scale-search"
    "Q3_0 (embd Q4_0)|Q3_0,embd=Q4_0|error-feedback"
    "policy 80MB|budget=80MB|scale-search"
    "policy 72MB|budget=72MB|scale-search"
    "policy 64MB|budget=64MB|scale-search"
)

# Weight bytes (every tensor; the tied head reads the whole embedding per token), and as
# the container stores them (LZ4 and byte planes where they pay; a GGUF stores them raw).
weights() {
    "$lantern" inspect "$1" |
        awk '/^tensor bytes:/ { raw = $3 } / tensors .* bytes \(/ { sum += $(NF-3) } END { print raw ? raw : sum }'
}
stored() {
    "$lantern" inspect "$1" |
        awk '/^tensor bytes:/ { stored = $5 } / tensors .* bytes \(/ { sum += $(NF-3) } END { print stored ? stored : sum }'
}
ppl() { "$lantern" ppl -m "$1" -f "$eval" --chunks "$chunks" 2>/dev/null | sed -n 's/.*PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p'; }
tg() { "$lantern" bench -m "$1" -p 0 -n 64 -r 3 2>/dev/null | awk -F'|' '/tg64/ { gsub(/ /, "", $5); print $5 }'; }

echo "| variant | objective | weight MB | stored MB | PPL ($chunks chunks) | decode t/s (tg64) |"
echo "|---|---|---:|---:|---:|---:|"
row() {
    local mb stored_mb ppl
    mb=$(echo "$(weights "$4") / 1000000" | bc -l)
    stored_mb=$(echo "$(stored "$4") / 1000000" | bc -l)
    ppl=$(ppl "$4")
    printf '| %s | %s | %.1f | %.2f | %s | %s |\n' "$1" "$2" "$mb" "$stored_mb" "$ppl" "$(tg "$4")"
    printf '%s\t%s\t%.2f\t%s\n' "$3" "$1" "$mb" "${ppl%% *}" >>"$tsv"
}
row "Q4_1 (default file)" "-" "default file" "$model"
for v in "${variants[@]}"; do
    IFS='|' read -r name spec objective more <<<"$v"
    out="$dir/$(echo "$spec-$objective" | tr ',=' '__').lantern"
    case $spec in
        budget=*)
            how=(--budget-bytes "${spec#budget=}" --sensitivities "$dir/sensitivities-$objective.tsv")
            series="per-layer policy, $objective"
            ;;
        *) how=(--quantize "$spec") series=$objective ;;
    esac
    # shellcheck disable=SC2086 # `more` is a list of arguments
    [ -s "$out" ] || "$lab" convert "$model" -o "$out" -q "${how[@]}" --objective "$objective" $more >&2
    row "$name" "$objective" "$series" "$out"
done
"$lab" report frontier "$tsv" -o "$plot" >&2
