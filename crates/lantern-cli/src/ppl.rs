//! `lantern ppl`: perplexity of a text, by llama.cpp's `llama-perplexity` method.
//!
//! The method itself lives in [`lantern::Session::perplexity`].

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
    let mut session = engine.session(args.model.session_config()?.ctx_len(ctx))?;
    eprintln!("{} tokens, {n_chunks} chunks of {ctx}", tokens.len());
    let start = Instant::now();
    let result =
        session.perplexity(&tokens, Some(n_chunks), |p| eprint!("[{}]{:.4},", p.chunks, p.ppl))?;
    eprintln!();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5} ({} chunks of {ctx}, {} tokens scored, {:.1} tok/s)",
        result.ppl,
        result.error,
        result.chunks,
        result.scored,
        (n_chunks * (ctx - 1)) as f64 / elapsed
    );
    if let Some(share) = session.ffn_zeroed_share() {
        println!("FFN neurons zeroed by the thresholds: {:.2}%", share * 100.0);
    }
    Ok(())
}
