#!/usr/bin/env bash
# The C ABI's tests from the outside, as C, C++ and Python programs use it:
#   - the library (release) and the CLI are built;
#   - the header compiles as C11 and as C++ with warnings as errors;
#   - the assistant (examples/assistant) is built with a plain cc line against the static
#     library, and with CMake against a prefix from scripts/install-ffi.sh (and with
#     pkg-config against the shared library from that prefix);
#   - each build answers the Paris question greedily with the reply `lantern run --chat`
#     gives, and the Python example (python/stream_reply.py, ctypes) gives it too;
#   - streaming a .lantern container within a 32MB budget gives the same reply;
#   - five turns in a 160-token context are all answered, the oldest turns left out;
#   - with a system prompt, the assistant's reply equals `lantern run` on the prompt the
#     template renders for the same two messages;
#   - a whole interactive session (two turns, /reset, a reply stopped by SIGINT, one more
#     turn) runs under valgrind with no errors and nothing definitely or indirectly lost.
# `--aarch64` instead cross-builds the library and the assistant for aarch64-linux-gnu with
# Debian's rustc-web (as scripts/test-aarch64.sh does; `scripts/test-aarch64.sh --install`
# installs the tools) and answers the Paris question under qemu-user.
# The model is $LANTERN_MODEL, or the default model (`lantern fetch`).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=native
case "${1:-}" in
    "") ;;
    --aarch64) mode=aarch64 ;;
    *) echo "usage: scripts/test-ffi.sh [--aarch64]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# What `rustc --print native-static-libs` lists for a Rust staticlib on Linux with glibc.
rust_libs="-lpthread -ldl -lm -lrt -lutil -lgcc_s"
question="What is the capital of France?"
system="You are a helpful assistant."
n=64

step() { echo "== $*"; }
fail() { echo "test-ffi: FAILED: $*" >&2; exit 1; }
# same NAME EXPECTED-FILE ACTUAL-FILE
same() {
    if cmp -s "$2" "$3"; then
        echo "   $1: same reply ($(head -c 60 "$3" | tr '\n' ' ')...)"
    else
        diff <(cat -A "$2") <(cat -A "$3") >&2 || true
        fail "$1: the reply differs from lantern run's"
    fi
}

# The CLI gives the reference replies; it is built for the host in both modes.
cargo build --release -p lantern-cli
lantern=target/release/lantern
model="${LANTERN_MODEL:-$($lantern fetch --quiet)}"
step "model: $model"

step "reference: lantern run --chat, greedy, $n tokens"
$lantern run -m "$model" --chat -p "$question" --temp 0 -n $n -t 2 >"$tmp/ref-chat.txt"
# The prompt SmolLM2's chat template renders for a system and a user message.
rendered="<|im_start|>system
$system<|im_end|>
<|im_start|>user
$question<|im_end|>
<|im_start|>assistant
"
$lantern run -m "$model" -p "$rendered" --temp 0 -n $n -t 2 >"$tmp/ref-system.txt"

if [ $mode = aarch64 ]; then
    export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    export CARGO_TARGET_DIR=target/aarch64-debian
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    # Without the library path the loader pairs the cross libc with libc6:arm64, and the
    # mismatched pair hangs at the first thread (see scripts/test-aarch64.sh).
    emulate="qemu-aarch64 -L /usr/aarch64-linux-gnu -E LD_LIBRARY_PATH=/usr/aarch64-linux-gnu/lib"
    step "cross-building lantern-ffi for aarch64"
    /usr/bin/cargo build --release -p lantern-ffi --target aarch64-unknown-linux-gnu
    lib=$CARGO_TARGET_DIR/aarch64-unknown-linux-gnu/release
    aarch64-linux-gnu-gcc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude \
        examples/assistant/assistant.c "$lib/liblantern_ffi.a" $rust_libs -o "$tmp/assistant"
    file "$tmp/assistant" | grep -q 'ARM aarch64' || fail "the assistant is not an aarch64 program"
    step "the assistant under qemu-aarch64"
    $emulate "$tmp/assistant" -m "$model" -p "$question" --greedy -n $n -t 2 >"$tmp/arm.txt"
    same "aarch64 assistant" "$tmp/ref-chat.txt" "$tmp/arm.txt"
    step "all aarch64 checks passed"
    exit 0
fi

step "building lantern-ffi (release)"
cargo build --release -p lantern-ffi
lib=${CARGO_TARGET_DIR:-target}/release

step "the header as C11 and as C++"
for std in c11 c17; do
    echo '#include "lantern.h"' | cc -std=$std -Wall -Wextra -Wpedantic -Werror -Iinclude \
        -fsyntax-only -x c -
done
echo '#include "lantern.h"
int main() { lantern_engine *e = nullptr; lantern_engine_free(e); return lantern_abi_version() == LANTERN_ABI_VERSION ? 0 : 1; }' |
    c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -Iinclude -x c++ - -x none "$lib/liblantern_ffi.a" \
        $rust_libs -o "$tmp/cxx-check"
"$tmp/cxx-check"

step "the assistant with cc against the static library"
cc -std=c11 -O2 -Wall -Wextra -Werror -Iinclude examples/assistant/assistant.c \
    "$lib/liblantern_ffi.a" $rust_libs -o "$tmp/assistant"
if ldd "$tmp/assistant" | grep -q lantern; then fail "the static build links a shared lantern"; fi

step "the assistant with CMake against an installed prefix"
scripts/install-ffi.sh --no-build "$tmp/prefix"
cmake -S examples/assistant -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_TYPE=Release >"$tmp/cmake.log" || { cat "$tmp/cmake.log"; fail "cmake"; }
cmake --build "$tmp/build" >>"$tmp/cmake.log" || { cat "$tmp/cmake.log"; fail "cmake --build"; }

step "the assistant with pkg-config against the shared library"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# shellcheck disable=SC2046 # pkg-config's words are meant to split
cc -std=c11 -O2 examples/assistant/assistant.c $(pkg-config --cflags --libs lantern) -lpthread \
    -Wl,-rpath,"$tmp/prefix/lib" -o "$tmp/assistant-shared"
ldd "$tmp/assistant-shared" | grep -q "$tmp/prefix/lib/liblantern_ffi.so" ||
    fail "the pkg-config build does not use the installed shared library"

step "the Paris question, greedy: each build and Python against lantern run --chat"
for build in "$tmp/assistant" "$tmp/build/assistant" "$tmp/assistant-shared"; do
    "$build" -m "$model" -p "$question" --greedy -n $n -t 2 >"$tmp/reply.txt"
    same "${build#"$tmp"/}" "$tmp/ref-chat.txt" "$tmp/reply.txt"
done
LANTERN_LIB="$lib/liblantern_ffi.so" python3 python/stream_reply.py -m "$model" -p "$question" \
    -n $n -t 2 >"$tmp/python.txt"
same "python/stream_reply.py" "$tmp/ref-chat.txt" "$tmp/python.txt"
"$tmp/assistant" -m "$model" --system "$system" -p "$question" --greedy -n $n -t 2 >"$tmp/reply.txt"
same "assistant --system against the rendered prompt" "$tmp/ref-system.txt" "$tmp/reply.txt"

step "streaming a .lantern container within a 32MB budget gives the same reply"
$lantern convert "$model" -o "$tmp/model.lantern" >/dev/null
"$tmp/assistant" -m "$tmp/model.lantern" --budget 32MB -p "$question" --greedy -n $n -t 2 \
    --stats >"$tmp/reply.txt" 2>"$tmp/stats.txt"
same "assistant --budget 32MB" "$tmp/ref-chat.txt" "$tmp/reply.txt"
grep -q "streamed [1-9]" "$tmp/stats.txt" || fail "nothing was streamed: $(cat "$tmp/stats.txt")"

step "a conversation longer than the context: the oldest turns are left out, every turn answered"
printf '%s\n' "$question" "Name a color." "What is two plus two?" "Name an animal." \
    "What is the largest ocean?" |
    "$tmp/assistant" -m "$model" --greedy -n 24 -c 160 -t 2 --stats >/dev/null 2>"$tmp/trim.txt" ||
    fail "the long conversation: $(cat "$tmp/trim.txt")"
[ "$(grep -c '^\[load' "$tmp/trim.txt")" -eq 5 ] || fail "not 5 replies: $(cat "$tmp/trim.txt")"
grep -q "oldest turn left out" "$tmp/trim.txt" || fail "no turn was left out: $(cat "$tmp/trim.txt")"
echo "   5 replies in a 160-token context, $(grep -c 'left out' "$tmp/trim.txt") time(s) with the oldest turn left out"

step "errors: a missing model names the file and exits 1"
status=0
"$tmp/assistant" -m "$tmp/no-such-model.gguf" -p "$question" 2>"$tmp/err.txt" >/dev/null || status=$?
[ $status -eq 1 ] && grep -q "no-such-model.gguf" "$tmp/err.txt" ||
    fail "missing model: status $status, $(cat "$tmp/err.txt")"
echo "   $(cat "$tmp/err.txt")"

step "a session under valgrind: two turns, /reset, a stopped reply, one more turn"
# One thread: valgrind runs threads one at a time, and spinning workers would only crawl.
SESSION_TIMEOUT=${SESSION_TIMEOUT:-1200} examples/assistant/session-test.sh "$tmp/session" \
    valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
    --log-file="$tmp/valgrind.log" \
    "$tmp/assistant" -m "$model" --greedy -n 16 -c 512 -t 1 --stats ||
    { cat "$tmp/valgrind.log" >&2; fail "the valgrind session"; }
if grep -E "definitely lost: [1-9]|indirectly lost: [1-9]|ERROR SUMMARY: [1-9]" "$tmp/valgrind.log"; then
    fail "valgrind found errors or leaks"
fi
echo "   valgrind: 0 errors, nothing definitely or indirectly lost"

step "all checks passed"
