#!/usr/bin/env python3
"""Prompt and decode speed of lantern and llama.cpp's llama-bench, same GGUF, same run.

Usage: python3 benches/speed_vs_llama.py MODEL.gguf [--threads 1,2] [--reps 5]
Needs the peer (PEER=$(../shared/peer/llama-ref.sh), built on first use) and a release build
of the CLI (cargo build --release -p lantern-cli). Tests alternate between the two programs
so both see the same machine state; the table gives tokens/s, lantern's ratio and each
program's peak resident memory (GNU time's maximum RSS) for that test.
"""
import argparse
import json
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANTERN = os.path.join(ROOT, "target", "release", "lantern")


def peer_dir():
    script = os.path.join(ROOT, "..", "shared", "peer", "llama-ref.sh")
    return os.environ.get("PEER") or subprocess.run(["bash", script], check=True, capture_output=True, text=True).stdout.strip()


def timed(args):
    """Runs `args`; returns its stdout and its peak resident memory in bytes."""
    run = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *args], check=True, capture_output=True, text=True)
    rss_kb = int(re.findall(r"^MAXRSS (\d+)$", run.stderr, re.M)[-1])
    return run.stdout, rss_kb * 1024


def llama_bench(peer, model, test, n, threads, reps):
    args = [os.path.join(peer, "llama-bench"), "-m", model, "-t", str(threads), "-r", str(reps), "-o", "json"]
    args += ["-p", str(n), "-n", "0"] if test == "pp" else ["-p", "0", "-n", str(n)]
    out, rss = timed(args)
    row = json.loads(out)[0]
    return row["avg_ts"], row["stddev_ts"], rss


def lantern_bench(model, test, n, threads, reps):
    args = [LANTERN, "bench", "-m", model, "-t", str(threads), "-r", str(reps)]
    args += ["-p", str(n), "-n", "0"] if test == "pp" else ["-p", "0", "-n", str(n)]
    out, rss = timed(args)
    mean, sd = re.search(r"\| ([\d.]+) ± ([\d.]+) \|", out).groups()
    return float(mean), float(sd), rss


def machine():
    """The CPU's name and the SIMD path lantern's kernels take on it."""
    name, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name == "?":
                name = line.split(":", 1)[1].strip()
            if line.startswith(("flags", "Features")) and not flags:
                flags = set(line.split(":", 1)[1].split())
    if {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx2", "fma", "f16c"} <= flags:
        path = "avx512vnni"
    elif {"avx2", "fma", "f16c"} <= flags:
        path = "avx2"
    elif "asimddp" in flags:
        path = "neon+dotprod"
    else:
        path = "neon" if "asimd" in flags else "scalar"
    return f"{name}, {os.cpu_count()} CPUs, lantern's kernels on the {path} path"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tests", default="pp128,pp512,tg128")
    args = ap.parse_args()
    peer = peer_dir()
    print(f"{os.path.basename(args.model)} on {machine()}\n")
    print("| threads | test | lantern t/s | llama.cpp t/s | ratio | lantern peak RSS | llama.cpp peak RSS |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for threads in [int(t) for t in args.threads.split(",")]:
        for name in args.tests.split(","):
            test, n = name[:2], int(name[2:])
            ours = lantern_bench(args.model, test, n, threads, args.reps)
            theirs = llama_bench(peer, args.model, test, n, threads, args.reps)
            gb = lambda b: f"{b / 1e9:.2f} GB"
            print(f"| {threads} | {name} | {ours[0]:.1f} ± {ours[1]:.1f} | {theirs[0]:.1f} ± {theirs[1]:.1f} | {ours[0] / theirs[0]:.2f} | {gb(ours[2])} | {gb(theirs[2])} |", flush=True)


if __name__ == "__main__":
    main()
