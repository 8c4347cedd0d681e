#!/usr/bin/env python3
"""Decode speed with the GGUF memory-mapped, under a memory limit and a read throttle.

Usage: python3 benches/mmap_under_limit.py MODEL.gguf [--bandwidths 250e6,1e9]
           [--weights-fraction 0.25] [--gen 16] [--reps 2] [--threads 2] [--timeout 900]
           [--read-ahead-kb KB]

Runs lantern (`lantern bench`, which maps the file by default) and llama.cpp's llama-bench
(`$PEER`, load mode mmap) on tg GEN, each inside fresh cgroups made by benches/cgroup.py,
with the page cache dropped before every run. Needs root and cgroup v1.

Both programs map a private copy of MODEL, made in target/ (on the same disk as the lantern
build): a page of a file that another process has in the page cache is charged to that
process's cgroup, so any other reader of MODEL would lend the limited program its pages
for free, without a read from the device.

1. Resident baseline: each program once with no limit and no throttle. Its memory apart from
   the page cache (anonymous and kernel memory) is the cgroup's peak usage minus the page
   cache still charged to it at exit (the model's pages, the program's binary and libraries).
2. Limit: that memory plus --weights-fraction of the model's weight bytes (the sum of the
   tensor sizes that `lantern inspect` lists). The program's code pages share the budget
   for weights with the model's pages, as they would on a small device.
3. For each bandwidth, each program decodes with its limit and a read throttle on the disk
   holding the model.

Bytes read per token: the device reads of a run (blkio.throttle.io_service_bytes, Read),
minus those of a probe run of the same program under the same limit and throttle with
`-n 1 -r 1` (load and two decoded tokens, warm-up included, for both programs), divided by
the difference in tokens decoded (warm-up runs included: lantern's is GEN tokens,
llama-bench's one). The load's reads cancel out; what remains is what decoding re-reads.

A page fault on a file mapping reads a window of the disk's read_ahead_kb around the missing
page, so that setting decides how much each fault reads. --read-ahead-kb sets it for the
runs and restores it afterwards; the header line gives the value in use.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cgroup import CgroupError, disk_of, run_limited  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANTERN = os.path.join(ROOT, "target", "release", "lantern")
MB = 1e6


def peer_dir():
    """llama.cpp's binaries: $PEER, or built by ../shared/peer/llama-ref.sh."""
    script = os.path.join(ROOT, "..", "shared", "peer", "llama-ref.sh")
    return os.environ.get("PEER") or subprocess.run(
        ["bash", script], check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Program:
    """How to run one program's tg test and read its speed."""

    name: str
    command: Callable[[int, int], list]  # (gen, reps) -> argv
    speed: Callable[[str], tuple]  # stdout -> (mean, sd) tokens/s
    decoded: Callable[[int, int], int]  # (gen, reps) -> tokens decoded, warm-up included


@dataclass
class Run:
    """One measured run: its speed, or why it has none, and what the cgroups saw."""

    speed: tuple = None
    error: str = ""
    peak: int = 0
    read: int = 0
    page_cache: int = 0


def lantern(model, threads):
    """lantern bench; one warm-up run of GEN tokens before the timed ones."""
    def command(gen, reps):
        return [LANTERN, "bench", "-m", model, "-p", "0", "-n", str(gen), "-r", str(reps), "--thread-list", str(threads)]

    def speed(out):
        mean, sd = re.search(r"\| ([\d.]+) ± ([\d.]+) \|", out).groups()
        return float(mean), float(sd)

    return Program("lantern", command, speed, lambda gen, reps: (reps + 1) * gen)


def peer(peer_dir, model, threads):
    """llama.cpp's llama-bench, mapping the file; its warm-up decodes one token."""
    bench = os.path.join(peer_dir, "llama-bench")
    mmap_flag = ["-mmp", "1"] if "--mmap" in subprocess.run([bench, "--help"], capture_output=True, text=True).stdout else ["-lm", "mmap"]

    def command(gen, reps):
        return [bench, "-m", model, "-p", "0", "-n", str(gen), "-r", str(reps), "-t", str(threads), "-o", "json", *mmap_flag]

    def speed(out):
        row = json.loads(out)[0]
        return row["avg_ts"], row["stddev_ts"]

    return Program("llama.cpp", command, speed, lambda gen, reps: reps * gen + 1)


def ensure_lantern():
    """Build the release CLI if it is missing."""
    if not os.path.exists(LANTERN):
        subprocess.run(["cargo", "build", "--release", "-p", "lantern-cli"], cwd=ROOT, check=True)


def weight_bytes(model):
    """Sum of the model's tensor sizes, from `lantern inspect`'s bytes by type."""
    out = subprocess.run([LANTERN, "inspect", model], check=True, capture_output=True, text=True).stdout
    return sum(int(n) for n in re.findall(r"^\s+\S+\s+\d+ tensors\s+(\d+) bytes", out, re.M))


def private_copy(model, scratch):
    """Copy model into the directory scratch, keeping its name; return the copy's path."""
    copy = os.path.join(scratch, os.path.basename(model))
    shutil.copyfile(model, copy)
    return copy


def measure(program, device, gen, reps, limit=None, bps=None, timeout=None):
    """Run program's tg test in fresh cgroups; a failure or timeout becomes Run.error."""
    cmd = program.command(gen, reps)
    print(f"# {program.name}, limit {limit}, read {bps} B/s: {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        proc, usage = run_limited(cmd, limit, bps, device, timeout=timeout, capture_output=True)
    except subprocess.TimeoutExpired:
        return Run(error=f"timeout (> {timeout:.0f} s)")
    run = Run(peak=usage.peak_bytes, read=usage.read_bytes, page_cache=usage.file_bytes)
    if usage.oom_kills:
        run.error = f"OOM-killed ({usage.oom_kills})"
    elif proc.returncode != 0:
        run.error = f"failed (exit {proc.returncode})"
    else:
        run.speed = program.speed(proc.stdout)
    if run.error:
        print(proc.stderr[-2000:], file=sys.stderr)
    return run


def read_per_token(program, device, gen, reps, run, limit, bps, timeout):
    """Device bytes per decoded token: the run's reads minus a `-n 1 -r 1` probe's."""
    probe = measure(program, device, 1, 1, limit, bps, timeout)
    if probe.error:
        return None
    return (run.read - probe.read) / (program.decoded(gen, reps) - program.decoded(1, 1))


def row(program, bps, limit, run, per_token, ratio):
    """One markdown row of the results table."""
    bandwidth = f"{bps / MB:.0f} MB/s" if bps else "unthrottled"
    memory = f"{limit / MB:.1f} MB" if limit else "none"
    speed = f"{run.speed[0]:.2f} ± {run.speed[1]:.2f}" if run.speed else run.error
    read = f"{per_token / MB:.1f} MB" if per_token is not None else "–"
    return f"| {program.name} | {bandwidth} | {memory} | {run.peak / MB:.1f} MB | {speed} | {read} | {ratio} |"


def read_ahead(device, kb=None):
    """The disk's read-ahead in KiB; set it first when kb is given (it also sizes mmap read-around)."""
    path = f"/sys/dev/block/{device}/queue/read_ahead_kb"
    if kb is not None:
        with open(path, "w") as f:
            f.write(str(kb))
    with open(path) as f:
        return int(f.read())


def own_memory_limit(program, run, weights, fraction):
    """The limit for program: its memory apart from the page cache, plus fraction of the weights."""
    own = run.peak - run.page_cache
    limit = int(own + fraction * weights)
    print(f"{program.name}: resident peak {run.peak / MB:.1f} MB, page cache at exit {run.page_cache / MB:.1f} MB, "
          f"so {own / MB:.1f} MB of its own; limit {own / MB:.1f} + {fraction} × {weights / MB:.1f} = {limit / MB:.1f} MB", flush=True)
    return limit


def compare(programs, args, device, weights, bps, limits):
    """Table rows for each program at one bandwidth; bps None is the resident baseline, which sets limits."""
    rows, speeds = [], {}
    for program in programs:
        limit = limits[program.name] if bps else None
        run = measure(program, device, args.gen, args.reps, limit, bps, args.timeout)
        if bps is None:
            if not run.speed:
                sys.exit(f"{program.name} failed without a limit: {run.error}")
            limits[program.name] = own_memory_limit(program, run, weights, args.weights_fraction)
        per_token = None if run.error else read_per_token(program, device, args.gen, args.reps, run, limit, bps, args.timeout)
        speeds[program.name] = run.speed
        ratio = ""
        if program.name == "lantern" and speeds["lantern"] and speeds["llama.cpp"]:
            ratio = f"**{speeds['lantern'][0] / speeds['llama.cpp'][0]:.2f}**"
        rows.append(row(program, bps, limit, run, per_token, ratio))
    return rows


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--bandwidths", default="250e6,1e9", help="read bytes per second, comma-separated")
    ap.add_argument("--weights-fraction", type=float, default=0.25, help="share of the weight bytes the limit leaves room for")
    ap.add_argument("--gen", type=int, default=16, help="tokens decoded per repetition")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900, help="seconds before one run is killed")
    ap.add_argument("--read-ahead-kb", type=int, help="set the disk's read_ahead_kb for the runs, restored afterwards")
    return ap.parse_args()


def run_all(args, model):
    """The resident baselines, then every bandwidth; prints the results."""
    weights = weight_bytes(model)
    device = disk_of(model)
    programs = [peer(peer_dir(), model, args.threads), lantern(model, args.threads)]
    saved = read_ahead(device)
    try:
        ra = read_ahead(device, args.read_ahead_kb)
        print(f"model {os.path.basename(model)}: {os.path.getsize(model) / MB:.1f} MB file, {weights / MB:.1f} MB of weights; "
              f"disk {device}, read_ahead_kb {ra}; tg{args.gen}, {args.reps} reps (+ warm-up), {args.threads} threads\n")
        limits, table = {}, []
        for bps in [None] + [float(b) for b in args.bandwidths.split(",")]:
            table += compare(programs, args, device, weights, bps, limits)
    finally:
        read_ahead(device, saved)
    print("\n| program | read bandwidth | memory limit | cgroup peak | t/s | read / token | lantern / llama.cpp |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(table))


def main():
    args = parse_args()
    ensure_lantern()
    with tempfile.TemporaryDirectory(prefix="mmap-under-limit-", dir=os.path.join(ROOT, "target")) as scratch:
        run_all(args, private_copy(os.path.abspath(args.model), scratch))


if __name__ == "__main__":
    try:
        main()
    except CgroupError as e:
        sys.exit(f"mmap_under_limit.py: {e}")
