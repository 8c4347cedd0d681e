//! `lantern-lab random-model`: a GGUF with the shapes and hyper-parameters of a public model
//! and random F16 weights, for measuring speed and memory at scale, where weight values do
//! not matter (activation sparsity aside). Quantize it with `llama-quantize` (or
//! `lantern-lab convert --quantize`) into the formats to measure.
//!
//! The vocabulary is the default model's, padded with control tokens to the shape's size,
//! so that text still tokenizes and both lantern and llama.cpp load the file. Tensors are
//! generated as the file is written, one at a time: an 8B shape (16 GB of F16) is written
//! while holding its largest tensor.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use half::f16;
use lantern_core::GgmlType;
use lantern_io::{GgufModel, GgufWriter, Metadata, ModelSource};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use lantern_cli::fetch;

/// The shape and hyper-parameters of a decoder, as its published config gives them.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    name: &'static str,
    dim: usize,
    layers: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    context: u32,
    rope_base: f32,
    rms_eps: f32,
    /// Whether the output head is the embedding.
    tied: bool,
}

/// Public models' shapes (their `config.json`). Llama 3's RoPE scaling is left out: the
/// runtime does not read it yet, and speed does not depend on it.
const SHAPES: [Shape; 3] = [
    Shape {
        name: "llama-3.2-1b",
        dim: 2048,
        layers: 16,
        ffn: 8192,
        heads: 32,
        kv_heads: 8,
        head_dim: 64,
        vocab: 128_256,
        context: 131_072,
        rope_base: 500_000.0,
        rms_eps: 1e-5,
        tied: true,
    },
    Shape {
        name: "llama-3.2-3b",
        dim: 3072,
        layers: 28,
        ffn: 8192,
        heads: 24,
        kv_heads: 8,
        head_dim: 128,
        vocab: 128_256,
        context: 131_072,
        rope_base: 500_000.0,
        rms_eps: 1e-5,
        tied: true,
    },
    Shape {
        name: "llama-3.1-8b",
        dim: 4096,
        layers: 32,
        ffn: 14_336,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab: 128_256,
        context: 131_072,
        rope_base: 500_000.0,
        rms_eps: 1e-5,
        tied: false,
    },
];

/// The standard deviation of the random weights, about what trained models' have.
const WEIGHT_SCALE: f32 = 0.02;

/// Write a random-weight F16 GGUF with a public model's shapes.
#[derive(Debug, Args)]
pub(crate) struct RandomModelArgs {
    /// The model whose shapes to take: llama-3.2-1b, llama-3.2-3b or llama-3.1-8b.
    #[arg(long)]
    like: String,
    /// Output GGUF; written atomically.
    #[arg(short, long)]
    output: PathBuf,
    /// GGUF whose tokenizer to pad to the shape's vocabulary. By default, the default model
    /// (fetched if missing).
    #[arg(long, value_name = "GGUF")]
    vocab_from: Option<PathBuf>,
    /// Seed of the weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(args: RandomModelArgs) -> Result<()> {
    let Some(shape) = SHAPES.iter().find(|s| s.name == args.like) else {
        let known: Vec<_> = SHAPES.iter().map(|s| s.name).collect();
        bail!("unknown shape {:?}; known: {}", args.like, known.join(", "));
    };
    let vocab_path = match args.vocab_from {
        Some(path) => path,
        None => fetch::ensure(&fetch::DEFAULT_MODEL, &fetch::default_cache_dir(), false)?,
    };
    let source = ModelSource::read(&vocab_path)
        .with_context(|| format!("reading {}", vocab_path.display()))?;
    let vocab = GgufModel::open(source)?;
    let start = Instant::now();
    let mut w = GgufWriter::new();
    hyper_parameters(&mut w, shape);
    padded_tokenizer(&mut w, vocab.gguf().metadata(), shape.vocab)?;
    tensors(&mut w, shape, args.seed)?;
    w.write_file(&args.output)?;
    let params = parameters(shape);
    eprintln!(
        "wrote {} ({:.2}B parameters, F16) in {:.0} s",
        args.output.display(),
        params as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn hyper_parameters(w: &mut GgufWriter, s: &Shape) {
    w.metadata("general.architecture", "llama")
        .metadata("general.name", format!("{} shapes, random weights", s.name))
        .metadata("general.file_type", 1u32) // mostly F16
        .metadata("llama.context_length", s.context)
        .metadata("llama.embedding_length", s.dim as u32)
        .metadata("llama.block_count", s.layers as u32)
        .metadata("llama.feed_forward_length", s.ffn as u32)
        .metadata("llama.attention.head_count", s.heads as u32)
        .metadata("llama.attention.head_count_kv", s.kv_heads as u32)
        .metadata("llama.attention.key_length", s.head_dim as u32)
        .metadata("llama.attention.value_length", s.head_dim as u32)
        .metadata("llama.rope.dimension_count", s.head_dim as u32)
        .metadata("llama.rope.freq_base", s.rope_base)
        .metadata("llama.attention.layer_norm_rms_epsilon", s.rms_eps)
        .metadata("llama.vocab_size", s.vocab as u32);
}

/// Copies every `tokenizer.*` key of `metadata`, the token list and its types padded with
/// control tokens `<|pad_N|>` to `vocab` entries.
fn padded_tokenizer(w: &mut GgufWriter, metadata: &Metadata, vocab: usize) -> Result<()> {
    let tokens = metadata.strings("tokenizer.ggml.tokens")?;
    let types = metadata.i32s("tokenizer.ggml.token_type")?;
    if tokens.len() > vocab || types.len() != tokens.len() {
        bail!("the tokenizer has {} tokens, more than the shape's {vocab}", tokens.len());
    }
    for (key, value) in metadata.iter().filter(|(k, _)| k.starts_with("tokenizer.")) {
        w.metadata(key, value.clone());
    }
    let control = 3;
    let mut padded: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    let mut padded_types = types;
    for i in padded.len()..vocab {
        padded.push(format!("<|pad_{i}|>"));
        padded_types.push(control);
    }
    w.metadata("tokenizer.ggml.tokens", padded).metadata("tokenizer.ggml.token_type", padded_types);
    Ok(())
}

/// Every tensor of the decoder, in llama.cpp's order, generated as the file is written.
fn tensors(w: &mut GgufWriter, s: &Shape, seed: u64) -> Result<()> {
    let (q, kv) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let mut index = 0u64;
    let mut random = |w: &mut GgufWriter, name: String, dims: &[usize]| {
        index += 1;
        let tensor_seed = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        w.tensor_generated(name, GgmlType::F16, dims, move |bytes| fill_f16(bytes, tensor_seed))
    };
    random(w, "token_embd.weight".into(), &[s.dim, s.vocab])?;
    for l in 0..s.layers {
        let name = |part: &str| format!("blk.{l}.{part}.weight");
        w.tensor_f32(name("attn_norm"), &[s.dim], &vec![1.0; s.dim])?;
        random(w, name("attn_q"), &[s.dim, q])?;
        random(w, name("attn_k"), &[s.dim, kv])?;
        random(w, name("attn_v"), &[s.dim, kv])?;
        random(w, name("attn_output"), &[q, s.dim])?;
        w.tensor_f32(name("ffn_norm"), &[s.dim], &vec![1.0; s.dim])?;
        random(w, name("ffn_gate"), &[s.dim, s.ffn])?;
        random(w, name("ffn_up"), &[s.dim, s.ffn])?;
        random(w, name("ffn_down"), &[s.ffn, s.dim])?;
    }
    w.tensor_f32("output_norm.weight", &[s.dim], &vec![1.0; s.dim])?;
    if !s.tied {
        random(w, "output.weight".into(), &[s.dim, s.vocab])?;
    }
    Ok(())
}

/// Roughly normal F16 values of standard deviation [`WEIGHT_SCALE`] (a sum of four
/// uniforms), from `seed`.
fn fill_f16(bytes: &mut [u8], seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed);
    // Four uniforms on ±1 have variance 4/3.
    let scale = WEIGHT_SCALE * (3.0f32 / 4.0).sqrt();
    for pair in bytes.chunks_exact_mut(2) {
        let sum: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum();
        pair.copy_from_slice(&f16::from_f32(sum * scale).to_le_bytes());
    }
}

/// Weights of the decoder, norms included.
fn parameters(s: &Shape) -> usize {
    let (q, kv) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let block = s.dim * (2 * q + 2 * kv) + 3 * s.dim * s.ffn + 2 * s.dim;
    let head = if s.tied { 0 } else { s.dim * s.vocab };
    s.dim * s.vocab + s.layers * block + s.dim + head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_shapes_have_their_parameter_counts() {
        // Llama 3.2 1B: 1.24B; 3B: 3.21B; 3.1 8B: 8.03B (their model cards).
        let billions: Vec<f64> = SHAPES.iter().map(|s| parameters(s) as f64 / 1e9).collect();
        for (got, card) in billions.iter().zip([1.24, 3.21, 8.03]) {
            assert!((got - card).abs() < 0.01, "{got} vs {card}");
        }
    }

    #[test]
    fn weights_have_the_scale_asked_and_follow_the_seed() {
        let mut a = vec![0u8; 2 * 10_000];
        let mut b = a.clone();
        fill_f16(&mut a, 7);
        fill_f16(&mut b, 7);
        assert_eq!(a, b);
        let values: Vec<f32> =
            a.chunks_exact(2).map(|p| f16::from_le_bytes([p[0], p[1]]).to_f32()).collect();
        let var = values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32;
        assert!((var.sqrt() / WEIGHT_SCALE - 1.0).abs() < 0.03, "{}", var.sqrt());
        fill_f16(&mut b, 8);
        assert_ne!(a, b);
    }
}
