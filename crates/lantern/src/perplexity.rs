//! Perplexity of a token sequence, by llama.cpp's `llama-perplexity` method, on a
//! [`Session`]: thin wrappers over [`lantern_runtime::scoring`], which owns the method.
//!
//! The tokens are cut into non-overlapping chunks of the session's context length. Each
//! chunk is evaluated on a fresh cache (with BOS in place of its first token when the model
//! adds BOS), and only the second half is scored, so every scored token sees at least
//! `ctx/2` tokens of context. The result is exp(mean NLL) with its standard error, as
//! llama.cpp prints it.

use std::iter::Take;
use std::slice::ChunksExact;

use lantern_runtime::scoring::{self, context_chunks, MIN_CHUNK};
use lantern_runtime::{Model, Result as RuntimeResult, State};

use crate::{Error, Result, Session};

pub use lantern_runtime::scoring::{Perplexity, Scored};

/// The chunks [`context_chunks`] cuts.
type Chunks<'t> = Take<ChunksExact<'t, u32>>;

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
        on_chunk: impl FnMut(&Perplexity),
    ) -> Result<Perplexity> {
        self.on_chunks(tokens, max_chunks, |model, state, chunks, bos| {
            scoring::perplexity(model, state, chunks, bos, on_chunk)
        })
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
        on_scored: impl FnMut(Scored<'_>),
    ) -> Result<usize> {
        self.on_chunks(tokens, max_chunks, |model, state, chunks, bos| {
            scoring::score_chunks(model, state, chunks, bos, on_scored)
        })
    }

    /// Runs `score` over the chunks of the context length in `tokens` (at most
    /// `max_chunks`), with the BOS id they start with if the model adds one, on a reset
    /// session, and resets it after.
    ///
    /// # Errors
    /// [`Error::PromptTooLong`] when there is no whole chunk of a context long enough to
    /// score; `score`'s errors.
    fn on_chunks<R>(
        &mut self,
        tokens: &[u32],
        max_chunks: Option<usize>,
        score: impl FnOnce(&Model, &mut State, Chunks<'_>, Option<u32>) -> RuntimeResult<R>,
    ) -> Result<R> {
        let ctx = self.ctx_len();
        let chunks = context_chunks(tokens, ctx, max_chunks);
        if ctx < MIN_CHUNK || chunks.len() == 0 {
            return Err(Error::PromptTooLong { tokens: tokens.len(), ctx_len: ctx });
        }
        let tokenizer = self.engine.tokenizer();
        let bos = tokenizer.add_bos().then(|| tokenizer.bos()).flatten();
        self.reset();
        let result = score(&self.engine.inner().model, &mut self.state, chunks, bos);
        self.reset();
        Ok(result?)
    }
}
