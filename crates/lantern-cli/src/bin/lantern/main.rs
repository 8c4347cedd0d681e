//! `lantern`: chat with, run, inspect, convert, benchmark and score quantized LLMs.
//!
//! Run with: `cargo run --release -p lantern-cli -- <command>` (or `cargo chat`). The
//! research and offline commands (compression, sweeps, reports, traces) are
//! `lantern-lab`'s.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use lantern_cli::fetch;

mod bench;
mod calibrate;
mod chat;
mod convert;
mod inspect;
mod ppl;
mod run;
mod tokenize;
mod tune;

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
    /// Perplexity of a text, as llama-perplexity measures it.
    Ppl(ppl::PplArgs),
    /// Calibrate FFN activation thresholds (activation sparsity) on a text.
    Calibrate(calibrate::CalibrateArgs),
    /// Prompt and generation speed, as llama-bench measures it.
    Bench(bench::BenchArgs),
    /// Print the token ids of a text.
    Tokenize(tokenize::TokenizeArgs),
    /// Train a LoRA adapter on a text, on this device (a build with the `tune` feature).
    Tune(tune::TuneArgs),
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

fn main() -> ExitCode {
    lantern_cli::init_tracing();
    lantern_cli::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Chat(args) => chat::run(args),
        Command::Run(args) => run::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Ppl(args) => ppl::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Tokenize(args) => tokenize::run(args),
        Command::Tune(args) => tune::run(args),
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
