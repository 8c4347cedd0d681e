//! `lantern ppl`: perplexity of a text, by llama.cpp's `llama-perplexity` method.
//!
//! The text is tokenized whole and cut into non-overlapping chunks of `ctx` tokens; each
//! chunk starts with a fresh cache (and BOS in place of its first token when the model adds
//! BOS), and only the second half of each chunk is scored, so every scored token sees at
//! least `ctx/2` tokens of context. Reported: exp(mean NLL) ± its standard error.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::model_args::ModelArgs;

/// Measure perplexity on a text file.
#[derive(Debug, Args)]
pub(crate) struct PplArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text (UTF-8), e.g. wiki.test.raw.
    #[arg(short, long)]
    file: PathBuf,
    /// Score only the first N chunks. By default, all.
    #[arg(long)]
    chunks: Option<usize>,
}

/// Perplexity and its standard error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Perplexity {
    pub(crate) ppl: f64,
    pub(crate) error: f64,
    pub(crate) scored: usize,
}

pub(crate) fn run(args: PplArgs) -> Result<()> {
    let ctx = args.model.ctx_size.unwrap_or(512);
    if ctx < 4 {
        bail!("a context of {ctx} tokens is too short to score");
    }
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8", args.file.display()))?;
    let engine = args.model.engine()?;
    let tokenizer = engine.tokenizer();
    let tokens = tokenizer.encode(&text, true)?;
    let available = tokens.len() / ctx;
    let n_chunks = args.chunks.map_or(available, |c| c.min(available));
    if n_chunks == 0 {
        bail!("{} tokens are fewer than one chunk of {ctx}", tokens.len());
    }
    // The BOS substitution follows the model's own add-BOS setting, as llama.cpp does.
    let bos = tokenizer.add_bos().then(|| tokenizer.bos()).flatten();
    let mut session = engine.session(args.model.session_config().ctx_len(ctx))?;
    eprintln!("{} tokens, {n_chunks} chunks of {ctx}", tokens.len());
    let start = Instant::now();
    let first = ctx / 2;
    let vocab = engine.config().vocab_size;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    for chunk in tokens.chunks_exact(ctx).take(n_chunks) {
        let mut input = chunk[..ctx - 1].to_vec();
        if let Some(bos) = bos {
            input[0] = bos;
        }
        session.reset();
        let logits = session.eval(&input, first)?;
        for (row, &target) in logits.chunks_exact(vocab).zip(&chunk[first + 1..]) {
            let v = negative_log_likelihood(row, target as usize);
            nll += v;
            nll2 += v * v;
            count += 1;
        }
        eprint!("[{}]{:.4},", count / (ctx - 1 - first), (nll / count as f64).exp());
    }
    eprintln!();
    let result = estimate(nll, nll2, count);
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5} ({} chunks of {ctx}, {} tokens scored, {:.1} tok/s)",
        result.ppl,
        result.error,
        n_chunks,
        result.scored,
        (n_chunks * (ctx - 1)) as f64 / elapsed
    );
    Ok(())
}

/// −log softmax(row)[target], summed in f64.
fn negative_log_likelihood(row: &[f32], target: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&l| f64::from(l - max).exp()).sum();
    sum.ln() - f64::from(row[target] - max)
}

/// exp(mean) and its standard error, as llama.cpp reports them.
fn estimate(nll: f64, nll2: f64, count: usize) -> Perplexity {
    let n = count as f64;
    let mean = nll / n;
    let var = nll2 / n - mean * mean;
    let ppl = mean.exp();
    let error = if var > 0.0 && count > 1 { (var / (n - 1.0)).sqrt() * ppl } else { 0.0 };
    Perplexity { ppl, error, scored: count }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_vocabulary_size() {
        let nll = negative_log_likelihood(&[0.5; 8], 3);
        assert!((nll.exp() - 8.0).abs() < 1e-9);
        let p = estimate(nll * 10.0, nll * nll * 10.0, 10);
        assert!((p.ppl - 8.0).abs() < 1e-9 && p.error == 0.0);
    }
}
