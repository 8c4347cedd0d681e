#!/usr/bin/env bash
# Drives one interactive assistant session the way a person would, for the tests:
#   session-test.sh OUTDIR COMMAND...   (COMMAND runs the assistant, e.g. under valgrind)
# Two turns, /reset, a reply stopped by SIGINT (as Ctrl-C sends it), one more turn, then
# end of input. Each reply is recognised by the line --stats prints after it, so COMMAND
# must include --stats. Fails if a step does not finish within $SESSION_TIMEOUT seconds.
set -euo pipefail
out=$1
shift
mkdir -p "$out"
rm -f "$out/in" "$out/stdout" "$out/stderr"
mkfifo "$out/in"
timeout=${SESSION_TIMEOUT:-600}

"$@" <"$out/in" >"$out/stdout" 2>"$out/stderr" &
pid=$!
exec 3>"$out/in"

replies() { grep -c '^\[load' "$out/stderr" || true; }
wait_until() { # wait_until DESCRIPTION TEST-COMMAND...
    local what=$1 deadline=$((SECONDS + timeout))
    shift
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "session-test: the assistant exited while waiting for $what" >&2
            cat "$out/stderr" >&2
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            echo "session-test: no $what within ${timeout}s" >&2
            kill "$pid"
            return 1
        fi
        sleep 0.1
    done
}
has_replies() { [ "$(replies)" -ge "$1" ]; }
stdout_grew() { [ "$(stat -c %s "$out/stdout")" -gt "$1" ]; }

echo "What is the capital of France?" >&3
wait_until "first reply" has_replies 1
echo "And what is its population?" >&3
wait_until "second reply" has_replies 2
echo "/reset" >&3
size=$(stat -c %s "$out/stdout")
echo "Write a long story about a dragon who learns to read." >&3
wait_until "the third reply to start" stdout_grew "$size"
kill -INT "$pid"
wait_until "the stopped reply to end" has_replies 3
echo "Name a color." >&3
wait_until "fourth reply" has_replies 4
exec 3>&-
status=0
wait "$pid" || status=$?

fail() { echo "session-test: $*" >&2; cat "$out/stderr" >&2; exit 1; }
[ $status -eq 0 ] || fail "the assistant exited with $status"
grep -q '^(conversation reset)' "$out/stderr" || fail "no reset"
grep -q '^(reply stopped)' "$out/stderr" || fail "the third reply was not stopped"
[ "$(grep -c 'stop: cancelled' "$out/stderr")" -eq 1 ] || fail "not exactly one cancelled reply"
echo "session-test: 4 replies, a reset and a stopped reply"
