//! Calibration: instruments that watch a [`Session`]'s real forward pass, for tools that
//! derive settings from a model run over text (activation-sparsity thresholds,
//! re-quantization inputs). Running a model needs none of this.
//!
//! - [`Observers`] attaches [`ActivationHistograms`], [`ActiveWindows`] or a
//!   [`MatrixInputs`] observer to a session.
//! - [`run_chunks`] runs chunks of tokens, each on a fresh cache, with them attached.
//! - [`ffn_down_norms`] and [`ffn_up_norms`] weigh each FFN neuron for the criteria that
//!   fold a neuron's weights into its score.
//!
//! # Example
//! ```no_run
//! use lantern::calibration::{run_chunks, ActivationHistograms, Criterion, Observers};
//! use lantern::{Engine, SessionConfig, Sparsity};
//!
//! let engine = Engine::load("model.gguf")?;
//! let config = SessionConfig::default().ctx_len(512).sparsity(Sparsity::Dense);
//! let mut session = engine.session(config)?;
//! let tokens = engine.tokenizer().encode("A calibration text, long enough.", true)?;
//! let layers = engine.config().n_layers;
//! session.observe_ffn(Some(ActivationHistograms::new(Criterion::Gate, layers, None)))?;
//! run_chunks(&mut session, tokens.chunks(512), |_| {})?;
//! let thresholds = session.observe_ffn(None)?.expect("attached").uniform_thresholds(0.5);
//! # Ok::<(), lantern::Error>(())
//! ```

pub use lantern_runtime::calibration::{
    ActivationHistograms, ActiveWindows, InputSite, MatrixInputs, WindowCounts,
};
pub use lantern_runtime::{BlockMatrix, Criterion};

use crate::{Engine, Result, Session};

/// The instruments a [`Session`] can carry; bring the trait into scope to attach them.
pub trait Observers {
    /// Starts counting every FFN neuron's score into `histograms`, or with `None` stops;
    /// returns what was counted before.
    ///
    /// # Errors
    /// [`Error::Runtime`](crate::Error::Runtime) when the histograms are not for this
    /// model's layers.
    fn observe_ffn(
        &mut self,
        histograms: Option<ActivationHistograms>,
    ) -> Result<Option<ActivationHistograms>>;

    /// Hands the values every block's matrices multiply to `observer` from the next forward
    /// pass on, or with `None` stops; returns the observer that was watching.
    fn observe_matrix_inputs(
        &mut self,
        observer: Option<Box<dyn MatrixInputs>>,
    ) -> Option<Box<dyn MatrixInputs>>;

    /// Starts counting how well each layer's active FFN neurons in the last tokens predict
    /// the next token's, while thresholds zero neurons, or with `None` stops; returns what
    /// was counted before.
    ///
    /// # Errors
    /// [`Error::Runtime`](crate::Error::Runtime) when the windows are not for this model's
    /// layers.
    fn watch_active_windows(
        &mut self,
        windows: Option<ActiveWindows>,
    ) -> Result<Option<ActiveWindows>>;
}

impl Observers for Session {
    fn observe_ffn(
        &mut self,
        histograms: Option<ActivationHistograms>,
    ) -> Result<Option<ActivationHistograms>> {
        Ok(self.state.observe_ffn(histograms)?)
    }

    fn observe_matrix_inputs(
        &mut self,
        observer: Option<Box<dyn MatrixInputs>>,
    ) -> Option<Box<dyn MatrixInputs>> {
        self.state.observe_matrix_inputs(observer)
    }

    fn watch_active_windows(
        &mut self,
        windows: Option<ActiveWindows>,
    ) -> Result<Option<ActiveWindows>> {
        Ok(self.state.watch_active_windows(windows)?)
    }
}

/// Runs each chunk of tokens through `session` on a fresh cache (what the attached
/// instruments observe), calling `done` with the count of chunks run after each; leaves
/// the session reset.
///
/// # Errors
/// As [`Session::eval`]: a chunk longer than the context, or a token outside the
/// vocabulary.
pub fn run_chunks<'t>(
    session: &mut Session,
    chunks: impl IntoIterator<Item = &'t [u32]>,
    mut done: impl FnMut(usize),
) -> Result<()> {
    for (i, chunk) in chunks.into_iter().enumerate() {
        session.reset();
        session.eval(chunk, chunk.len())?;
        done(i + 1);
    }
    session.reset();
    Ok(())
}

/// The L2 norm of each FFN neuron's down column, per layer: how much a unit of the neuron's
/// activation moves the block's output. `None` when the blocks are streamed.
///
/// # Errors
/// [`Error::Runtime`](crate::Error::Runtime) when a down matrix cannot be dequantized.
pub fn ffn_down_norms(engine: &Engine) -> Result<Option<Vec<Vec<f32>>>> {
    Ok(engine.inner().model.down_column_norms()?)
}

/// The L2 norm of each FFN neuron's up row, per layer. `None` when the blocks are streamed.
///
/// # Errors
/// [`Error::Runtime`](crate::Error::Runtime) when an up matrix cannot be dequantized.
pub fn ffn_up_norms(engine: &Engine) -> Result<Option<Vec<Vec<f32>>>> {
    Ok(engine.inner().model.up_row_norms()?)
}
