//! Scoring a model on text by llama.cpp's `llama-perplexity` method: the loop perplexity
//! and the KL divergence of one model from another both run.
//!
//! The tokens are cut into non-overlapping chunks of a context's length
//! ([`context_chunks`]). Each chunk of `n` tokens runs on a fresh cache, its first token
//! replaced by BOS when the model adds one and its last token only a target; only the
//! second half is scored: the logits at positions `n/2 .. n-1` (`vocab_size` values each)
//! with the tokens at `n/2 + 1 .. n` that follow them ([`Scored::Row`]), so every scored
//! token sees at least `n/2` tokens of context. [`perplexity`] is exp(mean NLL) over the
//! scored tokens with its standard error, as llama.cpp prints it.
//!
//! # Example
//! ```no_run
//! use lantern_io::{GgufModel, ModelSource};
//! use lantern_runtime::scoring::{context_chunks, perplexity};
//! use lantern_runtime::{Model, StateConfig};
//!
//! let file = GgufModel::open(ModelSource::read("model.gguf")?)?;
//! let model = Model::load(&file)?;
//! let mut state = model.new_state(StateConfig { ctx_len: 512, ..Default::default() })?;
//! let tokens: Vec<u32> = vec![1; 2048]; // a tokenized text
//! let ppl = perplexity(&model, &mut state, context_chunks(&tokens, 512, None), Some(1), |_| {})?;
//! println!("PPL = {:.4} +/- {:.5}", ppl.ppl, ppl.error);
//! # Ok::<(), lantern_runtime::Error>(())
//! ```

use std::iter::Take;
use std::slice::ChunksExact;

use crate::{Error, Model, Result, State};

/// The shortest chunk that can be scored: half of it is context, and one token is only a
/// target.
pub const MIN_CHUNK: usize = 4;

/// A perplexity estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Perplexity {
    /// exp(mean negative log-likelihood).
    pub ppl: f64,
    /// Standard error of `ppl`.
    pub error: f64,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Tokens scored.
    pub scored: usize,
}

/// What [`score_chunks`] hands on.
#[derive(Clone, Copy, Debug)]
pub enum Scored<'a> {
    /// A scored position: the model's logits there, and the token that follows.
    Row {
        /// One logit per vocabulary entry.
        logits: &'a [f32],
        /// The next token of the text.
        target: u32,
    },
    /// This many chunks are done.
    ChunkDone(usize),
}

/// The whole chunks of `ctx` tokens at the start of `tokens`, in order, at most
/// `max_chunks` of them (all when `None`): the chunks perplexity scores and calibration
/// runs. A tail shorter than `ctx` is left out; a `ctx` of 0 gives no chunks.
///
/// ```
/// use lantern_runtime::scoring::context_chunks;
/// let tokens: Vec<u32> = (0..10).collect();
/// let chunks: Vec<&[u32]> = context_chunks(&tokens, 4, None).collect();
/// assert_eq!(chunks, [&[0, 1, 2, 3][..], &[4, 5, 6, 7]]);
/// assert_eq!(context_chunks(&tokens, 4, Some(1)).len(), 1);
/// ```
pub fn context_chunks(
    tokens: &[u32],
    ctx: usize,
    max_chunks: Option<usize>,
) -> Take<ChunksExact<'_, u32>> {
    let available = tokens.len().checked_div(ctx).unwrap_or(0);
    let chunks = max_chunks.map_or(available, |m| m.min(available));
    tokens.chunks_exact(ctx.max(1)).take(chunks)
}

/// Runs each of `chunks` through `model` on a fresh cache of `state`, as llama.cpp's
/// perplexity does (the module docs say which positions are scored), its first token
/// replaced by `bos` when given, and hands `on_scored` each scored position's logits with
/// the token that follows, then the count of chunks done after each chunk. Returns the
/// chunks run; leaves `state` empty.
///
/// Comparing two models' rows over the same chunks gives llama.cpp's KL divergence.
///
/// # Errors
/// [`Error::InvalidSetting`] for a chunk shorter than [`MIN_CHUNK`] (nothing is computed
/// for it); [`Error::ContextFull`] for a chunk longer than the state's context plus one;
/// [`Error::InvalidToken`] for an id outside the vocabulary.
pub fn score_chunks<'t>(
    model: &Model,
    state: &mut State,
    chunks: impl IntoIterator<Item = &'t [u32]>,
    bos: Option<u32>,
    mut on_scored: impl FnMut(Scored<'_>),
) -> Result<usize> {
    let vocab = model.config().vocab_size;
    let mut done = 0;
    let mut input = Vec::new();
    for chunk in chunks {
        let n = chunk.len();
        if n < MIN_CHUNK {
            state.truncate(0);
            return Err(Error::InvalidSetting {
                name: "scored chunk",
                reason: format!("{n} tokens, fewer than {MIN_CHUNK}"),
            });
        }
        // The last token is only a target, never an input: the pass would not check it.
        if let Some(&id) = chunk.iter().find(|&&id| id as usize >= vocab) {
            state.truncate(0);
            return Err(Error::InvalidToken { id, vocab_size: vocab });
        }
        let first = n / 2;
        input.clear();
        input.extend_from_slice(&chunk[..n - 1]);
        if let Some(bos) = bos {
            input[0] = bos;
        }
        state.truncate(0);
        let logits = model.forward(state, &input, first)?;
        for (logits, &target) in logits.chunks_exact(vocab).zip(&chunk[first + 1..]) {
            on_scored(Scored::Row { logits, target });
        }
        done += 1;
        on_scored(Scored::ChunkDone(done));
    }
    state.truncate(0);
    Ok(done)
}

/// Perplexity of `chunks` ([`score_chunks`], with the same arguments); `on_chunk` sees the
/// running estimate after each chunk. With no chunks the estimate is NaN.
///
/// # Errors
/// As [`score_chunks`].
pub fn perplexity<'t>(
    model: &Model,
    state: &mut State,
    chunks: impl IntoIterator<Item = &'t [u32]>,
    bos: Option<u32>,
    mut on_chunk: impl FnMut(&Perplexity),
) -> Result<Perplexity> {
    let mut sums = Sums::default();
    let chunks = score_chunks(model, state, chunks, bos, |scored| match scored {
        Scored::Row { logits, target } => sums.add(negative_log_likelihood(logits, target)),
        Scored::ChunkDone(done) => on_chunk(&sums.estimate(done)),
    })?;
    Ok(sums.estimate(chunks))
}

/// −log softmax(`logits`) at index `target`, summed in f64.
///
/// # Panics
/// When `target` is not an index of `logits`.
pub fn negative_log_likelihood(logits: &[f32], target: u32) -> f64 {
    let (max, log_sum) = shifted_log_sum_exp(logits);
    log_sum - f64::from(logits[target as usize] - max)
}

/// log Σ exp(`x`), summed in f64 (−∞ for no values): the normalizer of a softmax over
/// logits.
pub fn log_sum_exp(x: &[f32]) -> f64 {
    let (max, log_sum) = shifted_log_sum_exp(x);
    f64::from(max) + log_sum
}

/// The largest value `m` of `x` and log Σ exp(x − m), each difference taken in f32 and
/// its exponential summed in f64: log-sum-exp without overflow.
fn shifted_log_sum_exp(x: &[f32]) -> (f32, f64) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (max, x.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln())
}

/// Running sums of negative log-likelihoods.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    nll: f64,
    nll2: f64,
    count: usize,
}

impl Sums {
    fn add(&mut self, nll: f64) {
        self.nll += nll;
        self.nll2 += nll * nll;
        self.count += 1;
    }

    fn estimate(&self, chunks: usize) -> Perplexity {
        let n = self.count as f64;
        let mean = self.nll / n;
        let var = self.nll2 / n - mean * mean;
        let ppl = mean.exp();
        let error = if var > 0.0 && self.count > 1 { (var / (n - 1.0)).sqrt() * ppl } else { 0.0 };
        Perplexity { ppl, error, chunks, scored: self.count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_the_vocabulary_size() {
        let nll = negative_log_likelihood(&[0.5; 8], 3);
        assert!((nll.exp() - 8.0).abs() < 1e-9);
        let sums = Sums { nll: nll * 10.0, nll2: nll * nll * 10.0, count: 10 };
        let p = sums.estimate(1);
        assert!((p.ppl - 8.0).abs() < 1e-9 && p.error == 0.0);
    }

    #[test]
    fn error_shrinks_with_agreeing_samples() {
        let spread = Sums { nll: 1.0 + 3.0, nll2: 1.0 + 9.0, count: 2 }.estimate(1);
        assert!(spread.error > 0.0);
        assert!((spread.ppl - 2f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn log_sum_exp_survives_large_logits_and_agrees_with_the_nll() {
        let x = [1000.0f32, 1000.0, 999.0];
        let expected = 1000.0 + (2.0 + (-1f64).exp()).ln();
        assert!((log_sum_exp(&x) - expected).abs() < 1e-9);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        let nll = negative_log_likelihood(&x, 2);
        assert!((nll - (log_sum_exp(&x) - 999.0)).abs() < 1e-9);
    }

    #[test]
    fn chunks_are_whole_and_capped() {
        let tokens: Vec<u32> = (0..10).collect();
        assert_eq!(context_chunks(&tokens, 3, None).len(), 3);
        assert_eq!(context_chunks(&tokens, 3, Some(2)).len(), 2);
        assert_eq!(context_chunks(&tokens, 11, None).len(), 0);
        assert_eq!(context_chunks(&tokens, 0, None).len(), 0);
        assert_eq!(context_chunks(&tokens, 5, Some(9)).next_back(), Some(&[5, 6, 7, 8, 9][..]));
    }
}
