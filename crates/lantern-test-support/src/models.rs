//! The tiny random llama fixture: a GGUF model built in memory with [`GgufWriter`], and the
//! helpers tests use with it (loading, fresh states, prompts, logit comparisons).
//!
//! [`Tiny`] describes the model. Its default is a valid two-block llama with grouped-query
//! attention and an untied head, small enough (d 64, FFN 128, vocabulary 96) that loading
//! and running it takes milliseconds; its other fields break it in one chosen way for the
//! tests of malformed models. [`tiny_model`] writes its GGUF bytes with llama.cpp's tensor
//! names, dims innermost first; the weights are seeded, so a `Tiny` always gives the same
//! bytes.
//!
//! ```
//! use lantern_core::GgmlType;
//! use lantern_test_support::models::{load, load_err, prefill_then_decode, Tiny};
//!
//! let model = load(&Tiny::of(GgmlType::Q8_0));
//! let logits = prefill_then_decode(&model, 12, 2);
//! assert_eq!(logits.len(), 12 * 96); // a row of vocabulary logits per token
//! assert!(logits.iter().all(|v| v.is_finite()));
//!
//! // One thing wrong, on purpose:
//! let err = load_err(&Tiny { omit_tensor: Some("blk.1.ffn_up.weight"), ..Tiny::default() });
//! assert!(err.to_string().contains("blk.1.ffn_up.weight"), "{err}");
//! ```

use lantern_core::{quantize_row, GgmlType};
use lantern_io::{GgufModel, GgufWriter, ModelSource, Value};
use lantern_runtime::{BlockOptions, Error, Model, State, StateConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every weight type the runtime computes with.
pub const WEIGHT_TYPES: [GgmlType; 6] =
    [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::F16, GgmlType::F32];

/// What the tiny model looks like. Start from [`Tiny::default`] (a valid 2-block llama with
/// GQA and an untied head) and change the fields a test is about.
#[derive(Clone, Debug)]
pub struct Tiny {
    /// Type of every projection, the embedding and the output head (norms are always F32).
    pub ty: GgmlType,
    /// Leave out `output.weight`, so the head is the embedding.
    pub tied: bool,
    /// `general.architecture`, also the prefix of the hyper-parameter keys.
    pub arch: &'static str,
    /// Number of decoder blocks.
    pub layers: usize,
    /// Width of one head, written as `attention.key_length`; `dim / heads` when `None`.
    pub head_dim: Option<usize>,
    /// Embedding width.
    pub dim: usize,
    /// FFN hidden width.
    pub ff: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Vocabulary size: rows of the embedding and of the head.
    pub vocab: usize,
    /// Seed of the random weights.
    pub seed: u64,
    /// A tensor not written at all.
    pub omit_tensor: Option<&'static str>,
    /// A tensor written (with random values) in these dims instead of the right ones.
    pub wrong_shape: Option<(&'static str, Vec<usize>)>,
    /// A tensor written in this type instead (random bytes unless `quantize_row` knows it).
    pub retype: Option<(&'static str, GgmlType)>,
    /// Weights written in other types than `ty`, as llama.cpp's mixed files (`Q4_K_M`) hold
    /// them: a tensor whose name, less its `blk.N.` prefix, starts with a key takes the type
    /// of the first such key (`("attn_v", GgmlType::Q6_K)`, `("output.", …)`).
    pub mix: Vec<(&'static str, GgmlType)>,
    /// Metadata keys (full names) set after the defaults, replacing them.
    pub set_keys: Vec<(&'static str, Value)>,
    /// Metadata keys (full names) left out.
    pub omit_keys: Vec<&'static str>,
    /// Write [`write_byte_tokenizer`]'s vocabulary; `vocab` must then be
    /// [`BYTE_TOKENIZER_VOCAB`] (see [`Tiny::with_tokenizer`]).
    pub tokenizer: bool,
}

impl Default for Tiny {
    fn default() -> Self {
        Self {
            ty: GgmlType::Q4_1,
            tied: false,
            arch: "llama",
            layers: 2,
            head_dim: None,
            dim: 64,
            ff: 128,
            heads: 4,
            kv_heads: 2,
            vocab: 96,
            seed: 42,
            omit_tensor: None,
            wrong_shape: None,
            retype: None,
            mix: Vec::new(),
            set_keys: Vec::new(),
            omit_keys: Vec::new(),
            tokenizer: false,
        }
    }
}

impl Tiny {
    /// The default model with weights of type `ty`.
    pub fn of(ty: GgmlType) -> Self {
        Self { ty, ..Self::default() }
    }

    /// The default model with the byte-level tokenizer of [`write_byte_tokenizer`] and a
    /// ChatML template: a model the `lantern` facade can load and chat with.
    pub fn with_tokenizer() -> Self {
        Self { tokenizer: true, vocab: BYTE_TOKENIZER_VOCAB, ..Self::default() }
    }
}

/// Tokens of [`write_byte_tokenizer`]'s vocabulary.
pub const BYTE_TOKENIZER_VOCAB: usize = 260;

/// Writes a GGUF byte-level BPE tokenizer (`gpt2`, `smollm` splits) with no merges above
/// single bytes except `h e`, so that every multi-byte character is one token per byte. Ids:
/// bytes 0..256 in order, then `he`, `<|im_start|>` (BOS, control), `<|im_end|>` (EOS,
/// control), `<tool>` (user-defined); the chat template is ChatML.
pub fn write_byte_tokenizer(w: &mut GgufWriter) {
    let mut tokens: Vec<String> = (0..=255u8).map(|b| byte_char(b).to_string()).collect();
    tokens.extend(["he", "<|im_start|>", "<|im_end|>", "<tool>"].map(String::from));
    let mut types = vec![1i32; tokens.len()];
    types[257] = 3;
    types[258] = 3;
    types[259] = 4;
    w.metadata("tokenizer.ggml.model", "gpt2")
        .metadata("tokenizer.ggml.pre", "smollm")
        .metadata("tokenizer.ggml.tokens", tokens)
        .metadata("tokenizer.ggml.merges", vec!["h e"])
        .metadata("tokenizer.ggml.token_type", types)
        .metadata("tokenizer.ggml.bos_token_id", 257u32)
        .metadata("tokenizer.ggml.eos_token_id", 258u32)
        .metadata("tokenizer.chat_template", CHATML);
}

/// The ChatML template, as SmolLM2 and Qwen models write it.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Builds the GGUF bytes of `t`: llama.cpp's tensor names, dims innermost first, seeded
/// uniform weights (projections scaled by 1.5/√fan_in, embedding and head in ±1, norm gains
/// around 1.0) quantized with `quantize_row`.
pub fn tiny_model(t: &Tiny) -> Vec<u8> {
    try_tiny_model(t).expect("the fixture writes its model")
}

/// [`tiny_model`], with an error for a `Tiny` the GGUF writer refuses (a shape that does not
/// fit its type, an alignment that is not a power of two): for fuzzers, which build models
/// from arbitrary descriptions.
///
/// # Errors
/// The writer's, as text.
pub fn try_tiny_model(t: &Tiny) -> Result<Vec<u8>, String> {
    let mut w = GgufWriter::new();
    let a = t.arch;
    let defaults: Vec<(String, Value)> = vec![
        ("general.architecture".into(), a.into()),
        (format!("{a}.block_count"), (t.layers as u32).into()),
        (format!("{a}.embedding_length"), (t.dim as u32).into()),
        (format!("{a}.feed_forward_length"), (t.ff as u32).into()),
        (format!("{a}.attention.head_count"), (t.heads as u32).into()),
        (format!("{a}.attention.head_count_kv"), (t.kv_heads as u32).into()),
        (format!("{a}.rope.freq_base"), 10_000.0f32.into()),
        (format!("{a}.attention.layer_norm_rms_epsilon"), 1e-5f32.into()),
        (format!("{a}.context_length"), 256u32.into()),
    ];
    let defaults = defaults
        .into_iter()
        .chain(t.head_dim.map(|h| (format!("{a}.attention.key_length"), (h as u32).into())));
    for (k, v) in defaults {
        if !t.omit_keys.contains(&k.as_str()) {
            w.metadata(k, v);
        }
    }
    if t.tokenizer {
        write_byte_tokenizer(&mut w);
    }
    for (k, v) in &t.set_keys {
        w.metadata(*k, v.clone());
    }

    let mut rng = StdRng::seed_from_u64(t.seed);
    let block = BlockOptions::of(t.arch).unwrap_or(BlockOptions::of("llama").expect("llama"));
    let head = t.head_dim.unwrap_or(t.dim / t.heads.max(1));
    let (d, q, kv) = (t.dim, t.heads * head, head * t.kv_heads);
    let mut tensors: Vec<(String, Vec<usize>, Kind)> = vec![
        ("token_embd.weight".into(), vec![d, t.vocab], Kind::Matrix),
        ("output_norm.weight".into(), vec![d], Kind::Gain),
    ];
    if !t.tied {
        tensors.push(("output.weight".into(), vec![d, t.vocab], Kind::Matrix));
    }
    for i in 0..t.layers {
        let blk = |n: &str, dims: Vec<usize>, kind| (format!("blk.{i}.{n}"), dims, kind);
        tensors.extend([
            blk("attn_norm.weight", vec![d], Kind::Gain),
            blk("attn_q.weight", vec![d, q], Kind::Matrix),
            blk("attn_k.weight", vec![d, kv], Kind::Matrix),
            blk("attn_v.weight", vec![d, kv], Kind::Matrix),
            blk("attn_output.weight", vec![q, d], Kind::Matrix),
            blk("ffn_norm.weight", vec![d], Kind::Gain),
            blk("ffn_gate.weight", vec![d, t.ff], Kind::Matrix),
            blk("ffn_up.weight", vec![d, t.ff], Kind::Matrix),
            blk("ffn_down.weight", vec![t.ff, d], Kind::Matrix),
        ]);
        if block.qkv_bias {
            tensors.extend([
                blk("attn_q.bias", vec![q], Kind::Bias),
                blk("attn_k.bias", vec![kv], Kind::Bias),
                blk("attn_v.bias", vec![kv], Kind::Bias),
            ]);
        }
        if block.qk_norm {
            tensors.extend([
                blk("attn_q_norm.weight", vec![head], Kind::Gain),
                blk("attn_k_norm.weight", vec![head], Kind::Gain),
            ]);
        }
        if block.post_norms {
            tensors.extend([
                blk("post_attention_norm.weight", vec![d], Kind::Gain),
                blk("post_ffw_norm.weight", vec![d], Kind::Gain),
            ]);
        }
    }
    for (name, mut dims, kind) in tensors {
        if t.omit_tensor == Some(name.as_str()) {
            continue;
        }
        if let Some((_, bad)) = t.wrong_shape.as_ref().filter(|(n, _)| *n == name) {
            dims.clone_from(bad);
        }
        let len: usize = dims.iter().product();
        let scale = if name.starts_with("token_embd") || name.starts_with("output.") {
            1.0
        } else {
            1.5 / (dims[0] as f32).sqrt()
        };
        let values: Vec<f32> = match kind {
            Kind::Gain => (0..len).map(|_| 1.0 + rng.random_range(-0.2..0.2)).collect(),
            Kind::Bias => (0..len).map(|_| rng.random_range(-0.1..0.1)).collect(),
            Kind::Matrix => (0..len).map(|_| scale * rng.random_range(-1.0..1.0)).collect(),
        };
        let ty = match t.retype.as_ref().filter(|(n, _)| *n == name) {
            Some(&(_, ty)) => ty,
            None if kind != Kind::Matrix => GgmlType::F32,
            None => mixed_type(t, &name),
        };
        let size = ty.tensor_bytes(&dims).map_err(|e| format!("{name}: {e}"))?;
        let mut bytes = vec![0u8; size];
        if quantize_row(ty, &values, &mut bytes).is_err() {
            // A type without a quantizer (Q3_K, …): bytes of the right size are enough, except
            // for Q5_K, which the runtime computes with: its super-block scales are set so that
            // the weights are finite and about `scale` in size.
            rng.fill(&mut bytes[..]);
            match ty {
                GgmlType::Q5_K => set_q5_k_scales(&mut bytes, scale, &mut rng),
                GgmlType::Q4_K => set_q4_k_scales(&mut bytes, scale, &mut rng),
                GgmlType::Q6_K => set_q6_k_scales(&mut bytes, scale, &mut rng),
                _ => {}
            }
        }
        w.tensor(name, ty, &dims, bytes).map_err(|e| e.to_string())?;
    }
    w.to_bytes().map_err(|e| e.to_string())
}

/// What a fixture tensor holds, which decides its values and type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A weight matrix, in the model's type.
    Matrix,
    /// A norm's gain, about 1, in F32.
    Gain,
    /// A bias, about 0, in F32.
    Bias,
}

/// Gives every Q5_K super-block of `bytes` (random codes, sub-block scales and minimums) an
/// f16 `d` of about `scale`/1000 and `dmin` = 15·`d`: a weight d·sc·q − dmin·m (sc, m < 64,
/// q < 32) then averages about zero and stays within about 2·`scale`.
fn set_q5_k_scales(bytes: &mut [u8], scale: f32, rng: &mut StdRng) {
    for block in bytes.chunks_exact_mut(GgmlType::Q5_K.type_size()) {
        let d = scale / 1000.0 * rng.random_range(0.5..1.5);
        block[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(15.0 * d).to_le_bytes());
    }
}

/// Gives every Q4_K super-block of `bytes` an f16 `d` of about `scale`/500 and `dmin` =
/// 7.5·`d`, as [`set_q5_k_scales`] does for codes below 16.
fn set_q4_k_scales(bytes: &mut [u8], scale: f32, rng: &mut StdRng) {
    for block in bytes.chunks_exact_mut(GgmlType::Q4_K.type_size()) {
        let d = scale / 500.0 * rng.random_range(0.5..1.5);
        block[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(7.5 * d).to_le_bytes());
    }
}

/// Gives every Q6_K super-block of `bytes` (random codes and signed sub-block scales) an f16
/// `d` of about `scale`/1000, its last two bytes: a weight d·sc·(q − 32) then averages zero
/// and is about `scale` in size.
fn set_q6_k_scales(bytes: &mut [u8], scale: f32, rng: &mut StdRng) {
    for block in bytes.chunks_exact_mut(GgmlType::Q6_K.type_size()) {
        let d = scale / 1000.0 * rng.random_range(0.5..1.5);
        let at = block.len() - 2;
        block[at..].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
    }
}

/// The type of tensor `name` in `t`: the first [`Tiny::mix`] key its name (less the block
/// prefix) starts with, else `t.ty`.
fn mixed_type(t: &Tiny, name: &str) -> GgmlType {
    let role = match name.strip_prefix("blk.") {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, role)| role),
        None => name,
    };
    t.mix.iter().find(|(key, _)| role.starts_with(key)).map_or(t.ty, |&(_, ty)| ty)
}

/// Parses the bytes of `t`.
pub fn open(t: &Tiny) -> GgufModel {
    GgufModel::open(ModelSource::from_vec(tiny_model(t))).expect("fixture parses")
}

/// Loads `t`, which must be valid.
pub fn load(t: &Tiny) -> Model {
    Model::load(&open(t)).expect("fixture loads")
}

/// Loads `t`, which must be rejected.
pub fn load_err(t: &Tiny) -> Error {
    Model::load(&open(t)).expect_err("the model should be rejected")
}

/// A fresh state.
pub fn state(model: &Model, ctx_len: usize, batch_size: usize, threads: usize) -> State {
    model.new_state(StateConfig { ctx_len, batch_size, threads }).expect("state")
}

/// A fixed pseudo-random prompt of `n` token ids below `vocab`.
pub fn prompt(n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
}

/// Logits of `tokens` fed one at a time into a fresh single-threaded state.
pub fn decode_one_by_one(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut s = state(model, 64, 1, 1);
    tokens.iter().flat_map(|&t| model.forward(&mut s, &[t], 0).expect("decode").to_vec()).collect()
}

/// Logits of a 9-token prefill of `prompt(tokens, …)`, then of its other tokens decoded one
/// at a time, in a fresh state on `threads`.
pub fn prefill_then_decode(model: &Model, tokens: usize, threads: usize) -> Vec<f32> {
    let tokens = prompt(tokens, model.config().vocab_size);
    let mut s = state(model, 64, 16, threads);
    let mut out = model.forward(&mut s, &tokens[..9], 0).expect("prefill").to_vec();
    for &t in &tokens[9..] {
        out.extend_from_slice(model.forward(&mut s, &[t], 0).expect("decode"));
    }
    out
}

/// Largest element-wise absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `max - min` of the values: the scale relative tolerances are measured against.
pub fn spread(x: &[f32]) -> f32 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    max - min
}

/// Index of the first largest value.
pub fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold(0, |best, (i, &v)| if v > x[best] { i } else { best })
}

/// GPT-2's byte-to-character map: the form byte-level BPE vocabularies store bytes in
/// (`' '` is `'Ġ'`, `'\n'` is `'Ċ'`).
pub fn byte_char(b: u8) -> char {
    let visible = |c: u8| (b'!'..=b'~').contains(&c) || (0xA1..=0xAC).contains(&c) || c >= 0xAE;
    if visible(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&c| !visible(c)).count() as u32;
    char::from_u32(256 + rank).expect("a valid char")
}
