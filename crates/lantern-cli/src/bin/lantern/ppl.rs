//! `lantern ppl`: perplexity of a text, by llama.cpp's `llama-perplexity` method.
//!
//! The method itself lives in [`lantern::Session::perplexity`] (the runtime's `scoring`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use lantern::calibration::{ActiveWindows, Observers};
use lantern_cli::measure::{check_ctx, perplexity};
use lantern_cli::model_args::ModelArgs;
use lantern_cli::text::TextFile;

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
    /// With thresholds, also report how well the neurons active in the last K tokens of
    /// each layer predict the next token's, for each K listed (e.g. 1,2,4,8): the miss rate
    /// and the share read ahead of a streamed model that reads only predicted neurons.
    #[arg(long, value_delimiter = ',', value_name = "K,…")]
    active_windows: Vec<usize>,
}

pub(crate) fn run(args: PplArgs) -> Result<()> {
    let ctx = args.model.ctx_size.unwrap_or(512);
    check_ctx(ctx)?;
    let text = TextFile::read(&args.file)?;
    let engine = args.model.engine()?;
    let text = text.chunk(&engine, ctx, args.chunks)?;
    let mut session = engine.session(args.model.session_config()?.ctx_len(ctx))?;
    if !args.active_windows.is_empty() {
        let layers = engine.config().n_layers;
        session.watch_active_windows(Some(ActiveWindows::new(&args.active_windows, layers)?))?;
    }
    eprintln!("{} tokens, {} chunks of {ctx}", text.tokens.len(), text.chunks);
    let start = Instant::now();
    let result = perplexity(&mut session, &text)?;
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5} ({} chunks of {ctx}, {} tokens scored, {:.1} tok/s)",
        result.ppl,
        result.error,
        result.chunks,
        result.scored,
        (text.chunks * (ctx - 1)) as f64 / elapsed
    );
    if let Some(share) = session.ffn_zeroed_share() {
        println!("FFN neurons zeroed by the thresholds: {:.2}%", share * 100.0);
    }
    if let Some(windows) = session.watch_active_windows(None)? {
        print_windows(&windows);
    }
    Ok(())
}

/// The window table: per window length, the share of active neurons it missed and the
/// share of all neurons it predicted (read ahead).
fn print_windows(windows: &ActiveWindows) {
    println!("| window (tokens) | active neurons missed | neurons read ahead |");
    println!("| ---: | ---: | ---: |");
    for (k, counts) in windows.counts() {
        if counts.neurons == 0 {
            println!("| {k} | no tokens with thresholds | |");
            continue;
        }
        let (missed, read) = (counts.miss_rate() * 100.0, counts.predicted_share() * 100.0);
        println!("| {k} | {missed:.1}% | {read:.1}% |");
    }
}
