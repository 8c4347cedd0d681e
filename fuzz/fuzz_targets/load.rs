//! A valid tiny model with a tokenizer, changed by the fuzzer (metadata values, a tensor's
//! type or shape, byte flips, a cut), loaded through the `lantern` facade, then asked for a
//! few tokens with fuzzed session and sampler settings: every step must return a value or
//! an error, never panic, hang or abort.
#![no_main]

use arbitrary::Arbitrary;
use lantern::{Engine, GenerateConfig, ModelSource, SamplerConfig, SessionConfig};
use lantern_core::GgmlType;
use lantern_io::Value;
use lantern_test_support::models::{try_tiny_model, Tiny};
use libfuzzer_sys::fuzz_target;

/// The hyper-parameter and tokenizer keys worth changing.
const KEYS: [&str; 16] = [
    "llama.block_count",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.rope.freq_base",
    "llama.rope.dimension_count",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.context_length",
    "llama.vocab_size",
    "general.alignment",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.chat_template",
];

const TENSORS: [&str; 6] = [
    "token_embd.weight",
    "output.weight",
    "output_norm.weight",
    "blk.0.attn_q.weight",
    "blk.1.attn_k.weight",
    "blk.1.ffn_down.weight",
];

#[derive(Arbitrary, Debug)]
enum Edit {
    Key(u8, Val),
    OmitKey(u8),
    OmitTensor(u8),
    Retype(u8, u8),
    Reshape(u8, Vec<u16>),
}

#[derive(Arbitrary, Debug)]
enum Val {
    U32(u32),
    I32(i32),
    U64(u64),
    F32(f32),
    Bool(bool),
    Str(String),
}

impl From<Val> for Value {
    fn from(v: Val) -> Self {
        match v {
            Val::U32(x) => x.into(),
            Val::I32(x) => x.into(),
            Val::U64(x) => x.into(),
            Val::F32(x) => x.into(),
            Val::Bool(x) => x.into(),
            Val::Str(x) => x.into(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    ty: u8,
    edits: Vec<Edit>,
    flips: Vec<(u32, u8)>,
    cut: Option<u32>,
    prompt: String,
    ctx_len: u16,
    batch_size: u16,
    max_tokens: u8,
    temperature: f32,
    top_k: u16,
    top_p: f32,
    min_p: f32,
    repeat_penalty: f32,
}

fn pick<T: Copy>(list: &[T], i: u8) -> T {
    list[usize::from(i) % list.len()]
}

fuzz_target!(|input: Input| {
    let types = [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::F16];
    let mut tiny = Tiny { ty: pick(&types, input.ty), layers: 2, ..Tiny::with_tokenizer() };
    for edit in input.edits.into_iter().take(4) {
        match edit {
            Edit::Key(k, v) => tiny.set_keys.push((pick(&KEYS, k), v.into())),
            Edit::OmitKey(k) => tiny.omit_keys.push(pick(&KEYS, k)),
            Edit::OmitTensor(t) => tiny.omit_tensor = Some(pick(&TENSORS, t)),
            Edit::Retype(t, id) => {
                if let Ok(ty) = GgmlType::from_id(u32::from(id)) {
                    tiny.retype = Some((pick(&TENSORS, t), ty));
                }
            }
            Edit::Reshape(t, dims) => {
                let dims: Vec<usize> = dims.iter().take(2).map(|&d| usize::from(d % 300)).collect();
                if !dims.is_empty() {
                    tiny.wrong_shape = Some((pick(&TENSORS, t), dims));
                }
            }
        }
    }
    // What the GGUF writer refuses (a shape that does not fit its type) is not a file.
    let Ok(mut bytes) = try_tiny_model(&tiny) else { return };
    for (at, x) in input.flips.into_iter().take(8) {
        let len = bytes.len();
        bytes[at as usize % len] ^= x;
    }
    if let Some(cut) = input.cut {
        bytes.truncate(cut as usize % bytes.len());
    }

    let Ok(engine) = Engine::builder_from_source(ModelSource::from_vec(bytes)).build() else {
        return;
    };
    let config = SessionConfig::default()
        .ctx_len(usize::from(input.ctx_len % 512))
        .batch_size(usize::from(input.batch_size % 64))
        .threads(1);
    let Ok(mut session) = engine.session(config) else { return };
    let sampler = SamplerConfig {
        temperature: input.temperature,
        top_k: usize::from(input.top_k),
        top_p: input.top_p,
        min_p: input.min_p,
        repeat_penalty: input.repeat_penalty,
        ..SamplerConfig::default()
    };
    let generate = GenerateConfig::greedy(usize::from(input.max_tokens % 16)).sampler(sampler);
    if let Ok(generation) = session.generate(&input.prompt, &generate) {
        let _ = generation.complete();
    }
});
