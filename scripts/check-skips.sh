#!/usr/bin/env bash
# Lists the SIMD tests that skipped an instruction set, and fails if this machine has one of
# the instruction sets they skipped: such a skip is a detection bug that would otherwise
# look like a pass.
#
# Usage: scripts/check-skips.sh LOG [--cpu-flags "FLAG ..."]
#
# LOG is the file the tests append to when LANTERN_SKIP_LOG names it, one `<isa>\t<test>`
# line per skipped (instruction set, test) pair, with the names `lantern_core::kernels::Isa`
# displays (see crates/lantern-test-support/src/skips.rs). Start it empty before the tests.
#
# What this machine has is read from /proc/cpuinfo (the `flags` line on x86, `Features` on
# aarch64), not from Rust's feature detection, which is what is being checked. For tests
# run on an emulated CPU, --cpu-flags gives that CPU's flags instead, in cpuinfo's spelling.
set -euo pipefail

usage() {
    echo "usage: $0 LOG [--cpu-flags \"FLAG ...\"]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
log=$1
shift
flags=
flags_from="/proc/cpuinfo"
while [ $# -gt 0 ]; do
    case $1 in
        --cpu-flags)
            [ $# -ge 2 ] || usage
            flags=$2 flags_from="--cpu-flags"
            shift 2
            ;;
        *) usage ;;
    esac
done
if [ "$flags_from" = /proc/cpuinfo ]; then
    flags=$(grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 || true)
fi

# The log exists even when nothing was skipped (the test scripts create it empty), so a
# wrong path is an error rather than a clean result.
if [ ! -f "$log" ]; then
    echo "error: no skip log at $log (set LANTERN_SKIP_LOG to it and start it empty)" >&2
    exit 2
fi

# The cpuinfo flags each instruction set needs, as `lantern_core::kernels::Isa` checks them
# (`avx512vnni` is the AVX2 path's features plus AVX-512 F, BW, VL and VNNI).
needs() {
    case $1 in
        scalar) echo "" ;;
        avx2) echo "avx2 fma f16c" ;;
        avx512vnni) echo "avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni" ;;
        neon) echo "asimd" ;;
        neon+dotprod) echo "asimd asimddp" ;;
        *) return 1 ;;
    esac
}

has_all() {
    local flag
    for flag in $1; do
        [[ " $flags " == *" $flag "* ]] || return 1
    done
}

skips=$(sort -u "$log")
if [ -z "$skips" ]; then
    echo "no SIMD test skipped"
    exit 0
fi

echo "SIMD tests that skipped an instruction set this CPU lacks, by their own detection:"
status=0
wrong=
while IFS=$'\t' read -r isa test; do
    printf '  %-13s %s\n' "$isa" "$test"
    if [ -z "$test" ]; then
        echo "error: malformed line in $log: $isa" >&2
        status=1
    elif ! need=$(needs "$isa"); then
        echo "error: unknown instruction set \"$isa\" (skipped by $test)" >&2
        status=1
    elif has_all "$need"; then
        wrong+="  $isa $test"$'\n'
        status=1
    fi
done <<<"$skips"

if [ -n "$wrong" ]; then
    echo "error: this CPU has these instruction sets (flags from $flags_from), yet tests" \
        "skipped them:" >&2
    printf '%s' "$wrong" >&2
fi
exit $status
