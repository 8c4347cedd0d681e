#!/usr/bin/env python3
"""Writes the fuzzers' seed files: a tiny GGUF v3 model (seeds/tiny.gguf); then
`lantern convert seeds/tiny.gguf -o seeds/tiny.lantern` makes the container seed.

Usage: python3 fuzz/seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def main():
    kv = [
        ("general.architecture", 8, string("llama")),
        ("llama.block_count", 4, struct.pack("<I", 1)),
        ("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + string("<s>") + string("a") + string("b")),
    ]
    # (name, dims, ggml type, bytes): an f32 norm, a Q8_0 matrix of 2 rows of 32, an f16 vector.
    q8_row = struct.pack("<e", 0.5) + bytes(range(32))
    tensors = [
        ("output_norm.weight", [4], 0, struct.pack("<4f", 1, 2, 3, 4)),
        ("blk.0.attn_q.weight", [32, 2], 8, q8_row * 2),
        ("blk.0.ffn_norm.weight", [4], 1, struct.pack("<4e", 1, 1, 1, 1)),
    ]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, ty, value in kv:
        head += string(key) + struct.pack("<I", ty) + value
    offset, data = 0, b""
    for name, dims, ty, raw in tensors:
        head += string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        head += struct.pack("<IQ", ty, offset)
        pad = -len(raw) % 32
        data += raw + bytes(pad)
        offset += len(raw) + pad
    head += bytes(-len(head) % 32)
    os.makedirs(os.path.join(HERE, "seeds"), exist_ok=True)
    with open(os.path.join(HERE, "seeds", "tiny.gguf"), "wb") as f:
        f.write(head + data)


if __name__ == "__main__":
    main()
