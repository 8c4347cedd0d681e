#!/usr/bin/env python3
"""Streams lantern's reply to one question through the C library (python/lantern.py).

    LANTERN_LIB=target/release/liblantern_ffi.so python3 python/stream_reply.py -m MODEL

Greedy by default, so the reply is the one `assistant -p ... --greedy` gives."""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lantern  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=os.environ.get("LANTERN_MODEL"),
                    help="model file (default: $LANTERN_MODEL)")
    ap.add_argument("--lib", help="liblantern_ffi.so (default: $LANTERN_LIB)")
    ap.add_argument("-p", "--prompt", default="What is the capital of France?")
    ap.add_argument("--system", help="system prompt (default: the template's own)")
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("-n", "--max-tokens", type=int, default=512)
    args = ap.parse_args()
    if not args.model:
        ap.error("no model: pass -m or set LANTERN_MODEL")

    try:
        with lantern.Engine(args.model, lib=args.lib) as engine, \
                engine.session(threads=args.threads) as session:
            messages = [("system", args.system)] if args.system else []
            messages.append(("user", args.prompt))
            session.chat(messages, max_tokens=args.max_tokens, temperature=0.0,
                         on_piece=lambda piece: print(piece, end="", flush=True))
            print()
            st = session.stats()
            print(f"[{st.generated_tokens} tokens, {st.generate_tokens_per_second:.1f} tok/s, "
                  f"stop: {st.stop_reason.name.lower()}]", file=sys.stderr)
    except lantern.LanternError as e:
        print(f"stream_reply: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
