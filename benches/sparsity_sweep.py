#!/usr/bin/env python3
"""Perplexity against FFN activation sparsity, for each calibration criterion.

Usage: python3 benches/sparsity_sweep.py [MODEL] [--criteria cats,gate-up,contribution]
           [--targets 0.1,0.2,0.3,0.4,0.5,0.6,0.7] [--chunks 40] [--threads 2]

For each criterion and target share, calibrates thresholds with `lantern calibrate` on the
pinned calibration text (never the evaluation text), then measures perplexity with them on
the first CHUNKS chunks of 512 tokens of WikiText-2 test (`lantern ppl`, llama.cpp's
method). Prints a markdown table: the share of neurons zeroed on the evaluation text, the
perplexity and its change from dense. Needs a release build of the CLI.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANTERN = os.path.join(ROOT, "target", "release", "lantern")
EVAL = os.environ.get("LANTERN_EVALDATA", os.path.join(ROOT, "..", "shared", "evaldata"))


def lantern(*args):
    done = subprocess.run([LANTERN, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"lantern {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def ppl(model, chunks, threads, *flags):
    """Perplexity, and the share of neurons zeroed when thresholds are given."""
    out = lantern("ppl", "-m", model, "-f", os.path.join(EVAL, "wiki.test.raw"),
                  "--chunks", str(chunks), "-t", str(threads), *flags)
    value = float(re.search(r"PPL = ([\d.]+)", out)[1])
    zeroed = re.search(r"zeroed by the thresholds: ([\d.]+)%", out)
    return value, float(zeroed[1]) / 100 if zeroed else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--criteria", default="cats,gate-up,contribution")
    ap.add_argument("--targets", default="0.1,0.2,0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--chunks", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    model = args.model or lantern("fetch").strip().splitlines()[-1]
    dense, _ = ppl(model, args.chunks, args.threads)
    print(f"dense: PPL {dense:.4f} ({args.chunks} chunks of 512)\n")
    print("| criterion | target | zeroed on the evaluation text | PPL | change |")
    print("| --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for criterion in args.criteria.split(","):
            for target in args.targets.split(","):
                path = os.path.join(tmp, f"{criterion}-{target}.txt")
                lantern("calibrate", "-m", model, "--criterion", criterion, "--target", target,
                        "-t", str(args.threads), "-o", path)
                value, zeroed = ppl(model, args.chunks, args.threads, "--thresholds", path)
                print(f"| {criterion} | {target} | {zeroed:.1%} | {value:.4f} | {value / dense - 1:+.2%} |",
                      flush=True)


if __name__ == "__main__":
    main()
