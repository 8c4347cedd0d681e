//! What `lantern bench` and `lantern ppl` measure, for any command that measures the same:
//! prompt and generation speed as `llama-bench` times them, and perplexity as
//! `llama-perplexity` computes it ([`lantern::Session::perplexity`]).

use std::time::Instant;

use anyhow::{bail, Result};
use lantern::{Perplexity, Session};

use crate::text::ChunkedText;

/// Prompt speed in tokens per second: `tokens` evaluated as one prompt on a fresh cache.
///
/// # Errors
/// Forward-pass errors, such as tokens that do not fit in the session's context.
pub fn prompt_speed(session: &mut Session, tokens: &[u32]) -> Result<f64> {
    session.reset();
    let start = Instant::now();
    session.eval(tokens, tokens.len().saturating_sub(1))?;
    Ok(tokens.len() as f64 / start.elapsed().as_secs_f64())
}

/// Generation speed in tokens per second: `tokens` decoded one at a time, as generation
/// computes them, after `prompt` (not timed) on a fresh cache.
///
/// # Errors
/// Forward-pass errors, such as tokens that do not fit in the session's context.
pub fn generation_speed(session: &mut Session, prompt: &[u32], tokens: &[u32]) -> Result<f64> {
    session.reset();
    if !prompt.is_empty() {
        session.eval(prompt, prompt.len() - 1)?;
    }
    let start = Instant::now();
    for &token in tokens {
        session.eval(&[token], 0)?;
    }
    Ok(tokens.len() as f64 / start.elapsed().as_secs_f64())
}

/// Refuses a context too short to score (llama.cpp's method scores its second half).
///
/// # Errors
/// For fewer than 4 tokens.
pub fn check_ctx(ctx: usize) -> Result<()> {
    if ctx < 4 {
        bail!("a context of {ctx} tokens is too short to score");
    }
    Ok(())
}

/// Perplexity of `text`'s chunks on `session`, whose context must be `text.ctx` tokens; the
/// running estimate goes to stderr after each chunk.
///
/// # Errors
/// When the session's context is not the text's chunk length, and forward-pass errors.
pub fn perplexity(session: &mut Session, text: &ChunkedText) -> Result<Perplexity> {
    if session.ctx_len() != text.ctx {
        bail!("a session of {} positions scoring chunks of {}", session.ctx_len(), text.ctx);
    }
    let result = session.perplexity(&text.tokens, Some(text.chunks), |p| {
        eprint!("[{}]{:.4},", p.chunks, p.ppl);
    })?;
    eprintln!();
    Ok(result)
}
