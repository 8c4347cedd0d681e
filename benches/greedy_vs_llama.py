#!/usr/bin/env python3
"""Greedy completions of lantern and llama.cpp's llama-simple, side by side, token by token.

Usage: python3 benches/greedy_vs_llama.py MODEL.gguf [N_PREDICT]
Needs the peer (PEER=$(../shared/peer/llama-ref.sh)) and a release build of lantern-lab
(cargo build --release -p lantern-lab), whose `trace` command gives lantern's steps.
For each prompt it prints whether the two completions are identical; where they differ it
shows the first differing step with lantern's top logits there, so a near-tie is visible.
"""
import os
import subprocess
import sys

PROMPTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nExplain photosynthesis in two sentences.<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nList three prime numbers.<|im_end|>\n<|im_start|>assistant\n",
    "The history of the Roman Empire",
    "Once upon a time, in a small village,",
    "def fibonacci(n):",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LANTERN_LAB = os.path.join(ROOT, "target", "release", "lantern-lab")


def peer_dir():
    script = os.path.join(ROOT, "..", "shared", "peer", "llama-ref.sh")
    return os.environ.get("PEER") or subprocess.run([script], check=True, capture_output=True, text=True).stdout.strip()


def llama_simple(peer, model, prompt, n):
    out = subprocess.run([os.path.join(peer, "llama-simple"), "-m", model, "-n", str(n), prompt],
                         capture_output=True, check=True).stdout
    text = out.decode("utf-8", errors="replace")
    # llama-simple echoes the prompt (special tokens rendered) before the completion.
    return text[len(prompt):] if text.startswith(prompt) else text


def lantern_trace(model, prompt, n):
    out = subprocess.run([LANTERN_LAB, "trace", "-m", model, "-t", "2", "-n", str(n), "--top", "3", "-p", prompt],
                         capture_output=True, check=True, text=True).stdout.splitlines()
    steps = []
    for line in out[1:]:
        step, token, rest = line.split(None, 2)
        text = eval(rest.split(" | ")[0])  # the token's text, printed as a Rust debug string
        steps.append((int(token), text, line))
    return steps


def main():
    model = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    peer = peer_dir()
    same = 0
    for prompt in PROMPTS:
        theirs = llama_simple(peer, model, prompt, n)
        steps = lantern_trace(model, prompt, n)
        ours = "".join(t for _, t, _ in steps if t != "<|im_end|>")
        label = prompt.replace("\n", "\\n")[:60]
        if theirs.rstrip("\n") == ours.rstrip("\n") or theirs.startswith(ours) and len(steps) == n:
            same += 1
            print(f"IDENTICAL  {len(steps):3} tokens  {label}")
            continue
        text = ""
        for i, (_, t, line) in enumerate(steps):
            if not theirs.startswith(text + t):
                print(f"DIFFERS at step {i}  {label}")
                print(f"    llama.cpp continues: {theirs[len(text):len(text) + 40]!r}")
                print(f"    lantern    {line}")
                break
            text += t
    print(f"{same}/{len(PROMPTS)} prompts identical over {n} tokens")


if __name__ == "__main__":
    main()
