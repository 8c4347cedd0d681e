#!/usr/bin/env python3
"""Renders real chat templates the way HuggingFace transformers' `apply_chat_template` does,
for fixed conversations, and prints the texts as JSON: the reference lantern's renders are
pinned against (crates/lantern/tests/data/chat_templates.json): the texts for the families
named below, and a sha256 per text for every other template in the directory.

    python3 -m pip install jinja2
    LANTERN_LLAMA_MODELS=path/to/llama.cpp/models \
    LANTERN_MODEL=~/.cache/lantern/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        python3 scripts/render_chat_templates.py > crates/lantern/tests/data/chat_templates.json

The environment is transformers' (`transformers/utils/chat_template_utils.py`,
`_compile_jinja_template` and `render_jinja_template`): an immutable sandbox with
`trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension and the `generation` tag, a `tojson` filter that is
`json.dumps` with `ensure_ascii=False`, `raise_exception`, `strftime_now`, and the variables
`messages`, `add_generation_prompt`, `tools` and `documents` (None when absent), the BOS/EOS
token strings and any extra keyword (`enable_thinking`). `strftime_now` formats a fixed
moment, 26 Jul 2024 00:00:00, so the texts do not change with the day they are made.
"""

import datetime
import json
import os
import struct
import sys

import hashlib

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime.datetime(2024, 7, 26)

# (family, template file or None for the default model's own, bos_token, eos_token); the
# token strings are those of each family's tokenizer ("" where it has none).
FAMILIES = [
    ("Qwen2.5", "Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>"),
    ("Qwen3", "Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>"),
    ("Qwen3.5", "Qwen3.5-4B.jinja", "", "<|im_end|>"),
    ("Llama 3.1", "meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("Llama 3.2", "meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("Llama 3.3", "meta-llama-Llama-3.3-70B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    ("Phi-3.5", "microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>"),
    ("Gemma 2", "google-gemma-2-2b-it.jinja", "<bos>", "<eos>"),
    ("Gemma 4", "google-gemma-4-31B-it.jinja", "<bos>", "<eos>"),
    ("SmolLM3", "HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>"),
    ("Mistral Nemo", "mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
    (
        "DeepSeek R1 distill",
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
    ),
    ("SmolLM2 (default model)", None, None, None),
]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather now in a city — \"temperature\" in °C.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city's name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "min_confidence": {"type": "number", "default": 0.5, "minimum": 1e-05, "maximum": 1.0},
                "days": {"type": "integer", "default": 1, "nullable": True},
            },
            "required": ["city"],
        },
    },
}

# name -> (messages, add_generation_prompt, extra variables)
CONVERSATIONS = {
    "system_history_prompt": (
        [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And of Italy?"},
        ],
        True,
        {},
    ),
    "user_prompt": ([{"role": "user", "content": "Hello!"}], True, {}),
    "three_no_prompt": (
        [
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": "  Another one, please.  "},
        ],
        False,
        {},
    ),
    "reasoning_reply": (
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"},
        ],
        False,
        {},
    ),
    "tools_prompt": (
        [{"role": "user", "content": "What is the weather in Zürich?"}],
        True,
        {"tools": [WEATHER_TOOL]},
    ),
    "no_thinking_prompt": (
        [{"role": "user", "content": "Hello!"}],
        True,
        {"enable_thinking": False},
    ),
}


class GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`, which transformers' `AssistantTracker` adds
    to mark the assistant's text for training; it renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_body")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


class Raised(jinja2.exceptions.TemplateError):
    """What the template's own `raise_exception` raises (transformers raises its base class)."""


def environment():
    def raise_exception(message):
        raise Raised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, bos, eos, digest=False):
    """Each conversation's text (or its sha256 with `digest`), or the message the template
    raised (`error`), or the failure of anything else (`failure`: a template that iterates
    None, adds a string to an undefined value, ...)."""
    try:
        template = env.from_string(source)
    except Exception as e:
        return {"compile_failure": f"{type(e).__name__}: {e}"}
    out = {}
    for name, (messages, add_generation_prompt, extra) in CONVERSATIONS.items():
        kwargs = {"bos_token": bos, "eos_token": eos, "tools": None, "documents": None}
        kwargs.update(extra)
        try:
            text = template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **kwargs
            )
            if digest:
                out[name] = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
            else:
                out[name] = {"text": text}
        except Raised as e:
            out[name] = {"error": str(e)}
        except Exception as e:
            out[name] = {"failure": f"{type(e).__name__}: {e}"}
    return out


def gguf_chat_template(path):
    """The `tokenizer.chat_template` and BOS/EOS token strings of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return data[pos - n : pos].decode("utf-8")

    scalars = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(kind):
        if kind == 8:
            return string()
        if kind == 9:
            item, n = take("I"), take("Q")
            return [value(item) for _ in range(n)]
        return take(scalars[kind])

    assert data[:4] == b"GGUF", f"{path} is not a GGUF file"
    pos = 8
    _tensors, kvs = take("Q"), take("Q")
    meta = {}
    for _ in range(kvs):
        key = string()
        meta[key] = value(take("I"))
    tokens = meta["tokenizer.ggml.tokens"]
    token = lambda key: tokens[meta[key]] if key in meta else ""
    return (
        meta["tokenizer.chat_template"],
        token("tokenizer.ggml.bos_token_id"),
        token("tokenizer.ggml.eos_token_id"),
    )


def main():
    templates = os.environ.get("LANTERN_LLAMA_MODELS")
    if not templates:
        sys.exit("set LANTERN_LLAMA_MODELS to llama.cpp's models/ directory")
    model = os.environ.get("LANTERN_MODEL") or os.path.expanduser(
        "~/.cache/lantern/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    env = environment()
    families = []
    for family, file, bos, eos in FAMILIES:
        if file is None:
            source, bos, eos = gguf_chat_template(model)
        else:
            with open(os.path.join(templates, "templates", file), encoding="utf-8") as f:
                source = f.read()
        renders = render(env, source, bos, eos)
        families.append(
            {"family": family, "file": file, "bos_token": bos, "eos_token": eos, "renders": renders}
        )
    # Every template llama.cpp keeps, by digest, with the same conversations and tokens.
    directory = os.path.join(templates, "templates")
    everything = {}
    for file in sorted(f for f in os.listdir(directory) if f.endswith(".jinja")):
        with open(os.path.join(directory, file), encoding="utf-8") as f:
            everything[file] = render(env, f.read(), "<s>", "</s>", digest=True)
    conversations = {
        name: {"messages": m, "add_generation_prompt": g, "extra": x}
        for name, (m, g, x) in CONVERSATIONS.items()
    }
    reference = {
        "generated_by": "scripts/render_chat_templates.py (jinja2 " + jinja2.__version__ + ")",
        "now": NOW.isoformat(),
        "conversations": conversations,
        "families": families,
        "all_templates": {"bos_token": "<s>", "eos_token": "</s>", "renders": everything},
    }
    json.dump(reference, sys.stdout, ensure_ascii=False, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
