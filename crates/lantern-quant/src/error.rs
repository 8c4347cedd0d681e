//! Errors of re-quantization.

use std::path::PathBuf;

use lantern_core::GgmlType;

/// What can go wrong while re-quantizing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An objective name that names none.
    #[error("unknown objective {0:?}: expected nearest, scale-search or error-feedback")]
    UnknownObjective(String),
    /// A target type whose blocks are not one scale over evenly spaced codes.
    #[error("cannot re-quantize to {0:?} with a calibrated objective: it has no block grid")]
    NoGrid(GgmlType),
    /// A model whose block the reconstruction's own forward pass does not compute.
    #[error("reconstruction runs llama blocks only, not {0:?} (use the nearest objective)")]
    Architecture(String),
    /// Calibration inputs missing or not fitting the matrix.
    #[error("calibration: {0}")]
    Calibration(String),
    /// The inputs' Gram matrix is not positive definite, even damped.
    #[error("the calibration inputs' Gram matrix cannot be factored, even damped")]
    Singular,
    /// No choice of formats fits the byte budget.
    #[error("a budget of {budget} bytes is too small: the smallest formats take {least} bytes")]
    Budget {
        /// The budget asked for.
        budget: u64,
        /// Bytes of every unit in its smallest format.
        least: u64,
    },
    /// A cluster count outside 1..=min(input channels, 65536) (labels are u16).
    #[error("{clusters} clusters for {channels} input channels: need 1 to min(channels, 65536)")]
    Clusters {
        /// The cluster count asked for.
        clusters: usize,
        /// Input channels of the matrix.
        channels: usize,
    },
    /// A residual rank above the matrix's smaller side.
    #[error("rank {rank} for a {rows}×{cols} matrix: at most {}", (*rows).min(*cols))]
    Rank {
        /// The rank asked for.
        rank: usize,
        /// Rows (outputs) of the matrix.
        rows: usize,
        /// Columns (inputs) of the matrix.
        cols: usize,
    },
    /// A slice whose length does not fit the matrix.
    #[error("{what}: {actual} values where {expected} were expected")]
    Length {
        /// Which slice.
        what: &'static str,
        /// The length the matrix needs.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A weight or channel energy that is not a finite number (or a negative energy).
    #[error("{what} {index} is {value}: expected a finite number (and no negative energy)")]
    NotFinite {
        /// Which values.
        what: &'static str,
        /// Its index in them.
        index: usize,
        /// The value.
        value: f32,
    },
    /// A kept neuron count that is zero, above the FFN's width or not a whole number of
    /// quantization blocks.
    #[error(
        "keeping {keep} of {width} FFN neurons: need a multiple of {step} from {step} to {width}"
    )]
    Keep {
        /// Neurons asked to keep.
        keep: usize,
        /// Neurons the block has.
        width: usize,
        /// The multiple a kept count must be.
        step: usize,
    },
    /// The singular value decomposition of a residual did not converge.
    #[error("the residual's singular value decomposition did not converge")]
    Svd,
    /// A tensor operation of training failed.
    #[error("training: {0}")]
    Training(#[from] candle_core::Error),
    /// The model did not load.
    #[error(transparent)]
    Model(#[from] lantern_runtime::Error),
    /// A matrix name that does not end in `.weight`, so has no SWSC tensor names.
    #[error("{0:?} is not a weight matrix's name (`….weight`)")]
    MatrixName(String),
    /// Reading or writing blocks failed.
    #[error(transparent)]
    Core(#[from] lantern_core::Error),
    /// Reading the model file, or writing a file, failed.
    #[error(transparent)]
    File(#[from] lantern_io::Error),
    /// One tensor of a model could not be re-quantized.
    #[error("re-quantizing {name} to {ty:?}")]
    Requantize {
        /// The tensor's name.
        name: String,
        /// The type asked for.
        ty: GgmlType,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// One matrix of a model could not be factored as SWSC.
    #[error("factoring {name} with k = {clusters}, r = {rank}")]
    Factor {
        /// The matrix's name.
        name: String,
        /// Clusters asked for.
        clusters: usize,
        /// Residual rank asked for.
        rank: usize,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// A tensor named as a matrix that is not two-dimensional.
    #[error("{name} is not a matrix: dims {dims:?}")]
    NotAMatrix {
        /// The tensor's name.
        name: String,
        /// Its dimensions.
        dims: Vec<usize>,
    },
    /// An SWSC cluster count that does not fit a matrix it applies to.
    #[error("k = {clusters} does not fit {matrix} ({inputs} input channels)")]
    SwscClusters {
        /// The matrix's name.
        matrix: String,
        /// The cluster count.
        clusters: usize,
        /// Its input channels.
        inputs: usize,
    },
    /// An SWSC residual rank above a matrix's rank.
    #[error("r = {rank} exceeds the rank of {matrix} ({outputs}×{inputs})")]
    SwscRank {
        /// The matrix's name.
        matrix: String,
        /// The rank asked for.
        rank: usize,
        /// Its outputs (rows).
        outputs: usize,
        /// Its inputs (columns).
        inputs: usize,
    },
    /// A per-layer policy for a model without `blk.N` blocks.
    #[error("the model has no blocks named blk.N")]
    NoBlocks,
    /// A sensitivities file that could not be read.
    #[error("reading {}", path.display())]
    ReadSensitivities {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A sensitivities file measured with another model, objective, formats or text.
    #[error("{} was measured otherwise ({found:?}); remove it or name another file", path.display())]
    SensitivitiesMeasuredOtherwise {
        /// The file.
        path: PathBuf,
        /// Its first line, which says how it was measured.
        found: String,
    },
    /// A file that is not a sensitivities file.
    #[error("{} is not a sensitivities file lantern wrote", path.display())]
    NotSensitivities {
        /// The file.
        path: PathBuf,
    },
    /// A sensitivities file without a candidate's cost.
    #[error("{} has no {unit} in {candidate}", path.display())]
    MissingSensitivity {
        /// The file.
        path: PathBuf,
        /// The unit.
        unit: String,
        /// The candidate's label.
        candidate: String,
    },
    /// A tuning setting out of range.
    #[error("tuning: {name} {reason}")]
    TuneSetting {
        /// The setting.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A model whose blocks tuning's forward pass does not compute exactly.
    #[error("tuning runs llama-style blocks only; this model has {what}")]
    TuneUnsupported {
        /// What the model has that tuning does not compute.
        what: String,
    },
    /// A training text too short for one sequence.
    #[error(
        "the training text has {tokens} tokens, fewer than one sequence of {needed} \
         (seq_len + 1)"
    )]
    TooFewTokens {
        /// Tokens of the text.
        tokens: usize,
        /// Tokens one sequence takes.
        needed: usize,
    },
    /// A training loss that is NaN or infinite: training diverged (nothing of that step is
    /// kept).
    #[error("non-finite loss at step {step} (try a lower learning rate)")]
    NonFiniteLoss {
        /// The step, counted from 1.
        step: usize,
    },
    /// A memory budget below what training is estimated to need.
    #[error(
        "a budget of {budget} bytes is too small to train: the run needs about {estimate} bytes \
         (try a smaller window, shorter sequences or fewer of them)"
    )]
    TuneBudget {
        /// The budget asked for.
        budget: u64,
        /// The estimate of peak memory.
        estimate: u64,
    },
    /// A checkpoint made by another run: another model, text or setting.
    #[error(
        "{} was made with {setting} {checkpoint}, this run has {run}: resume with the same \
         settings or start afresh",
        path.display()
    )]
    CheckpointMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// The setting that differs.
        setting: String,
        /// Its value in the checkpoint.
        checkpoint: String,
        /// Its value in this run.
        run: String,
    },
    /// A file that is not a tuning checkpoint, or one that is damaged.
    #[error("{} is not a tuning checkpoint lantern wrote: {reason}", path.display())]
    NotCheckpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result with re-quantization's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
