#!/usr/bin/env python3
"""Decode speed with FFN activation sparsity, beside dense lantern and llama.cpp, same run.

Usage: python3 benches/sparse_decode.py MODEL.gguf LABEL=THRESHOLDS.txt [...]
           [--threads 2] [--gen 128] [--reps 3] [--rounds 3]

THRESHOLDS.txt come from `lantern calibrate`. Each round runs, one after another so that all
see the same machine state: llama.cpp's llama-bench, dense lantern, and for each threshold
file lantern with the thresholds reading every row (zeroing neurons, skipping no bytes) and
with `--ffn-columns` (the "sparse" run: skipping the zeroed neurons' up rows, when the
thresholds score the gate, and their down columns). The table gives the median over rounds
of each run's mean tokens/s.

"Allowed" is the speedup the skipped bytes would give if decode time were proportional to
the weight bytes read: 1 / (1 - skipped share). The skipped bytes are the zeroed share of
the up matrices' rows (gate thresholds only) and of the down matrices' codes (their scales
are always read; Q4_0 or Q4_1 downs, the formats with column kernels), out of every weight
byte a token reads; the zeroed share is measured by `lantern ppl` on the first chunks of
WikiText-2 test. "Gain" is the share of the allowed gain the run reached:
(speedup - 1) / (allowed - 1).
Needs the peer (PEER=$(../shared/peer/llama-ref.sh)) and a release build of the CLI.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed_vs_llama import LANTERN, llama_bench, peer_dir  # noqa: E402

EVAL = os.environ.get("LANTERN_EVALDATA",
                      os.path.join(os.path.dirname(LANTERN), "..", "..", "..", "shared", "evaldata"))
# The share of a block's bytes that are codes, per format with column kernels: what a zeroed
# neuron's column skips (the blocks' scales are always read).
CODE_SHARE = {"Q4_0": 16 / 18, "Q4_1": 16 / 20}


def lantern_tg(model, threads, gen, reps, *flags):
    args = [LANTERN, "bench", "-m", model, "-t", str(threads), "-r", str(reps), "-p", "0", "-n", str(gen), *flags]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"\| ([\d.]+) ± ([\d.]+) \|", out)[1])


def zeroed_share(model, thresholds, threads):
    out = subprocess.run([LANTERN, "ppl", "-m", model, "-f", os.path.join(EVAL, "wiki.test.raw"), "--chunks", "4",
                          "-t", str(threads), "--thresholds", thresholds], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"zeroed by the thresholds: ([\d.]+)%", out)[1]) / 100


def byte_shares(model):
    """The up matrices' bytes, the down matrices' skippable codes, and the weight bytes a token
    reads (every block's matrices and the output head), from `lantern inspect --tensors`."""
    out = subprocess.run([LANTERN, "inspect", model, "--tensors"], check=True, capture_output=True, text=True).stdout
    tensors = {m[1]: (m[2], m[3].count(",") + 1, int(m[4]))
               for m in re.finditer(r"^\s+(\S+)\s+(\S+)\s+\[([\d, ]+)\] @ \d+ \((\d+) bytes\)", out, re.M)}
    blocks = sum(b for name, (_, dims, b) in tensors.items() if name.startswith("blk.") and dims == 2)
    head = tensors.get("output.weight", tensors["token_embd.weight"])[2]
    # The codes of the down matrices, in formats whose columns can be skipped.
    down = sum(b * CODE_SHARE.get(ty, 0) for name, (ty, _, b) in tensors.items() if name.endswith("ffn_down.weight"))
    up = sum(b for name, (_, _, b) in tensors.items() if name.endswith("ffn_up.weight"))
    return up, down, blocks + head


def scores_gate(thresholds):
    """Whether a thresholds file scores neurons on the gate alone (`criterion gate`)."""
    with open(thresholds) as f:
        return any(line.split() == ["criterion", "gate"] for line in f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("points", nargs="+", help="LABEL=THRESHOLDS.txt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    points = [p.split("=", 1) for p in args.points]
    peer = peer_dir()
    up, down, per_token = byte_shares(args.model)
    runs = {"llama.cpp": [], "dense": []}
    for label, _ in points:
        runs[f"{label} rows"] = []
        runs[f"{label} sparse"] = []
    for _ in range(args.rounds):
        runs["llama.cpp"].append(llama_bench(peer, args.model, "tg", args.gen, args.threads, args.reps)[0])
        runs["dense"].append(lantern_tg(args.model, args.threads, args.gen, args.reps))
        for label, path in points:
            runs[f"{label} rows"].append(lantern_tg(args.model, args.threads, args.gen, args.reps, "--thresholds", path))
            runs[f"{label} sparse"].append(
                lantern_tg(args.model, args.threads, args.gen, args.reps, "--thresholds", path, "--ffn-columns"))
        print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    median = {name: statistics.median(v) for name, v in runs.items()}
    dense, peer_ts = median["dense"], median["llama.cpp"]
    print(f"{args.threads} threads, {args.gen} tokens, median of {args.rounds} rounds of {args.reps} runs; "
          f"up matrices {up / per_token:.1%} and down matrices' codes {down / per_token:.1%} of the "
          f"{per_token / 1e6:.1f} MB a token reads\n")
    print("| run | zeroed | bytes skipped | t/s | vs dense | allowed | gain | vs llama.cpp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| llama.cpp | | | {peer_ts:.1f} | {peer_ts / dense:.2f}× | | | 1.00× |")
    print(f"| lantern dense | | | {dense:.1f} | 1.00× | | | {dense / peer_ts:.2f}× |")
    for label, path in points:
        share = zeroed_share(args.model, path, args.threads)
        skipped = share * ((up if scores_gate(path) else 0) + down) / per_token
        for kind, skip in (("rows", 0.0), ("sparse", skipped)):
            ts = median[f"{label} {kind}"]
            allowed = 1 / (1 - skip)
            gain = f"{(ts / dense - 1) / (allowed - 1):.0%}" if skip else ""
            print(f"| {label}, {kind} | {share:.1%} | {skip:.1%} | {ts:.1f} | {ts / dense:.2f}× | "
                  f"{allowed:.2f}× | {gain} | {ts / peer_ts:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
