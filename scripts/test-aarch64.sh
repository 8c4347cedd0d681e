#!/usr/bin/env bash
# Builds lantern-core's tests for aarch64 and runs them under qemu-user, so that every NEON
# kernel is checked against its scalar twin on an x86-64 machine: once on an emulated CPU
# with the dot-product instructions (both NEON paths run) and once on a Cortex-A53, which
# lacks them (the detection must then keep to plain NEON).
#
# Needs Debian's rustc-web and cargo-web (1.96) with the arm64 standard library, an aarch64
# linker and qemu-user; `--install` installs them with apt (as root). rustup's toolchain is
# not used: it has no aarch64 standard library here.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--install" ]; then
    dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web libstd-rust-web-dev:arm64 \
        gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null
fi

export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR=target/aarch64-debian
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# The programs link against the cross libc in /usr/aarch64-linux-gnu; without the library
# path, the loader would pair it with the multiarch libc6:arm64 that the standard library
# package pulls in, and the mismatched pair hangs at the first thread.
emulate="qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib"
# The skip check cannot read the emulated CPU's features from the host's /proc/cpuinfo, so it
# is given them in cpuinfo's spelling: qemu's `max` has Advanced SIMD and the dot-product
# instructions (asimd, asimddp), a Cortex-A53 Advanced SIMD only. A dotprod skip under `max`
# then fails the run as a detection bug, and under the Cortex-A53 it is only listed (along
# with the x86 paths, which no aarch64 CPU runs).
for cpu in max cortex-a53; do
    case $cpu in
        max) cpu_flags="asimd asimddp" ;;
        cortex-a53) cpu_flags="asimd" ;;
    esac
    echo "== lantern-core tests on an emulated aarch64 CPU: $cpu"
    mkdir -p "$CARGO_TARGET_DIR"
    log="$PWD/$CARGO_TARGET_DIR/skips-$cpu.txt"
    : >"$log"
    # qemu-user hands the host's environment, this variable included, to the tests.
    LANTERN_SKIP_LOG="$log" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$emulate -cpu $cpu" \
        /usr/bin/cargo test -q --release -p lantern-core --target aarch64-unknown-linux-gnu
    scripts/check-skips.sh "$log" --cpu-flags "$cpu_flags"
done
