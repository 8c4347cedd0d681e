"""Writes a random LoRA adapter for SmolLM2-135M with llama.cpp's own gguf-py, to check that
an adapter made elsewhere loads in lantern and gives llama.cpp's perplexity
(docs/ADAPTATION.md):

    python3 benches/random_lora.py GGUF_PY_DIR OUT.gguf

GGUF_PY_DIR is llama.cpp's gguf-py folder (the peer's source, unpacked by
../shared/peer/llama-ref.sh). Rank 8 on all seven matrices of the 30 blocks, factors drawn
from N(0, 0.02) with seed 0, alpha 16.
"""

import sys

import numpy as np

sys.path.insert(0, sys.argv[1])
import gguf  # noqa: E402

D, KV, FF, RANK, BLOCKS = 576, 192, 1536, 8, 30
SHAPES = {"attn_q": (D, D), "attn_k": (D, KV), "attn_v": (D, KV), "attn_output": (D, D),
          "ffn_gate": (D, FF), "ffn_up": (D, FF), "ffn_down": (FF, D)}

rng = np.random.default_rng(0)
w = gguf.GGUFWriter(sys.argv[2], "llama")
w.add_string("general.type", "adapter")
w.add_string("adapter.type", "lora")
w.add_float32("adapter.lora.alpha", 16.0)
for block in range(BLOCKS):
    for part, (inputs, outputs) in SHAPES.items():
        name = f"blk.{block}.{part}.weight"
        w.add_tensor(f"{name}.lora_a", rng.normal(0, 0.02, (RANK, inputs)).astype(np.float32))
        w.add_tensor(f"{name}.lora_b", rng.normal(0, 0.02, (outputs, RANK)).astype(np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
