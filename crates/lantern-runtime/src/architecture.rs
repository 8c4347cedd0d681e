//! [`BlockOptions`]: how each supported family's block differs from llama's.
//!
//! The decoder is one generic block; an architecture is a set of small, named options of it,
//! read from `general.architecture`. The per-model numbers (head width, window, RoPE bases)
//! are metadata, in [`ModelConfig`](crate::ModelConfig).

/// Architectures the generic decoder runs, by their `general.architecture` name.
pub const SUPPORTED_ARCHITECTURES: &str = "llama, qwen2, qwen3, gemma3, phi3";

/// Which values of a head RoPE turns together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: llama, whose Q/K weights GGUF stores permuted for it.
    Adjacent,
    /// Value `i` with value `i + rope_dim/2` (GPT-NeoX's): Qwen, Gemma, Phi-3.
    Halves,
}

/// The gate's activation in the gated FFN, `down · (act(gate · x) ⊙ up · x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (SwiGLU): llama, Qwen, Phi-3.
    Silu,
    /// GELU, tanh approximation (GeGLU): Gemma.
    GeluTanh,
}

/// The options of the generic block one architecture sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockOptions {
    /// How RoPE pairs a head's values.
    pub rope: RopeStyle,
    /// The FFN gate's activation.
    pub activation: Activation,
    /// Biases on the Q, K and V projections (`attn_{q,k,v}.bias`): Qwen2.
    pub qkv_bias: bool,
    /// RMSNorm of each query and key head before RoPE (`attn_{q,k}_norm`): Qwen3, Gemma 3.
    pub qk_norm: bool,
    /// RMSNorm of the attention and FFN outputs before they join the residual
    /// (`post_attention_norm`, `post_ffw_norm`): Gemma 3.
    pub post_norms: bool,
    /// Token embeddings scaled by √d_model: Gemma.
    pub embedding_scale: bool,
    /// Queries scaled before attention, which then scales scores by 1 (the order Gemma's
    /// and Phi-3's reference graphs round in); otherwise scores are scaled.
    pub scale_queries: bool,
    /// Whether `attention.sliding_window` makes some layers local: Gemma 3. (Phi-3 and
    /// Qwen2 files may declare a window that their reference graphs do not apply.)
    pub sliding_window: bool,
}

impl BlockOptions {
    const LLAMA: Self = Self {
        rope: RopeStyle::Adjacent,
        activation: Activation::Silu,
        qkv_bias: false,
        qk_norm: false,
        post_norms: false,
        embedding_scale: false,
        scale_queries: false,
        sliding_window: false,
    };

    /// The options of architecture `name`, or `None` if the decoder does not run it.
    pub fn of(name: &str) -> Option<Self> {
        let halves = Self { rope: RopeStyle::Halves, ..Self::LLAMA };
        Some(match name {
            "llama" => Self::LLAMA,
            "qwen2" => Self { qkv_bias: true, ..halves },
            "qwen3" => Self { qk_norm: true, ..halves },
            "gemma3" => Self {
                activation: Activation::GeluTanh,
                qk_norm: true,
                post_norms: true,
                embedding_scale: true,
                scale_queries: true,
                sliding_window: true,
                ..halves
            },
            // Its fused matrices (`attn_qkv`, and `ffn_up` holding gate and up) are read as
            // the separate ones of the block.
            "phi3" => Self { scale_queries: true, ..halves },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_architecture_has_options() {
        for name in SUPPORTED_ARCHITECTURES.split(", ") {
            assert!(BlockOptions::of(name).is_some(), "{name}");
        }
        assert_eq!(BlockOptions::of("gpt2"), None);
    }
}
