#!/usr/bin/env python3
"""A GGUF with random weights for one model family, laid out as llama.cpp's converter writes it.

Usage: python3 scripts/random_gguf.py FAMILY SHAPE OUTPUT [--type F16] [--seed 0] [--vocab GGUF]
  FAMILY: gemma3 | qwen2 | qwen3 | llama | phi3
  SHAPE:  tiny (a few layers, d = 128: seconds to make and run) or real (the published model's
          shapes: Gemma-3-1B, Qwen2.5-0.5B, Qwen3-0.6B, Llama-3.2-1B, Phi-3.5-mini)
  --type: F32, F16, Q8_0 or Q4_0, written directly (every matrix in that type, as
          `llama-quantize --pure` would, by gguf-py's quantizers), or any
          other llama-quantize type (Q4_K_M, Q6_K, ...), made by llama-quantize from an F16 (or,
          with --via Q8_0, a smaller Q8_0) file written beside OUTPUT and removed afterwards.

Metadata keys, tensor names, shapes and layouts follow llama.cpp's loaders (src/models/*.cpp)
and its converter (conversion/*.py): norms are stored as the multiplier the graph applies
(the converter stores Gemma's 1 + w), Llama 3's RoPE scaling is the rope_freqs tensor the
converter computes, Phi-3's q/k/v are one attn_qkv and its gate and up one ffn_up (gate first),
with LongRoPE factor tensors. Every tokenizer.* key is copied from a vocabulary GGUF of
llama.cpp's models/ folder (Gemma 3's from a real Gemma 3 file), so text tokenizes as the real
model's does.

Weights are random but not flat: linear layers keep activations at unit scale, the embedding
is a small part of the residual stream (so the next token depends on the context, not on the
current token alone), and the logits have a standard deviation of --logit-scale over the
vocabulary, so greedy decoding has a clear top token at most steps (benches/arch_vs_llama.py
reports the top-1/top-2 margins). Needs numpy and llama.cpp's gguf-py (found
from $LLAMA, or beside the peer that ../shared/peer/llama-ref.sh builds).
"""
import argparse
import math
import os
import subprocess
import sys
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def llama_dir():
    """llama.cpp's source: $LLAMA, or the peer's (../shared/peer/llama-ref.sh prints its bin/)."""
    if os.environ.get("LLAMA"):
        return os.environ["LLAMA"]
    script = os.path.join(ROOT, "..", "shared", "peer", "llama-ref.sh")
    bin_dir = os.environ.get("PEER") or subprocess.run(
        ["bash", script], check=True, capture_output=True, text=True).stdout.strip()
    return os.path.dirname(os.path.dirname(bin_dir))


LLAMA = llama_dir()
sys.path.insert(0, os.path.join(LLAMA, "gguf-py"))
import gguf  # noqa: E402  (the reference writer, from llama.cpp's source)

GEMMA3_VOCAB = os.path.expanduser("~/.cache/lantern/gemma3/gemma-3-270m-q4_k_m.gguf")

# Each family's vocabulary and shapes. `real` is the published config.json; `tiny` keeps the
# family's features (GQA, head_dim != d/heads, sliding-window layers, RoPE scaling) at d = 128.
FAMILIES = {
    "llama": {
        "vocab": "ggml-vocab-llama-bpe.gguf",
        # Llama-3.2-1B. Tiny: a short original context so the RoPE factors act on most
        # dimensions within a 128-token window.
        "real": dict(name="Llama-3.2-1B", dim=2048, layers=16, ffn=8192, heads=32, kv_heads=8, head_dim=64,
                     context=131072, rope_base=500000.0, eps=1e-5, tied=True,
                     llama3=dict(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context=8192)),
        "tiny": dict(name="tiny", dim=128, layers=4, ffn=384, heads=4, kv_heads=2, head_dim=32,
                     context=131072, rope_base=500000.0, eps=1e-5, tied=True,
                     llama3=dict(factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0, original_context=64)),
    },
    "qwen2": {
        "vocab": "ggml-vocab-qwen2.gguf",
        "real": dict(name="Qwen2.5-0.5B", dim=896, layers=24, ffn=4864, heads=14, kv_heads=2, head_dim=64,
                     context=32768, rope_base=1000000.0, eps=1e-6, tied=True),
        "tiny": dict(name="tiny", dim=128, layers=3, ffn=352, heads=4, kv_heads=2, head_dim=32,
                     context=32768, rope_base=1000000.0, eps=1e-6, tied=True),
    },
    "qwen3": {
        "vocab": "ggml-vocab-qwen2.gguf",  # Qwen3 kept Qwen2's tokenizer
        "real": dict(name="Qwen3-0.6B", dim=1024, layers=28, ffn=3072, heads=16, kv_heads=8, head_dim=128,
                     context=40960, rope_base=1000000.0, eps=1e-6, tied=True),
        "tiny": dict(name="tiny", dim=128, layers=3, ffn=384, heads=4, kv_heads=2, head_dim=64,
                     context=40960, rope_base=1000000.0, eps=1e-6, tied=True),
    },
    "gemma3": {
        "vocab": GEMMA3_VOCAB,
        # Gemma-3-1B: every sixth layer global (llama.cpp's default pattern), the others local.
        # Tiny: a 32-token window, so local layers differ from global ones within a chunk.
        "real": dict(name="Gemma-3-1B", dim=1152, layers=26, ffn=6912, heads=4, kv_heads=1, head_dim=256,
                     context=32768, rope_base=1000000.0, rope_base_swa=10000.0, sliding_window=512,
                     eps=1e-6, tied=True),
        "tiny": dict(name="tiny", dim=128, layers=6, ffn=512, heads=2, kv_heads=1, head_dim=64,
                     context=32768, rope_base=1000000.0, rope_base_swa=10000.0, sliding_window=32,
                     eps=1e-6, tied=True),
    },
    "phi3": {
        "vocab": "ggml-vocab-phi-3.gguf",
        # Phi-3.5-mini: LongRoPE with 4096 original positions (llama.cpp takes the short
        # factors for a context up to that, the long ones beyond).
        "real": dict(name="Phi-3.5-mini", dim=3072, layers=32, ffn=8192, heads=32, kv_heads=32, head_dim=96,
                     context=131072, original_context=4096, sliding_window=262144, rope_base=10000.0,
                     eps=1e-5, tied=False),
        "tiny": dict(name="tiny", dim=128, layers=3, ffn=320, heads=4, kv_heads=4, head_dim=32,
                     context=131072, original_context=4096, sliding_window=262144, rope_base=10000.0,
                     eps=1e-5, tied=False),
    },
}

# The embedding's share of the residual stream: 1/sqrt(d) of a layer's output. A larger one
# makes the next token a function of the current one alone (greedy decoding falls into a loop
# at once) and, with a tied head, favours repeating the current token.
def embedding_rms(family, s):
    """Root-mean-square of the stored embedding (Gemma scales its input up by sqrt(d))."""
    rms = 1.0 / math.sqrt(s["dim"])
    return rms / math.sqrt(s["dim"]) if family == "gemma3" else rms


# Norm multipliers are 1 + this * N(0, 1): far enough from 1 that a runtime skipping a norm,
# or adding Gemma's 1 a second time, gives other tokens.
NORM_SPREAD = 0.2
# Qwen2's q/k/v biases, N(0, this^2): large enough to move the attention pattern.
BIAS_SCALE = 0.5
# Attention logits' spread, through the query weights' gain: peaked enough that position matters.
QUERY_GAIN = 1.5


def rng_for(seed, name):
    """A generator per tensor, so a tensor's values do not depend on the order of writing."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def llama3_rope_factors(s):
    """The rope_freqs tensor of Llama 3's scaling, as llama.cpp's converter computes it."""
    p = s["llama3"]
    dim = s["head_dim"]
    freqs = 1.0 / (s["rope_base"] ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    low_wavelen = p["original_context"] / p["low_freq_factor"]
    high_wavelen = p["original_context"] / p["high_freq_factor"]
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(p["factor"])
        else:
            smooth = (p["original_context"] / wavelen - p["low_freq_factor"]) / (p["high_freq_factor"] - p["low_freq_factor"])
            factors.append(1 / ((1 - smooth) / p["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


def longrope_factors(s):
    """Phi-3.5's LongRoPE factors have no formula (they were searched); these follow their
    shape: short ones rising from 1 to about 2.9, long ones from about 1.1 to about 60,
    slowly over the high frequencies and fast over the low ones."""
    n = s["head_dim"] // 2
    t = np.linspace(0.0, 1.0, n)
    short = 1.0 + 1.9 * t ** 3
    long = 1.08 * np.exp(np.log(60.0 / 1.08) * t ** 2)
    return short.astype(np.float32), long.astype(np.float32)


def tensor_plan(family, s, n_vocab):
    """(name, numpy shape, kind, fan_in) for every tensor, in llama.cpp's order.
    numpy shape is (rows, cols): GGUF's ne = (cols, rows), a linear layer's (in, out)."""
    d, hd, ffn = s["dim"], s["head_dim"], s["ffn"]
    q, kv = s["heads"] * hd, s["kv_heads"] * hd
    plan = [("token_embd.weight", (n_vocab, d), "embd", d)]
    if family == "llama" and "llama3" in s:
        plan.append(("rope_freqs.weight", (hd // 2,), "rope_freqs", 0))
    if family == "phi3" and "original_context" in s:
        plan.append(("rope_factors_long.weight", (hd // 2,), "rope_long", 0))
        plan.append(("rope_factors_short.weight", (hd // 2,), "rope_short", 0))
    plan.append(("output_norm.weight", (d,), "output_norm", 0))
    if not s["tied"]:
        plan.append(("output.weight", (n_vocab, d), "output", d))
    for i in range(s["layers"]):
        b = f"blk.{i}."
        plan.append((b + "attn_norm.weight", (d,), "norm", 0))
        if family == "phi3":
            plan.append((b + "attn_qkv.weight", (q + 2 * kv, d), "qkv", d))
        else:
            plan += [(b + "attn_q.weight", (q, d), "q", d), (b + "attn_k.weight", (kv, d), "linear", d),
                     (b + "attn_v.weight", (kv, d), "linear", d)]
        if family == "qwen2":
            plan += [(b + "attn_q.bias", (q,), "bias", 0), (b + "attn_k.bias", (kv,), "bias", 0),
                     (b + "attn_v.bias", (kv,), "bias", 0)]
        if family in ("qwen3", "gemma3"):
            plan += [(b + "attn_q_norm.weight", (hd,), "norm", 0), (b + "attn_k_norm.weight", (hd,), "norm", 0)]
        plan.append((b + "attn_output.weight", (d, q), "linear", q))
        if family == "gemma3":
            plan.append((b + "post_attention_norm.weight", (d,), "norm", 0))
        plan.append((b + "ffn_norm.weight", (d,), "norm", 0))
        if family == "phi3":
            plan.append((b + "ffn_up.weight", (2 * ffn, d), "linear", d))  # gate rows, then up rows
        else:
            plan += [(b + "ffn_gate.weight", (ffn, d), "linear", d), (b + "ffn_up.weight", (ffn, d), "linear", d)]
        plan.append((b + "ffn_down.weight", (d, ffn), "linear", ffn))
        if family == "gemma3":
            plan.append((b + "post_ffw_norm.weight", (d,), "norm", 0))
    return plan


def make_tensor(family, s, name, shape, kind, fan_in, seed, logit_scale):
    """The values of one tensor, F32."""
    g = rng_for(seed, name)
    if kind in ("norm", "output_norm"):
        w = 1.0 + NORM_SPREAD * g.standard_normal(shape, dtype=np.float32)
        if kind == "output_norm" and s["tied"]:
            # Tied head: the logits' spread comes from the final norm.
            w *= logit_scale / (embedding_rms(family, s) * math.sqrt(s["dim"]))
        return w
    if kind == "rope_freqs":
        return llama3_rope_factors(s)
    if kind in ("rope_short", "rope_long"):
        return longrope_factors(s)[0 if kind == "rope_short" else 1]
    if kind == "bias":
        return BIAS_SCALE * g.standard_normal(shape, dtype=np.float32)
    w = g.standard_normal(shape, dtype=np.float32)
    if kind == "embd":
        return w * embedding_rms(family, s)
    if kind == "output":
        return w * (logit_scale / math.sqrt(fan_in))
    w /= math.sqrt(fan_in)
    if kind == "q":
        w *= QUERY_GAIN
    elif kind == "qkv":
        w[: s["heads"] * s["head_dim"]] *= QUERY_GAIN
    return w


def copy_tokenizer(w, path):
    """Every tokenizer.* key of a GGUF, with its exact value types. Returns the token count."""
    r = gguf.GGUFReader(path)
    n_vocab = None
    for key, f in r.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = f.types[-1]
            if sub == gguf.GGUFValueType.STRING:
                val = [bytes(f.parts[i]) for i in f.data]  # raw bytes: no re-encoding
            else:
                val = list(f.contents())
            w.add_key_value(key, val, vtype, sub_type=sub)
            if key == "tokenizer.ggml.tokens":
                n_vocab = len(val)
        elif vtype == gguf.GGUFValueType.STRING:
            w.add_key_value(key, bytes(f.parts[f.data[0]]), vtype)
        else:
            w.add_key_value(key, f.contents(), vtype)
    if n_vocab is None:
        sys.exit(f"error: {path} has no tokenizer.ggml.tokens")
    return n_vocab


def hyper_parameters(w, family, s, n_vocab, file_type):
    a = family
    w.add_name(f"{s['name']} shapes, random weights")
    w.add_file_type(file_type)
    w.add_uint32(f"{a}.context_length", s["context"])
    w.add_uint32(f"{a}.embedding_length", s["dim"])
    w.add_uint32(f"{a}.block_count", s["layers"])
    w.add_uint32(f"{a}.feed_forward_length", s["ffn"])
    w.add_uint32(f"{a}.attention.head_count", s["heads"])
    w.add_uint32(f"{a}.attention.head_count_kv", s["kv_heads"])
    w.add_float32(f"{a}.rope.freq_base", s["rope_base"])
    w.add_float32(f"{a}.attention.layer_norm_rms_epsilon", s["eps"])
    if family in ("llama", "qwen3", "gemma3"):
        # The converter writes these when config.json has head_dim.
        w.add_uint32(f"{a}.attention.key_length", s["head_dim"])
        w.add_uint32(f"{a}.attention.value_length", s["head_dim"])
    if family in ("llama", "phi3"):
        w.add_uint32(f"{a}.rope.dimension_count", s["head_dim"])
    if family == "llama":
        w.add_uint32(f"{a}.vocab_size", n_vocab)
    if family == "gemma3":
        w.add_float32(f"{a}.rope.freq_base_swa", s["rope_base_swa"])
        w.add_uint32(f"{a}.attention.sliding_window", s["sliding_window"])
    if family == "phi3":
        w.add_uint32(f"{a}.attention.sliding_window", s["sliding_window"])
    if family == "phi3" and "original_context" in s:
        w.add_uint32(f"{a}.rope.scaling.original_context_length", s["original_context"])
        scale = s["context"] / s["original_context"]
        w.add_float32(f"{a}.rope.scaling.attn_factor", math.sqrt(1 + math.log(scale) / math.log(s["original_context"])))


# Types this script writes itself; the others go through llama-quantize.
DIRECT_TYPES = {"F32": gguf.LlamaFileType.ALL_F32, "F16": gguf.LlamaFileType.MOSTLY_F16,
                "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
QUANTIZED = (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0)


def write_gguf(path, family, s, vocab, seed, logit_scale, wtype):
    """Writes the file tensor by tensor (a 3.8B model holds one tensor at a time)."""
    w = gguf.GGUFWriter(path, family)
    file_type = DIRECT_TYPES[wtype]
    n_vocab = copy_tokenizer(w, vocab)
    hyper_parameters(w, family, s, n_vocab, file_type)
    if wtype in ("Q8_0", "Q4_0"):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    plan = tensor_plan(family, s, n_vocab)

    def storage(shape):
        """How a tensor is stored: vectors stay F32, as the converter keeps them."""
        if len(shape) == 1 or wtype == "F32":
            return gguf.GGMLQuantizationType.F32
        return gguf.GGMLQuantizationType[wtype]

    for name, shape, _, _ in plan:
        qtype = storage(shape)
        block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * block_bytes
        if qtype in QUANTIZED:
            w.add_tensor_info(name, (shape[0], shape[1] // block * block_bytes), np.dtype(np.uint8), nbytes, qtype)
        else:
            dtype = np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16
            w.add_tensor_info(name, shape, np.dtype(dtype), nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    params = 0
    for name, shape, kind, fan_in in plan:
        values = make_tensor(family, s, name, shape, kind, fan_in, seed, logit_scale)
        assert values.shape == tuple(shape), (name, values.shape, shape)
        params += values.size
        qtype = storage(shape)
        if qtype in QUANTIZED:
            w.write_tensor_data(gguf.quants.quantize(values, qtype))
        else:
            w.write_tensor_data(values.astype(np.float32 if qtype == gguf.GGMLQuantizationType.F32 else np.float16))
    w.close()
    return params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("family", choices=sorted(FAMILIES))
    ap.add_argument("shape", choices=["tiny", "real"])
    ap.add_argument("output")
    ap.add_argument("--type", default="F16", help="F32, F16, Q8_0, Q4_0, or another llama-quantize type such as Q4_K_M")
    ap.add_argument("--via", default="F16", choices=["F16", "Q8_0"],
                    help="the file llama-quantize starts from (Q8_0 takes half the disk)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--logit-scale", type=float, default=8.0,
                    help="standard deviation of the logits over the vocabulary")
    ap.add_argument("--vocab", help="GGUF whose tokenizer.* keys to copy (by default the family's)")
    ap.add_argument("--plain-rope", action="store_true",
                    help="leave out the RoPE scaling: llama without rope_freqs (Llama 2 style), "
                         "phi3 without LongRoPE factors (Phi-3-mini-4k style, 4096 positions)")
    args = ap.parse_args()

    s = dict(FAMILIES[args.family][args.shape])
    if args.plain_rope:
        s.pop("llama3", None)
        if s.pop("original_context", None):
            s["context"] = 4096
    vocab = args.vocab or FAMILIES[args.family]["vocab"]
    if not os.path.isfile(vocab):
        vocab = os.path.join(LLAMA, "models", vocab)  # a name in llama.cpp's models/
    if not os.path.isfile(vocab):
        sys.exit(f"error: vocabulary file {vocab} not found (give one with --vocab)")
    out = os.path.abspath(args.output)
    if out.startswith(ROOT + os.sep):
        sys.exit("error: write model files outside the repository")
    os.makedirs(os.path.dirname(out), exist_ok=True)

    wtype = args.type.upper()
    if wtype in DIRECT_TYPES:
        tmp = out + ".tmp"
        params = write_gguf(tmp, args.family, s, vocab, args.seed, args.logit_scale, wtype)
        os.replace(tmp, out)
    else:
        source = f"{out}.{args.via}.tmp"
        params = write_gguf(source, args.family, s, vocab, args.seed, args.logit_scale, args.via)
        quantize = os.path.join(LLAMA, "build-cpu", "bin", "llama-quantize")
        cmd = [quantize] + (["--allow-requantize"] if args.via != "F16" else []) + [source, out + ".tmp", wtype]
        run = subprocess.run(cmd, capture_output=True, text=True)
        os.remove(source)
        if run.returncode != 0:
            sys.exit(f"error: llama-quantize {wtype} failed:\n{run.stderr[-2000:]}")
        os.replace(out + ".tmp", out)
    print(f"wrote {out}: {args.family} {s['name']}, {params / 1e6:.1f}M parameters, {wtype}", file=sys.stderr)


if __name__ == "__main__":
    main()
