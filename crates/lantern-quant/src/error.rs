//! Errors of re-quantization.

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
    /// Reading or writing blocks failed.
    #[error(transparent)]
    Core(#[from] lantern_core::Error),
}

/// Result with re-quantization's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
