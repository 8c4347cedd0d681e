//! `lantern`: chat with, run, inspect, convert, benchmark and score quantized LLMs.
//!
//! Run with: `cargo run --release -p lantern-cli -- <command>` (or `cargo chat`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod atomic_file;
mod bench;
mod calibrate;
mod chat;
mod convert;
mod fetch;
mod ffn_prune;
mod frontier_plot;
mod inspect;
mod layer_policy;
mod model_args;
mod plot;
mod ppl;
mod progress;
mod report;
mod requantize;
mod run;
mod sampling_args;
mod sparsity_sweep;
mod sweep_plot;
mod swsc_specs;
mod text;
mod thresholds;
mod tokenize;
mod trace;
mod weight_types;

/// Embeddable LLM inference for edge devices.
#[derive(Debug, Parser)]
#[command(name = "lantern", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Chat with a model (the default model when none is given).
    Chat(chat::ChatArgs),
    /// Complete one prompt.
    Run(run::RunArgs),
    /// Show a model file's (GGUF or `.lantern`) metadata, tensors and bytes.
    Inspect(inspect::InspectArgs),
    /// Convert a GGUF model into a `.lantern` container.
    Convert(convert::ConvertArgs),
    /// Measure model files (`report compressibility`).
    Report(report::ReportArgs),
    /// Perplexity of a text, as llama-perplexity measures it.
    Ppl(ppl::PplArgs),
    /// Calibrate FFN activation thresholds (activation sparsity) on a text.
    Calibrate(calibrate::CalibrateArgs),
    /// Prompt and generation speed, as llama-bench measures it.
    Bench(bench::BenchArgs),
    /// Perplexity and decode speed against FFN activation sparsity, per criterion and target.
    SparsitySweep(sparsity_sweep::SweepArgs),
    /// Print the token ids of a text.
    Tokenize(tokenize::TokenizeArgs),
    /// Greedy-decode with each step's top logits, for token-by-token comparisons.
    Trace(trace::TraceArgs),
    /// Download and verify a known model (or calibration text) into the cache; prints its
    /// path.
    Fetch {
        /// Which file: smollm2-135m-instruct-q4_1 (the default model) or calibration-wiki.
        #[arg(default_value = fetch::DEFAULT_MODEL.name)]
        model: String,
        /// Cache root. By default, `$LANTERN_CACHE`, `$XDG_CACHE_HOME/lantern` or `~/.cache/lantern`.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// No progress output.
        #[arg(short, long)]
        quiet: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LANTERN_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Chat(args) => chat::run(args),
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Report(args) => report::run(args),
        Command::Ppl(args) => ppl::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::SparsitySweep(args) => sparsity_sweep::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Trace(args) => trace::run(args),
        Command::Fetch { model, cache_dir, quiet } => {
            let model = fetch::find(&model).ok_or_else(|| {
                let known: Vec<_> = fetch::PINNED_FILES.iter().map(|m| m.name).collect();
                anyhow::anyhow!("unknown file {model:?}; known: {}", known.join(", "))
            })?;
            let cache = cache_dir.unwrap_or_else(fetch::default_cache_dir);
            println!("{}", fetch::ensure(model, &cache, quiet)?.display());
            Ok(())
        }
    }
}
