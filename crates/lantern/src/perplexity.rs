//! Perplexity of a token sequence, by llama.cpp's `llama-perplexity` method.
//!
//! The tokens are cut into non-overlapping chunks of `ctx` tokens. Each chunk is evaluated
//! on a fresh cache (with BOS in place of its first token when the model adds BOS), and only
//! the second half is scored, so every scored token sees at least `ctx/2` tokens of context.
//! The result is exp(mean NLL) with its standard error, as llama.cpp prints it.

use crate::{Error, Result, Session};

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

/// Running sums of negative log-likelihoods.
/// What [`Session::score_chunks`] hands on.
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

#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    nll: f64,
    nll2: f64,
    count: usize,
}

impl Sums {
    fn estimate(&self, chunks: usize) -> Perplexity {
        let n = self.count as f64;
        let mean = self.nll / n;
        let var = self.nll2 / n - mean * mean;
        let ppl = mean.exp();
        let error = if var > 0.0 && self.count > 1 { (var / (n - 1.0)).sqrt() * ppl } else { 0.0 };
        Perplexity { ppl, error, chunks, scored: self.count }
    }
}

impl Session {
    /// Perplexity of `tokens` in chunks of the session's context length, at most
    /// `max_chunks` of them; `on_chunk` sees the running estimate after each chunk.
    ///
    /// The session's conversation is reset.
    ///
    /// # Errors
    /// [`Error::PromptTooLong`] when `tokens` hold less than one chunk or the context is
    /// shorter than 4 tokens; forward-pass errors.
    pub fn perplexity(
        &mut self,
        tokens: &[u32],
        max_chunks: Option<usize>,
        mut on_chunk: impl FnMut(&Perplexity),
    ) -> Result<Perplexity> {
        let mut sums = Sums::default();
        let chunks = self.score_chunks(tokens, max_chunks, |scored| match scored {
            Scored::Row { logits, target } => {
                let nll = negative_log_likelihood(logits, target as usize);
                sums.nll += nll;
                sums.nll2 += nll * nll;
                sums.count += 1;
            }
            Scored::ChunkDone(done) => on_chunk(&sums.estimate(done)),
        })?;
        Ok(sums.estimate(chunks))
    }

    /// Runs `tokens` as [`Session::perplexity`] does (chunks of the context length, a fresh
    /// cache for each, the first token made BOS) and hands `on_scored` the logits of each
    /// scored position (the second half of each chunk) with the token that follows it, then
    /// the count of chunks done after each chunk. Returns the chunks run.
    ///
    /// Comparing two models' rows over the same tokens gives llama.cpp's KL divergence.
    /// The session's conversation is reset.
    ///
    /// # Errors
    /// As [`Session::perplexity`].
    pub fn score_chunks(
        &mut self,
        tokens: &[u32],
        max_chunks: Option<usize>,
        mut on_scored: impl FnMut(Scored<'_>),
    ) -> Result<usize> {
        let ctx = self.ctx_len();
        let n_chunks = max_chunks.map_or(tokens.len() / ctx, |m| m.min(tokens.len() / ctx));
        if ctx < 4 || n_chunks == 0 {
            return Err(Error::PromptTooLong { tokens: tokens.len(), ctx_len: ctx });
        }
        let tokenizer = self.engine.tokenizer();
        let bos = tokenizer.add_bos().then(|| tokenizer.bos()).flatten();
        let vocab = self.engine.config().vocab_size;
        let first = ctx / 2;
        for (i, chunk) in tokens.chunks_exact(ctx).take(n_chunks).enumerate() {
            // The last token is only a target, never an input.
            let mut input = chunk[..ctx - 1].to_vec();
            if let Some(bos) = bos {
                input[0] = bos;
            }
            self.reset();
            let logits = self.eval(&input, first)?;
            for (logits, &target) in logits.chunks_exact(vocab).zip(&chunk[first + 1..]) {
                on_scored(Scored::Row { logits, target });
            }
            on_scored(Scored::ChunkDone(i + 1));
        }
        self.reset();
        Ok(n_chunks)
    }
}

/// −log softmax(row)[target], summed in f64.
fn negative_log_likelihood(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
    sum.ln() - f64::from(row[target] - max)
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
}
