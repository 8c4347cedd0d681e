//! [`ModelConfig`]: the decoder's hyper-parameters, read from GGUF metadata.
//!
//! Architectures differ here, in data, not in code: the decoder is one generic block, and an
//! architecture is a metadata key prefix, the block's options ([`BlockOptions`]) and
//! defaults.

use lantern_io::Metadata;

use crate::architecture::{BlockOptions, SUPPORTED_ARCHITECTURES};
use crate::{Error, Result};

/// Gemma 3's layers are local (sliding-window) but every sixth, when the file gives no
/// pattern (llama.cpp's default for it).
const GEMMA3_GLOBAL_PERIOD: usize = 6;

/// Caps that keep a hostile file from asking for absurd allocations.
const MAX_LAYERS: usize = 1024;
const MAX_DIM: usize = 1 << 20;
const MAX_CONTEXT: usize = 1 << 24;
const MAX_VOCAB: usize = 1 << 24;

/// Hyper-parameters of a decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// How this architecture's block differs from llama's.
    pub block: BlockOptions,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Hidden width of the gated FFN: the widest block's.
    pub n_ff: usize,
    /// Hidden width of each block's FFN, at most `n_ff`: a block whose least useful neurons
    /// were pruned has fewer. The model's tensors decide it ([`crate::Model::load`]); the
    /// metadata alone gives `n_ff` for every block, or llama.cpp's per-block array.
    pub ffn_widths: Vec<usize>,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (fewer than query heads under grouped-query attention).
    pub n_kv_heads: usize,
    /// Width of one head (`attention.key_length`, else `d_model / n_heads`).
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates.
    pub rope_dim: usize,
    /// RoPE frequency base (of the global layers, when some layers are local).
    pub rope_base: f32,
    /// RoPE frequency scale of the global layers: `1 / rope.scaling.factor` under linear
    /// scaling, else 1.
    pub rope_scale: f32,
    /// Positions a local layer attends to: its own and the `sliding_window − 1` before it;
    /// 0 when every layer is global.
    pub sliding_window: usize,
    /// Which layers are local (sliding-window); empty when none are.
    pub local_layers: Vec<bool>,
    /// RoPE frequency base of the local layers.
    pub rope_base_local: f32,
    /// Logits are `cap · tanh(logit / cap)` when set (`final_logit_softcapping`).
    pub logit_softcap: Option<f32>,
    /// RoPE's magnitude factor (`rope.scaling.attn_factor`, LongRoPE's), 1 by default.
    pub rope_attn_factor: f32,
    /// The context the model was trained for before RoPE scaling
    /// (`rope.scaling.original_context_length`): a longer context takes LongRoPE's long
    /// factors.
    pub rope_original_ctx: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub train_ctx_len: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
}

impl ModelConfig {
    /// Reads the hyper-parameters of the architecture named in `metadata`.
    ///
    /// `vocab_size` comes from the embedding tensor, which is the ground truth the weights
    /// must agree with.
    ///
    /// # Errors
    /// [`Error::UnsupportedArchitecture`] for an architecture the decoder does not know,
    /// [`Error::Io`] for a missing or mistyped key, [`Error::InvalidConfig`] for values out
    /// of range or inconsistent with each other.
    pub fn from_metadata(metadata: &Metadata, vocab_size: usize) -> Result<Self> {
        let arch = metadata.str("general.architecture")?;
        let block = BlockOptions::of(arch).ok_or_else(|| Error::UnsupportedArchitecture {
            arch: arch.to_owned(),
            supported: SUPPORTED_ARCHITECTURES,
        })?;
        let key = |k: &str| format!("{arch}.{k}");
        let usize_of = |k: &str| -> Result<usize> { Ok(metadata.u32(&key(k))? as usize) };
        let opt_usize = |k: &str| -> Result<Option<usize>> {
            Ok(metadata.opt_u32(&key(k))?.map(|v| v as usize))
        };

        let d_model = usize_of("embedding_length")?;
        let n_heads = usize_of("attention.head_count")?;
        let n_kv_heads = match metadata.opt_u32(&key("attention.head_count_kv"))? {
            Some(n) => n as usize,
            None => n_heads,
        };
        let key_length = opt_usize("attention.key_length")?;
        let head_dim = key_length.unwrap_or_else(|| d_model.checked_div(n_heads).unwrap_or(0));
        let rope_dim = match metadata.opt_u32(&key("rope.dimension_count"))? {
            Some(n) => n as usize,
            None => head_dim,
        };
        let n_layers = usize_of("block_count")?;
        // llama.cpp writes one length per block as an array when the blocks differ.
        let ffn_key = key("feed_forward_length");
        let ffn_widths = match metadata.get(&ffn_key).and_then(|v| v.as_array()) {
            Some(_) => metadata
                .i32s(&ffn_key)?
                .into_iter()
                .map(|w| usize::try_from(w).unwrap_or(0))
                .collect(),
            None => vec![usize_of("feed_forward_length")?; n_layers.min(MAX_LAYERS)],
        };
        let sliding_window = opt_usize("attention.sliding_window")?.unwrap_or(0);
        let pattern_key = key("attention.sliding_window_pattern");
        let local_layers = match metadata.get(&pattern_key).and_then(|v| v.as_array()) {
            _ if sliding_window == 0 || !block.sliding_window => Vec::new(),
            // One flag per layer.
            Some(flags) => flags
                .iter()
                .map(|f| {
                    f.as_bool().ok_or_else(|| Error::InvalidConfig {
                        key: pattern_key.clone(),
                        reason: "an array of other values than booleans".into(),
                    })
                })
                .collect::<Result<_>>()?,
            // A period whose last layer is global.
            None => {
                let period = opt_usize("attention.sliding_window_pattern")?;
                let period = period.unwrap_or(GEMMA3_GLOBAL_PERIOD).max(1);
                (0..n_layers.min(MAX_LAYERS)).map(|l| l % period < period - 1).collect()
            }
        };
        let rope_base = metadata.opt_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0);
        let rope_scale = match metadata.opt_str(&key("rope.scaling.type"))? {
            Some("linear") => 1.0 / metadata.f32(&key("rope.scaling.factor"))?,
            _ => 1.0,
        };
        let train_ctx_len = usize_of("context_length")?;
        let config = Self {
            architecture: arch.to_owned(),
            block,
            n_layers,
            d_model,
            n_ff: ffn_widths.iter().copied().max().unwrap_or(0),
            ffn_widths,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim,
            rope_base,
            rope_scale,
            sliding_window: if local_layers.is_empty() { 0 } else { sliding_window },
            local_layers,
            rope_base_local: metadata.opt_f32(&key("rope.freq_base_swa"))?.unwrap_or(10_000.0),
            logit_softcap: metadata.opt_f32(&key("final_logit_softcapping"))?.filter(|&c| c > 0.0),
            rms_eps: metadata.f32(&key("attention.layer_norm_rms_epsilon"))?,
            train_ctx_len,
            rope_attn_factor: metadata.opt_f32(&key("rope.scaling.attn_factor"))?.unwrap_or(1.0),
            rope_original_ctx: opt_usize("rope.scaling.original_context_length")?
                .unwrap_or(train_ctx_len),
            vocab_size,
        };
        config.validate(key_length.is_none())?;
        Ok(config)
    }

    /// Checks every value's range and their agreement; `heads_split_width` when the head
    /// width is the model width split over the heads, which must then divide it.
    fn validate(&self, heads_split_width: bool) -> Result<()> {
        let arch = &self.architecture;
        let invalid =
            |k: &str, reason: String| Error::InvalidConfig { key: format!("{arch}.{k}"), reason };
        let in_range = |k: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(invalid(k, format!("{v} is outside 1..={max}")))
            } else {
                Ok(())
            }
        };
        in_range("block_count", self.n_layers, MAX_LAYERS)?;
        in_range("embedding_length", self.d_model, MAX_DIM)?;
        in_range("feed_forward_length", self.n_ff, MAX_DIM)?;
        if self.ffn_widths.len() != self.n_layers {
            return Err(invalid(
                "feed_forward_length",
                format!("{} lengths for {} blocks", self.ffn_widths.len(), self.n_layers),
            ));
        }
        if !self.local_layers.is_empty() && self.local_layers.len() != self.n_layers {
            return Err(invalid(
                "attention.sliding_window_pattern",
                format!("{} flags for {} blocks", self.local_layers.len(), self.n_layers),
            ));
        }
        for &width in &self.ffn_widths {
            in_range("feed_forward_length", width, self.n_ff)?;
        }
        in_range("attention.head_count", self.n_heads, self.d_model)?;
        in_range("attention.head_count_kv", self.n_kv_heads, self.n_heads)?;
        in_range("context_length", self.train_ctx_len, MAX_CONTEXT)?;
        in_range("vocab_size", self.vocab_size, MAX_VOCAB)?;
        if heads_split_width && !self.d_model.is_multiple_of(self.n_heads) {
            return Err(invalid(
                "attention.head_count",
                format!("{} heads do not divide the width {}", self.n_heads, self.d_model),
            ));
        }
        in_range("attention.key_length", self.head_dim, MAX_DIM)?;
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(invalid(
                "attention.head_count_kv",
                format!("{} kv heads do not divide {} heads", self.n_kv_heads, self.n_heads),
            ));
        }
        // No rotated dimension would leave attention blind to position.
        if self.rope_dim == 0 || self.rope_dim > self.head_dim || !self.rope_dim.is_multiple_of(2) {
            return Err(invalid(
                "rope.dimension_count",
                format!(
                    "{} must be even, from 2 to the head width {}",
                    self.rope_dim, self.head_dim
                ),
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return Err(invalid(
                "rope.freq_base",
                format!("{} is not a positive number", self.rope_base),
            ));
        }
        for (k, v) in [
            ("rope.freq_base_swa", self.rope_base_local),
            ("rope.scaling.factor", self.rope_scale),
            ("rope.scaling.attn_factor", self.rope_attn_factor),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(k, format!("{v} is not a positive number")));
            }
        }
        if self.logit_softcap.is_some_and(|c| !c.is_finite()) {
            return Err(invalid("final_logit_softcapping", "is not finite".into()));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return Err(invalid(
                "attention.layer_norm_rms_epsilon",
                format!("{} is not a non-negative number", self.rms_eps),
            ));
        }
        Ok(())
    }

    /// Width of the key (and value) projection: `n_kv_heads · head_dim`.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Width of the query projection: `n_heads · head_dim`.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Whether layer `layer` attends within the sliding window only.
    pub fn is_local(&self, layer: usize) -> bool {
        self.local_layers.get(layer).copied().unwrap_or(false)
    }
}
