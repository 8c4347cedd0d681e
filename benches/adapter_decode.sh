#!/usr/bin/env bash
# Decode speed with a LoRA adapter against the base model, in one run:
#   benches/adapter_decode.sh ADAPTER [ROUNDS] [THREADS]     (default 5 rounds, 2 threads)
# Each round runs `lantern bench -p 0 -n 128 -r 1` (llama-bench's tg128) once per variant, in
# turn, so that drift in the machine's speed falls on all: the base model; the adapter
# unmerged (its low-rank products beside each adapted matrix); merged at load (--lora-merge);
# unmerged with the adapter's exits combined by vote, and by the first exit at least 90%
# sure. Prints each variant's median tok/s and the median of its per-round ratio to the
# base. The model is $LANTERN_MODEL or the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
adapter=${1:?usage: benches/adapter_decode.sh ADAPTER [ROUNDS] [THREADS]}
rounds=${2:-5}
threads=${3:-2}

cargo build --release -q -p lantern-cli --features tune
lantern=target/release/lantern
model="${LANTERN_MODEL:-$($lantern fetch --quiet)}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variants=(
    "base|"
    "unmerged|--lora $adapter"
    "merged|--lora $adapter --lora-merge"
    "vote|--lora $adapter --exits adapter --exit-rule vote"
    "first=0.9|--lora $adapter --exits adapter --exit-rule first=0.9"
)

echo "model $(basename "$model"), adapter $(basename "$adapter"), tg128, $threads threads, $rounds rounds"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
for i in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        name=${v%%|*}
        # shellcheck disable=SC2086
        $lantern bench -m "$model" -p 0 -n 128 -r 1 -t "$threads" ${v#*|} >"$tmp/out" 2>&1 ||
            { cat "$tmp/out" >&2; exit 1; }
        tps=$(grep -o 'tg128 | [0-9.]*' "$tmp/out" | awk '{print $3}')
        echo "$i $name $tps" | tee -a "$tmp/all"
    done
done
python3 - "$tmp/all" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    i, name, tps = line.split()
    runs[name][i] = float(tps)
base = runs["base"]
print("| variant | tok/s (median) | ratio to base (median of rounds) |")
print("| --- | ---: | ---: |")
for name, r in runs.items():
    ratio = statistics.median(r[i] / base[i] for i in r)
    print(f"| {name} | {statistics.median(r.values()):.1f} | {ratio:.3f} |")
PY
