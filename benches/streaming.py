#!/usr/bin/env python3
"""Decode speed of a model streamed under a memory budget, against the I/O bound.

Usage: python3 benches/streaming.py [MODEL.gguf] [--budget 25%] [--storage 250MB/s,1GB/s]
                                    [--depths 0,2] [--gen 32] [--reps 3] [--threads 2]

Converts MODEL (the default model when omitted) into two containers, compressed (LZ4 and
byte planes where they pay) and raw, then measures in one run:
- resident decode (the GGUF memory-mapped and cached), the ceiling of compute;
- for each storage model and container, streamed decode within the budget at each prefetch
  depth (depth 0 reads each block when compute asks for it: the no-prefetch baseline);
- the raw container at the deepest depth again with --direct-io: reads past the page cache
  under the storage model too, to show that the cache does not flatter the throttled rows;
- greedy tokens of the streamed model against the resident one, and the peak weight
  bytes held against the budget.
Each streamed row gives its bound, min(resident t/s, bandwidth / bytes read per token), and
the share of it reached. Needs a release build of the CLI (cargo build --release -p
lantern-cli).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANTERN = os.path.join(ROOT, "target", "release", "lantern")
PROMPT = "The history of the Roman Empire"
UNITS = {"kB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9}


def lantern(*args):
    """Runs the CLI; returns (stdout, stderr)."""
    done = subprocess.run([LANTERN, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"lantern {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout, done.stderr


def default_model():
    out, _ = lantern("fetch")
    return out.strip().splitlines()[-1]


def convert(model, out, *flags):
    """Converts once per model file; returns the weight bytes (raw) and bytes stored."""
    stdout, _ = lantern("convert", model, "-o", out, "-q", *flags)
    rows = re.findall(r"^\w+\s+(\d+)\s+(\d+)\s", stdout, re.M)
    return sum(int(r) for r, _ in rows), sum(int(s) for _, s in rows)


def bench(model, gen, reps, threads, *flags):
    """Decode t/s (mean, sd) and, for a streamed model, the bench's streaming summary."""
    out, err = lantern("bench", "-m", model, "-p", "0", "-n", str(gen), "-r", str(reps),
                       "-t", str(threads), *flags)
    mean, sd = (float(x) for x in re.search(r"\| ([\d.]+) ± ([\d.]+) \|", out).groups())
    summary = re.search(r"streamed ([\d.]+) MB/pass .* peak resident weights (\d+) bytes", err)
    streamed = (float(summary[1]) * 1e6, int(summary[2])) if summary else None
    return mean, sd, streamed


def greedy_ids(model, *flags):
    out, err = lantern("run", "-m", model, "-p", PROMPT, "-n", "32", "--temp", "0", "--ids", *flags)
    ids = re.findall(r"^\[[\d, ]*\]$", out, re.M)[-1]
    peak = re.search(r"peak resident weights (\d+) bytes", err)
    return ids, int(peak[1]) if peak else None


def bandwidth(storage):
    number, unit = re.match(r"([\d.]+)\s*(\w+/s)", storage).groups()
    return float(number) * UNITS[unit]


def budget_bytes(budget, weight_bytes):
    if budget.endswith("%"):
        return int(weight_bytes * float(budget[:-1]) / 100)
    return None  # an absolute budget is checked by the CLI itself


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--budget", default="25%")
    ap.add_argument("--storage", default="250MB/s,1GB/s")
    ap.add_argument("--depths", default="0,2")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "lantern-streaming"))
    args = ap.parse_args()
    model = args.model or default_model()
    os.makedirs(args.dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(model))[0]
    containers = {}
    for kind, flags in [("compressed", []), ("raw", ["--no-compress"])]:
        path = os.path.join(args.dir, f"{name}.{kind}.lantern")
        containers[kind] = (path, *convert(model, path, *flags))
    weight_bytes = containers["raw"][1]
    budget = budget_bytes(args.budget, weight_bytes)
    stream = ["--budget", args.budget]

    print(f"model {os.path.basename(model)}: {weight_bytes / 1e6:.1f} MB of weights; budget {args.budget}"
          + (f" = {budget / 1e6:.2f} MB" if budget else ""))
    for kind, (_, raw, stored) in containers.items():
        print(f"- {kind} container: {stored / 1e6:.2f} MB stored ({raw / stored:.3f}x)")

    resident_ids, _ = greedy_ids(model)
    streamed_ids, peak = greedy_ids(containers["compressed"][0], *stream)
    same = "identical" if resident_ids == streamed_ids else "DIFFERENT"
    within = "" if budget is None else f" ({'within' if peak <= budget else 'OVER'} the budget)"
    print(f"- greedy, 32 tokens: streamed tokens {same} to resident; peak resident weights "
          f"{peak / 1e6:.2f} MB{within}")

    resident, resident_sd, _ = bench(model, args.gen, args.reps, args.threads)
    print(f"- resident (GGUF, mapped and cached): {resident:.2f} ± {resident_sd:.2f} t/s\n")
    print("| storage | container | depth | reads | t/s | MB read/token | bound t/s | share of bound | peak weights MB |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    depths = args.depths.split(",")
    for storage in args.storage.split(","):
        runs = [(kind, depth, []) for kind in containers for depth in depths]
        runs.append(("raw", depths[-1], ["--direct-io"]))
        for kind, depth, extra in runs:
            flags = [*stream, "--depth", depth, "--storage", storage, *extra]
            mean, sd, (per_token, peak) = bench(containers[kind][0], args.gen, args.reps, args.threads, *flags)
            bound = min(resident, bandwidth(storage) / per_token)
            reads = "direct" if extra else "cached"
            print(f"| {storage} | {kind} | {depth} | {reads} | {mean:.2f} ± {sd:.2f} | {per_token / 1e6:.2f} "
                  f"| {bound:.2f} | {mean / bound:.0%} | {peak / 1e6:.2f} |", flush=True)


if __name__ == "__main__":
    main()
