//! An estimate of a tuning run's peak memory, made before it starts, so that a device's
//! budget can refuse a run that would not fit rather than have it killed midway.
//!
//! The peak is at the end of the forward pass of the widest window: its blocks' f32
//! matrices and every activation their backward pass needs are alive, with the logits.
//! Not counted: the program itself and what its caller holds besides the model (a
//! tokenizer, the text), which add some tens of megabytes to a process's peak.

use lantern_runtime::{Model, ModelConfig};

use crate::adapt::base;
use crate::adapt::config::{Plan, TuneConfig};
use crate::adapt::head_loss::TOKENS_PER_CHUNK;
use crate::Result;

/// Bytes a tuning run takes at its peak, by what holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The loaded model's weights, as stored (quantized).
    pub model: u64,
    /// The widest window's matrices in f32.
    pub weights: u64,
    /// The output head in f32.
    pub head: u64,
    /// What the backward pass keeps of the widest window's activations, and the gradients
    /// of one block as it runs.
    pub activations: u64,
    /// A chunk of tokens' logits, their softmax and its gradient.
    pub logits: u64,
    /// The LoRA factors, their gradients and AdamW's two moments.
    pub lora: u64,
}

impl MemoryEstimate {
    /// All of it.
    pub fn total(&self) -> u64 {
        self.model + self.weights + self.head + self.activations + self.logits + self.lora
    }
}

/// The peak memory of tuning `model` as `config` says.
///
/// # Errors
/// [`Error::TuneSetting`](crate::Error::TuneSetting) for settings out of range;
/// [`Error::TuneUnsupported`](crate::Error::TuneUnsupported) for a model tuning does not run.
pub fn estimate_memory(model: &Model, config: &TuneConfig) -> Result<MemoryEstimate> {
    let c = model.config();
    let plan = Plan::new(config, c.n_layers)?;
    base::check_supported(model)?;
    let shapes = (0..c.n_layers).map(|l| base::shapes(model, l)).collect::<Result<Vec<_>>>()?;
    let block_values = |l: usize| shapes[l].iter().map(|&(i, o)| (i * o) as u64).sum::<u64>();
    let widest =
        plan.exits().iter().map(|&e| plan.window_of(e)).max_by_key(|w| w.len()).unwrap_or(0..0);
    let tokens = (config.seq_len * config.sequences) as u64;
    let weights = widest.clone().map(block_values).sum::<u64>() * 4;
    let per_block = activations_per_token(c, config.seq_len) * tokens * 4;
    let lora_values: u64 = (0..c.n_layers)
        .filter(|&l| plan.covers(l))
        .flat_map(|l| config.targets.iter().map(move |&m| (l, m)))
        .map(|(l, m)| {
            let (inputs, outputs) = shapes[l][m as usize];
            (config.rank * (inputs + outputs)) as u64
        })
        .sum();
    Ok(MemoryEstimate {
        model: model_bytes(model),
        weights,
        head: (c.vocab_size * c.d_model * 4) as u64,
        activations: per_block * (widest.len() as u64 + 1),
        // The head's loss holds one chunk of tokens' logits at a time, with their softmax
        // and its gradient.
        logits: tokens.min(TOKENS_PER_CHUNK as u64) * c.vocab_size as u64 * 4 * 6,
        lora: lora_values * 4 * 4,
    })
}

/// f32 values a window block's backward pass keeps per token, counted from the twin's
/// graph: the norms' intermediates (`~3·d` each), each product with its low-rank delta
/// (`~4` per output), RoPE's turned halves (`~8` per query and key value), the repeated
/// keys and values, the attention scores, masked and softmaxed (`3·heads·seq_len`), and the
/// FFN's activations.
fn activations_per_token(c: &ModelConfig, seq_len: usize) -> u64 {
    let (d, q, kv) = (c.d_model, c.q_dim(), c.kv_dim());
    let ff = c.ffn_widths.iter().copied().max().unwrap_or(c.n_ff);
    (16 * d + 14 * q + 12 * kv + 10 * ff + 3 * c.n_heads * seq_len) as u64
}

/// Bytes of the model's resident weights.
fn model_bytes(model: &Model) -> u64 {
    let w = model.weights();
    let blocks: usize = w
        .layers
        .iter()
        .filter_map(|l| l.projections.as_ref())
        .map(|p| {
            [&p.wq, &p.wk, &p.wv, &p.wo, &p.gate, &p.up, &p.down]
                .map(|m| m.bytes())
                .iter()
                .sum::<usize>()
        })
        .sum();
    let embedding = w.token_embd.as_ref().map(|t| t.bytes());
    let head = w.output.as_ref().map(|t| t.bytes());
    let tied = matches!((embedding, head), (Some(e), Some(h)) if e.as_ptr() == h.as_ptr());
    let tables =
        embedding.map_or(0, <[u8]>::len) + if tied { 0 } else { head.map_or(0, <[u8]>::len) };
    (blocks + tables) as u64
}
