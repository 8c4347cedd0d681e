//! [`BlockMatrix`]: the weight matrices of a decoder block and their tensor names.
//!
//! The names follow llama.cpp's tensor-name table (`blk.N.attn_q.weight`, …), which every
//! llama-family GGUF shares. This is the one place that spells them: the decoder, the
//! streaming plan, calibration and the offline tools all find matrices through it.

use lantern_io::gguf::{block_tensor_name, split_block_name};

use crate::calibration::InputSite;

/// One of the seven weight matrices of a decoder block, in the order a token meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlockMatrix {
    /// Query projection, `[d_model, n_heads·head_dim]`.
    AttnQ,
    /// Key projection, `[d_model, kv_dim]`.
    AttnK,
    /// Value projection, `[d_model, kv_dim]`.
    AttnV,
    /// Attention output projection, `[n_heads·head_dim, d_model]`.
    AttnOutput,
    /// FFN gate projection, `[d_model, f]`.
    FfnGate,
    /// FFN up projection, `[d_model, f]`.
    FfnUp,
    /// FFN down projection, `[f, d_model]`.
    FfnDown,
}

impl BlockMatrix {
    /// Every block matrix, in the order a token meets them (the order of
    /// [`Projections`](crate::Projections)).
    pub const ALL: [Self; 7] = [
        Self::AttnQ,
        Self::AttnK,
        Self::AttnV,
        Self::AttnOutput,
        Self::FfnGate,
        Self::FfnUp,
        Self::FfnDown,
    ];

    /// The attention matrices.
    pub const ATTENTION: [Self; 4] = [Self::AttnQ, Self::AttnK, Self::AttnV, Self::AttnOutput];

    /// The FFN matrices.
    pub const FFN: [Self; 3] = [Self::FfnGate, Self::FfnUp, Self::FfnDown];

    /// The tensor-name table's part: `attn_q`, `attn_k`, `attn_v`, `attn_output`,
    /// `ffn_gate`, `ffn_up` or `ffn_down`.
    pub fn part(self) -> &'static str {
        match self {
            Self::AttnQ => "attn_q",
            Self::AttnK => "attn_k",
            Self::AttnV => "attn_v",
            Self::AttnOutput => "attn_output",
            Self::FfnGate => "ffn_gate",
            Self::FfnUp => "ffn_up",
            Self::FfnDown => "ffn_down",
        }
    }

    /// A short name for command lines and reports: `q`, `k`, `v`, `o`, `gate`, `up` or
    /// `down`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::AttnQ => "q",
            Self::AttnK => "k",
            Self::AttnV => "v",
            Self::AttnOutput => "o",
            Self::FfnGate => "gate",
            Self::FfnUp => "up",
            Self::FfnDown => "down",
        }
    }

    /// The matrix whose [`part`](Self::part) or [`short_name`](Self::short_name) is `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.part() == name || m.short_name() == name)
    }

    /// The tensor name of this matrix in block `block`: `blk.{block}.{part}.weight`.
    ///
    /// ```
    /// use lantern_runtime::BlockMatrix;
    /// assert_eq!(BlockMatrix::FfnDown.tensor_name(3), "blk.3.ffn_down.weight");
    /// ```
    pub fn tensor_name(self, block: usize) -> String {
        block_tensor_name(block, &format!("{}.weight", self.part()))
    }

    /// The block and matrix a tensor name stands for, if it names a block matrix.
    ///
    /// ```
    /// use lantern_runtime::BlockMatrix;
    /// assert_eq!(BlockMatrix::parse("blk.3.attn_v.weight"), Some((3, BlockMatrix::AttnV)));
    /// assert_eq!(BlockMatrix::parse("blk.3.attn_norm.weight"), None);
    /// ```
    pub fn parse(name: &str) -> Option<(usize, Self)> {
        let (block, rest) = split_block_name(name)?;
        let part = rest.strip_suffix(".weight")?;
        Some((block, Self::ALL.into_iter().find(|m| m.part() == part)?))
    }

    /// The tensor names of block `block`'s matrices, in the order of [`BlockMatrix::ALL`].
    pub fn tensor_names(block: usize) -> [String; 7] {
        Self::ALL.map(|m| m.tensor_name(block))
    }

    /// The values this matrix multiplies: matrices that share an input share a site.
    pub fn input_site(self) -> InputSite {
        match self {
            Self::AttnQ | Self::AttnK | Self::AttnV => InputSite::Attention,
            Self::AttnOutput => InputSite::AttentionOutput,
            Self::FfnGate | Self::FfnUp => InputSite::Ffn,
            Self::FfnDown => InputSite::FfnDown,
        }
    }

    /// Whether the matrix belongs to the FFN.
    pub fn is_ffn(self) -> bool {
        Self::FFN.contains(&self)
    }
}

impl std::fmt::Display for BlockMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.part())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in BlockMatrix::ALL {
            assert_eq!(BlockMatrix::parse(&m.tensor_name(17)), Some((17, m)));
            assert_eq!(BlockMatrix::named(m.part()), Some(m));
            assert_eq!(BlockMatrix::named(m.short_name()), Some(m));
        }
        assert_eq!(BlockMatrix::parse("blk.1.ffn_norm.weight"), None);
        assert_eq!(BlockMatrix::parse("output.weight"), None);
        assert_eq!(BlockMatrix::parse("blk.1.attn_q.bias"), None);
    }

    #[test]
    fn sites_group_the_matrices_that_share_an_input() {
        assert_eq!(BlockMatrix::AttnV.input_site(), InputSite::Attention);
        assert_eq!(BlockMatrix::AttnOutput.input_site(), InputSite::AttentionOutput);
        assert_eq!(BlockMatrix::FfnUp.input_site(), InputSite::Ffn);
        assert_eq!(BlockMatrix::FfnDown.input_site(), InputSite::FfnDown);
    }
}
