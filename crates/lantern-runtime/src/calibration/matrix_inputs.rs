//! [`MatrixInputs`]: what each weight matrix of a block is multiplied with, handed to an
//! observer as the forward pass computes it, for calibrating re-quantization.

/// The four inputs of a block's matrices: the matrices that share an input share a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InputSite {
    /// The normed residual stream before attention, input of q, k and v.
    Attention,
    /// The heads' mixed values, input of the attention output projection.
    AttentionOutput,
    /// The normed residual stream before the FFN, input of gate and up.
    Ffn,
    /// SiLU(gate)·up, after any activation-sparsity zeroing, input of down.
    FfnDown,
}

impl InputSite {
    /// Every site, in the order a token meets them.
    pub const ALL: [Self; 4] = [Self::Attention, Self::AttentionOutput, Self::Ffn, Self::FfnDown];
}

/// Receives, block by block, the f32 values each site's matrices multiply: `x` holds `n`
/// tokens' rows one after another. (The matrices multiply these values quantized to 8
/// bits, as the kernels need them.)
pub trait MatrixInputs: Send {
    /// Called once per site, block and batch of the forward pass.
    fn observe(&mut self, layer: usize, site: InputSite, x: &[f32], n: usize);
}
