#!/usr/bin/env python3
"""lantern beside llama.cpp on GGUF files: greedy tokens, perplexity and (optionally) speed.

Usage: python3 benches/arch_vs_llama.py FILE.gguf... [--n 64] [--ctx 128] [--ppl-tol 0.1]
         [--tie-margin 0] [--peer-build DIR] [--text-bytes 8192] [--threads 2] [--speed]
Needs the peer (PEER=$(../shared/peer/llama-ref.sh)), its top_logits tool (benches/peer/build.sh,
built on first use) and a release build of the CLI (cargo build --release -p lantern-cli).

For each file it prints a table:
  (a) greedy tokens, N per prompt on fixed prompts: llama.cpp's through the C API as
      llama-simple sets it up (benches/peer/top_logits.cpp, which also gives the top-1/top-2
      logit margin of every step), lantern's from `lantern run --temp 0 --ids`. Identical, or
      the first step where they differ with llama.cpp's margin there: a margin near 0 is a
      near-tie that rounding decides, a large one a real difference.
  (b) perplexity of the first --text-bytes of WikiText-2's test text (read from
      $LANTERN_EVALDATA or ../shared/evaldata/wiki.test.raw) with --ctx tokens per chunk, by
      llama-perplexity and `lantern ppl` (the same method), and their relative difference.
  (c) with --speed, prompt and decode tokens/s of both (benches/speed_vs_llama.py's runners).
It exits with 1 if any file has a token mismatch at a margin of at least --tie-margin, a
perplexity difference over --ppl-tol percent, or a run that failed (lantern's error is shown:
an architecture it does not run yet says so here).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # importing a sibling bench must leave no __pycache__ in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed_vs_llama import LANTERN, ROOT, lantern_bench, llama_bench, machine, peer_dir  # noqa: E402

PROMPTS = [
    "The history of the Roman Empire",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
    "The capital of France is",
    "Le café de la gare coûte deux euros, et",
]


def top_logits_tool():
    return subprocess.run(["bash", os.path.join(ROOT, "benches", "peer", "build.sh")],
                          check=True, capture_output=True, text=True).stdout.strip()


def llama_greedy(tool, model, prompt, n, libs):
    """llama.cpp's prompt ids and, per step, (token id, top-1/top-2 margin). With `libs`, the
    tool runs on that build's libllama and libggml (e.g. the AVX2 build)."""
    env = dict(os.environ, LD_LIBRARY_PATH=libs) if libs else None
    out = subprocess.run([tool, model, str(n), prompt, "2"], capture_output=True, check=True, env=env).stdout
    text = out.decode("utf-8", errors="replace")
    prompt_ids = [int(t) for t in re.findall(r"-?\d+", text.split("\n", 1)[0])]
    # A step is "STEP ID PIECE | TOP LOGITS | margin M"; a piece may hold a newline, so the
    # steps are found in order rather than line by line.
    steps, pos = [], 0
    for step in range(n):
        head = re.compile(rf"(?m)^ *{step} +(\d+) ").search(text, pos)
        tail = head and re.compile(r"\| margin (-?[\d.]+)$", re.M).search(text, head.end())
        if not tail:
            break
        steps.append((int(head.group(1)), float(tail.group(1))))
        pos = tail.end()
    return prompt_ids, steps


def lantern_greedy(model, prompt, n, threads):
    """lantern's generated ids, or its error message."""
    run = subprocess.run([LANTERN, "run", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "--ids",
                          "-t", str(threads)], capture_output=True)
    if run.returncode != 0:
        return None, error_text(run.stderr)
    last = run.stdout.decode("utf-8", errors="replace").rstrip("\n").splitlines()[-1]
    return [int(t) for t in re.findall(r"\d+", last)], None


def lantern_prompt_ids(model, prompt):
    run = subprocess.run([LANTERN, "tokenize", "-m", model, "-p", prompt], capture_output=True, text=True)
    return [int(t) for t in re.findall(r"\d+", run.stdout)] if run.returncode == 0 else None


def error_text(stderr):
    lines = [line.strip() for line in stderr.decode("utf-8", errors="replace").splitlines() if line.strip()]
    return " / ".join(lines[-2:]) if lines else "no message"


def compare(theirs, ours, n):
    """None if identical, else the first differing step. llama.cpp's tool prints the
    end-of-generation token it stops on; lantern's list leaves it out."""
    if ours == theirs or (len(theirs) < n and ours == theirs[:-1]):
        return None
    for i, (a, b) in enumerate(zip(theirs, ours)):
        if a != b:
            return i
    return min(len(theirs), len(ours))


def greedy(tool, model, args):
    """Rows of the greedy table, every llama.cpp margin, and whether the file fails. A file
    lantern cannot load gives one row with its error; llama.cpp's margins are still measured."""
    rows, margins, failed, error = [], [], False, None
    for prompt in PROMPTS:
        prompt_ids, steps = llama_greedy(tool, model, prompt, args.n, args.peer_build)
        margins += [m for _, m in steps]
        if error:
            continue
        theirs = [t for t, _ in steps]
        ours, error = lantern_greedy(model, prompt, args.n, args.threads)
        label = prompt if len(prompt) <= 40 else prompt[:37] + "..."
        if error:
            rows.append(("all", "", "lantern failed: " + error, ""))
            failed = True
            continue
        step = compare(theirs, ours, args.n)
        if step is None:
            rows.append((label, len(theirs), "identical", ""))
            continue
        margin = steps[step][1] if step < len(steps) else float("nan")
        what = f"differ at step {step}"
        if step == 0 and lantern_prompt_ids(model, prompt) != prompt_ids:
            what += " (the prompts tokenize differently)"
        elif margin < args.tie_margin:
            what += " (near-tie)"
        else:
            failed = True
        rows.append((label, len(theirs), what, f"{margin:.4f}"))
    return rows, margins, failed


def ppl_text(n_bytes):
    """The first n_bytes of the evaluation text, cut at a line end, in a temporary file."""
    data_dir = os.environ.get("LANTERN_EVALDATA") or os.path.join(ROOT, "..", "shared", "evaldata")
    with open(os.path.join(data_dir, "wiki.test.raw"), "rb") as f:
        head = f.read(n_bytes)
    head = head[: head.rfind(b"\n") + 1]
    tmp = tempfile.NamedTemporaryFile(prefix="arch-ppl-", suffix=".txt", delete=False)
    tmp.write(head)
    tmp.close()
    return tmp.name


FINAL = re.compile(r"Final estimate: PPL = ([\d.]+(?:e[+-]?\d+)?) \+/- ([\d.]+(?:e[+-]?\d+)?)")


def llama_ppl(peer, model, text, ctx, batch, threads):
    run = subprocess.run([os.path.join(peer, "llama-perplexity"), "-m", model, "-f", text, "-c", str(ctx),
                          "-ub", str(batch), "-t", str(threads)], capture_output=True)
    m = FINAL.search(run.stdout.decode(errors="replace") + run.stderr.decode(errors="replace"))
    return (float(m.group(1)), float(m.group(2))) if m else error_text(run.stderr)


def lantern_ppl(model, text, ctx, batch, threads):
    run = subprocess.run([LANTERN, "ppl", "-m", model, "-f", text, "-c", str(ctx), "-b", str(batch),
                          "-t", str(threads)], capture_output=True)
    m = FINAL.search(run.stdout.decode(errors="replace"))
    return (float(m.group(1)), float(m.group(2))) if m else error_text(run.stderr)


def architecture(model):
    """general.architecture, read from the GGUF header without a GGUF library."""
    with open(model, "rb") as f:
        head = f.read(1 << 16)
    key = b"general.architecture"
    i = head.find(key)
    if i < 0:
        return "?"
    i += len(key) + 4  # value type (u32), then the string's u64 length
    length = int.from_bytes(head[i:i + 8], "little")
    return head[i + 8:i + 8 + length].decode(errors="replace")


def quantiles(margins):
    if not margins:
        return "no steps"
    q = statistics.quantiles(margins, n=20) if len(margins) > 1 else [margins[0]] * 19
    small = sum(m < 0.1 for m in margins) / len(margins)
    return (f"{len(margins)} steps: median {statistics.median(margins):.2f}, 5th percentile {q[0]:.3f}, "
            f"min {min(margins):.4f}, {100 * small:.1f}% below 0.1")


def report(model, args, peer, tool, text):
    """Prints one file's table; returns whether it failed."""
    size = os.path.getsize(model) / 1e6
    print(f"\n### {os.path.basename(model)} ({architecture(model)}, {size:.0f} MB)\n")
    rows, margins, failed = greedy(tool, model, args)
    print(f"| prompt | llama.cpp tokens | greedy ({args.n} tokens) | llama.cpp margin there |")
    print("| --- | ---: | --- | ---: |")
    for label, n, what, margin in rows:
        print(f"| {label} | {n} | {what} | {margin} |")
    identical = sum(r[2] == "identical" for r in rows)
    verdict = "lantern failed" if rows[-1][0] == "all" else f"{identical}/{len(rows)} prompts identical"
    print(f"\n{verdict}. llama.cpp's top-1/top-2 logit margins, {quantiles(margins)}.\n")

    ppl_peer = peer
    if args.peer_build and os.path.exists(os.path.join(args.peer_build, "llama-perplexity")):
        ppl_peer = args.peer_build
    theirs = llama_ppl(ppl_peer, model, text, args.ctx, args.ppl_batch, args.threads)
    ours = lantern_ppl(model, text, args.ctx, args.ppl_batch, args.threads)
    which = "" if ppl_peer == peer else f" ({os.path.basename(os.path.dirname(ppl_peer.rstrip('/')))})"
    print(f"| perplexity, -c {args.ctx} | lantern | llama.cpp{which} | difference |")
    print("| --- | ---: | ---: | ---: |")
    if isinstance(theirs, tuple) and isinstance(ours, tuple):
        diff = 100 * (ours[0] - theirs[0]) / theirs[0]
        shown = f"{diff:+.3f}%" if abs(diff) >= 1e-3 else f"{diff:+.1e}%"
        print(f"| first {args.text_bytes} bytes of wiki.test.raw | {ours[0]:.4f} ± {ours[1]:.4f} | "
              f"{theirs[0]:.4f} ± {theirs[1]:.4f} | {shown} |")
        failed |= abs(diff) > args.ppl_tol
    else:
        show = lambda r: f"{r[0]:.4f}" if isinstance(r, tuple) else f"failed: {r}"
        print(f"| first {args.text_bytes} bytes of wiki.test.raw | {show(ours)} | {show(theirs)} | |")
        failed = True

    if args.speed and not any("lantern failed" in r[2] for r in rows):
        print("\n| threads | test | lantern t/s | llama.cpp t/s | ratio |")
        print("| ---: | ---: | ---: | ---: | ---: |")
        for name in args.speed_tests.split(","):
            test, n = name[:2], int(name[2:])
            a = lantern_bench(model, test, n, args.threads, args.reps)
            b = llama_bench(peer, model, test, n, args.threads, args.reps)
            print(f"| {args.threads} | {name} | {a[0]:.1f} ± {a[1]:.1f} | {b[0]:.1f} ± {b[1]:.1f} | {a[0] / b[0]:.2f} |")
    print(f"\nresult: {'FAIL' if failed else 'pass'}", flush=True)
    return failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=64, help="tokens to generate per prompt")
    ap.add_argument("--ctx", type=int, default=128, help="perplexity chunk length")
    ap.add_argument("--text-bytes", type=int, default=8192, help="bytes of wiki.test.raw for perplexity")
    ap.add_argument("--ppl-batch", type=int, default=32,
                    help="tokens per forward pass in perplexity (lantern's -b, llama-perplexity's -ub): "
                         "kernels for larger batches round otherwise, and these files' perplexity shows it")
    ap.add_argument("--ppl-tol", type=float, default=0.1, help="largest perplexity difference that passes, in percent")
    ap.add_argument("--tie-margin", type=float, default=0.0,
                    help="a first difference where llama.cpp's top-1/top-2 margin is below this passes as a near-tie")
    ap.add_argument("--peer-build", metavar="DIR",
                    help="another llama.cpp build's bin folder, e.g. $(benches/peer/avx2.sh): the greedy side "
                         "loads its libraries, and its llama-perplexity, if built there, measures perplexity. "
                         "lantern's kernels keep the AVX2 build's order, so Q4_0 and Q4_1 files agree with it "
                         "bit for bit. By default, the native peer")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--speed", action="store_true", help="also measure prompt and decode speed")
    ap.add_argument("--speed-tests", default="pp128,tg64")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    peer, tool = peer_dir(), top_logits_tool()
    print(f"lantern beside llama.cpp on {machine()}")
    text = ppl_text(args.text_bytes)
    try:
        failed = [report(m, args, peer, tool, text) for m in args.models]
    finally:
        os.remove(text)
    sys.exit(1 if any(failed) else 0)


if __name__ == "__main__":
    main()
