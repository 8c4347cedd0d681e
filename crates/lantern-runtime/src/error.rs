//! Errors of the runtime crate.

/// What can go wrong while building or running the decoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error reading the model file.
    #[error(transparent)]
    Io(#[from] lantern_io::Error),
    /// An error in a tensor kernel.
    #[error(transparent)]
    Core(#[from] lantern_core::Error),
    /// The file's architecture is not one this decoder runs.
    #[error("unsupported architecture {arch:?} (supported: {supported})")]
    UnsupportedArchitecture {
        /// `general.architecture` of the file.
        arch: String,
        /// The architectures the decoder knows.
        supported: &'static str,
    },
    /// Hyper-parameters that contradict each other or are out of range.
    #[error("invalid model hyper-parameter {key}: {reason}")]
    InvalidConfig {
        /// The metadata key at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A weight whose shape does not fit the hyper-parameters.
    #[error("tensor {tensor} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// The tensor's name.
        tensor: String,
        /// The shape the config implies (innermost first).
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A weight in a format the decoder cannot compute with.
    #[error("tensor {tensor} has type {ty:?}, which lantern cannot compute with yet")]
    UnsupportedTensorType {
        /// The tensor's name.
        tensor: String,
        /// Its type.
        ty: lantern_core::GgmlType,
    },
    /// A block matrix stored as SWSC tensors that are incomplete or inconsistent.
    #[error("SWSC matrix {matrix} is invalid: {reason}")]
    InvalidSwsc {
        /// The matrix's name (`blk.N.PART.weight`).
        matrix: String,
        /// What is wrong.
        reason: String,
    },
    /// A streamed container with a block matrix stored as SWSC tensors.
    #[error(
        "{matrix} is stored as SWSC tensors, which a streamed model cannot read yet; load the \
         model resident"
    )]
    SwscNotStreamed {
        /// The matrix's name (`blk.N.PART.weight`).
        matrix: String,
    },
    /// A fused matrix (Phi-3's `attn_qkv`) in a container to stream.
    #[error(
        "{matrix} holds several of the block's matrices in one, which a streamed model cannot \
         read yet; load the model resident"
    )]
    FusedNotStreamed {
        /// The fused matrix's name (`blk.N.PART.weight`).
        matrix: String,
    },
    /// More tokens than the context holds.
    #[error("{needed} tokens do not fit in a context of {ctx_len} ({used} already used)")]
    ContextFull {
        /// Tokens asked for.
        needed: usize,
        /// Tokens already in the cache.
        used: usize,
        /// The context length.
        ctx_len: usize,
    },
    /// The forward pass gave a NaN or infinite logit: damaged weights, or activations that
    /// overflow. The tokens stay in the cache; reset the state to go on.
    #[error("the model computed a non-finite logit (NaN or infinity) at position {position}: its weights may be damaged, or its activations overflow")]
    NonFiniteLogits {
        /// Position of the token whose logits are not finite.
        position: usize,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    InvalidToken {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A thresholds text ([`FfnThresholds::parse`](crate::FfnThresholds::parse)) that does
    /// not parse.
    #[error("FFN thresholds, line {line}: {reason}")]
    InvalidThresholds {
        /// The line at fault, from 1; 0 when no one line is.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A session setting out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// A LoRA adapter file that is malformed.
    #[error("invalid LoRA adapter: {reason}")]
    InvalidAdapter {
        /// What is wrong with it.
        reason: String,
    },
    /// A LoRA adapter made for another model.
    #[error("the LoRA adapter does not fit this model: {reason}")]
    AdapterMismatch {
        /// The first disagreement.
        reason: String,
    },
    /// An adapter update that cannot be merged into its matrix.
    #[error("cannot merge the adapter into {matrix}: {reason}; apply it unmerged instead")]
    MergeUnsupported {
        /// The matrix (`blk.N.PART.weight`).
        matrix: String,
        /// Why not.
        reason: String,
    },
    /// The worker pool could not be started.
    #[error("cannot start {threads} worker threads: {reason}")]
    ThreadPool {
        /// Threads asked for.
        threads: usize,
        /// Why it failed.
        reason: String,
    },
}

/// Result with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
