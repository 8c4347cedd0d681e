#!/usr/bin/env bash
# Decode speed through the C ABI against the Rust API, in one run:
#   benches/ffi_overhead.sh [REPETITIONS] [TOKENS] [THREADS]     (default 7, 128, 2)
# Both sides do the same work: the same raw prompt on a fresh session, greedy, TOKENS tokens,
# the text streamed to stdout (here /dev/null) piece by piece. The Rust side is
# `lantern run`; the C side is benches/ffi/decode.c over liblantern_ffi.a. Both report the
# library's own generation rate; the runs alternate (C first on odd repetitions) so that
# drift in the machine's speed falls on both. Prints every run, each side's median and mean,
# the ratio C/Rust of the medians, and the median of the per-repetition ratios.
# The model is $LANTERN_MODEL or the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-7}
tokens=${2:-128}
threads=${3:-2}
prompt="The history of the printing press begins"

cargo build --release -q -p lantern-cli -p lantern-ffi
lib=${CARGO_TARGET_DIR:-target}/release
lantern=target/release/lantern
model="${LANTERN_MODEL:-$($lantern fetch --quiet)}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -std=c11 -O2 -Iinclude benches/ffi/decode.c "$lib/liblantern_ffi.a" \
    -lpthread -ldl -lm -lrt -lutil -lgcc_s -o "$tmp/decode"

# rate LINE: the tok/s after "generated N tokens, "; fails unless N is the asked count.
rate() {
    local line
    line=$(grep -o "generated [0-9]* tokens, [0-9.]* tok/s" "$1") || { cat "$1" >&2; exit 1; }
    set -- $line
    [ "$2" = "$tokens" ] || { echo "only $2 of $tokens tokens generated" >&2; exit 1; }
    echo "$4"
}
run_rust() {
    $lantern run -m "$model" -p "$prompt" -n "$tokens" --temp 0 -t "$threads" \
        >/dev/null 2>"$tmp/err"
    rate "$tmp/err"
}
run_c() {
    "$tmp/decode" "$model" "$prompt" "$tokens" "$threads" >/dev/null 2>"$tmp/err"
    rate "$tmp/err"
}

echo "model $(basename "$model"), $tokens tokens greedy, $threads threads, $reps repetitions"
: >"$tmp/rust"
: >"$tmp/c"
for i in $(seq "$reps"); do
    if [ $((i % 2)) = 1 ]; then
        c=$(run_c); rust=$(run_rust)
    else
        rust=$(run_rust); c=$(run_c)
    fi
    echo "$rust" >>"$tmp/rust"
    echo "$c" >>"$tmp/c"
    printf 'run %d: Rust %s tok/s, C %s tok/s\n' "$i" "$rust" "$c"
done
python3 - "$tmp/rust" "$tmp/c" <<'PY'
import statistics, sys
rust, c = ([float(x) for x in open(p)] for p in sys.argv[1:3])
for name, v in (("Rust API (lantern run)", rust), ("C API (decode.c)", c)):
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"{name}: median {statistics.median(v):.2f} tok/s, mean {statistics.mean(v):.2f} ± {sd:.2f}")
ratio = statistics.median(c) / statistics.median(rust)
print(f"C / Rust (medians): {ratio:.3f} ({(ratio - 1) * 100:+.1f}%)")
# Each repetition's two runs are adjacent in time, so their ratio is the least disturbed by
# other load on the machine.
pairs = sorted(x / y for x, y in zip(c, rust))
q = lambda f: pairs[min(len(pairs) - 1, int(f * len(pairs)))]
print(f"C / Rust (median of the per-repetition ratios): {statistics.median(pairs):.3f} "
      f"({(statistics.median(pairs) - 1) * 100:+.1f}%; quartiles {q(0.25):.3f}..{q(0.75):.3f})")
PY
