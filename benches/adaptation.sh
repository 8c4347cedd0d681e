#!/usr/bin/env bash
# Edge-LLM's adaptive layer tuning against full-depth LoRA, measured here, in one run:
#   benches/adaptation.sh OUT_DIR [STEPS] [SEQ_LEN] [WINDOW]     (default 60, 256, 6)
# Trains four rank-8 adapters of the model ($LANTERN_MODEL or the default model) on the
# Jargon File's training entries (scripts/fetch-jargon.sh), at lr 1e-3, seed 0:
#   full      every block each step, one exit at the top (plain LoRA), STEPS steps;
#   adaptive  WINDOW blocks each step with an exit right above, exits every WINDOW blocks
#             over the whole model, in turn (Edge-LLM's setting), STEPS steps (equal tokens);
#   upper     the same with exits only over the upper half of the blocks;
#   upper-time  upper for as many steps as fit in full's wall time.
# Each run's seconds per step and peak RSS come from `lantern tune --report json` (separate
# processes). Then the perplexity (llama.cpp's method, 512-token chunks, the first CHUNKS)
# of the held-out entries and of WikiText-2 (forgetting), for the base model, each adapter,
# and the adaptive adapters with their exits combined by vote and by the first exit 90% sure.
# Finally the interop check: llama-perplexity --lora with the upper adapter against
# lantern's on the held-out entries ($LLAMA_PERPLEXITY, else the peer llama-ref.sh built).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: benches/adaptation.sh OUT_DIR [STEPS] [SEQ_LEN] [WINDOW]}
steps=${2:-60}
seq=${3:-256}
window=${4:-6}
chunks=${CHUNKS:-20}
mkdir -p "$out"

cargo build --release -q -p lantern-cli --features tune
lantern=target/release/lantern
model="${LANTERN_MODEL:-$($lantern fetch --quiet)}"
jargon=$(bash scripts/fetch-jargon.sh)
wiki=${LANTERN_EVALDATA:-../shared/evaldata}/wiki.test.raw
echo "model $(basename "$model"); cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"

tune() { # NAME FLAGS...
    local name=$1
    shift
    $lantern tune "$model" --text "$jargon/train.txt" -o "$out/$name.gguf" --rank 8 --alpha 16 \
        --lr 1e-3 --seq-len "$seq" --seed 0 -q --report json "$@" >"$out/$name.json"
    echo "$name: $(cat "$out/$name.json")"
}
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }

blocks=$($lantern inspect "$model" 2>/dev/null | sed -n 's/.*\.block_count = U32(\([0-9]*\)).*/\1/p')
upper=$(python3 -c "import sys; n, w = map(int, sys.argv[1:]); print(','.join(str(e) for e in range(n, n // 2, -w)[::-1]))" "$blocks" "$window")
tune full --full-depth --steps "$steps"
tune adaptive --window "$window" --steps "$steps"
tune upper --window "$window" --exits "$upper" --steps "$steps"
time_steps=$(python3 -c "import sys; print(int(float(sys.argv[1]) * float(sys.argv[2]) / float(sys.argv[3])))" \
    "$steps" "$(field "$out/full.json" sec_per_step)" "$(field "$out/upper.json" sec_per_step)")
tune upper-time --window "$window" --exits "$upper" --steps "$time_steps"

ppl() { # TEXT FLAGS...
    local text=$1
    shift
    $lantern ppl -m "$model" -f "$text" -c 512 --chunks "$chunks" "$@" 2>&1 |
        grep -o 'PPL = [0-9.]*' | awk '{print $3}'
}
printf '| model | held-out jargon ppl | wiki ppl |\n| --- | ---: | ---: |\n' | tee "$out/ppl.md"
while IFS='|' read -r name flags; do
    # shellcheck disable=SC2086
    printf '| %s | %s | %s |\n' "$name" "$(ppl "$jargon/test.txt" $flags)" "$(ppl "$wiki" $flags)" |
        tee -a "$out/ppl.md"
done <<ROWS
base|
full|--lora $out/full.gguf
adaptive|--lora $out/adaptive.gguf
adaptive + vote|--lora $out/adaptive.gguf --exits adapter --exit-rule vote
upper|--lora $out/upper.gguf
upper + vote|--lora $out/upper.gguf --exits adapter --exit-rule vote
upper + first=0.9|--lora $out/upper.gguf --exits adapter --exit-rule first=0.9
upper-time|--lora $out/upper-time.gguf
upper-time + vote|--lora $out/upper-time.gguf --exits adapter --exit-rule vote
ROWS

peer=${LLAMA_PERPLEXITY:-$(ls ~/.cache/lantern-peer/llama-cpp-python-*/src/vendor/llama.cpp/build-cpu/bin/llama-perplexity 2>/dev/null | head -1)}
if [ -x "$peer" ]; then
    theirs=$("$peer" -m "$model" -f "$jargon/test.txt" -c 512 --chunks "$chunks" --lora "$out/upper.gguf" 2>&1 |
        grep -o 'PPL = [0-9.]*' | awk '{print $3}')
    ours=$(ppl "$jargon/test.txt" --lora "$out/upper.gguf")
    python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'interop: lantern {a:.4f}, llama-perplexity --lora {b:.4f}, {100 * (a / b - 1):+.3f}%')" "$ours" "$theirs" |
        tee "$out/interop.txt"
fi
