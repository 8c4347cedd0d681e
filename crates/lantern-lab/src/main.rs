//! `lantern-lab`: lantern's research and offline commands, beside the `lantern` binary a
//! user installs: compressing a model (`convert` with re-quantization, per-layer policies,
//! pruning and SWSC factors), sparsity sweeps, reports and plots, token-by-token traces.
//!
//! It is a thin binary: the flags map onto lantern-quant (compression), the facade
//! (`lantern`) and the command-line plumbing it shares with `lantern` (`lantern_cli`: model
//! and text options, progress bars, measurements). It builds what `lantern` must not:
//! lantern-quant (candle, faer) and plotters.
//!
//! Run with: `cargo run --release -p lantern-lab -- <command>`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bandwidth;
mod convert;
mod frontier_plot;
mod plot;
mod policy;
mod random_model;
mod report;
mod requantize;
mod sparsity_sweep;
mod sweep_plot;
mod swsc_specs;
mod trace;
mod weight_types;

/// lantern's research and offline tools: compression, sparsity sweeps, reports, traces.
#[derive(Debug, Parser)]
#[command(name = "lantern-lab", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a GGUF model into a `.lantern` container, re-quantizing, pruning or factoring
    /// its matrices.
    Convert(convert::ConvertArgs),
    /// Perplexity and decode speed against FFN activation sparsity, per criterion and target.
    SparsitySweep(sparsity_sweep::SweepArgs),
    /// Measure model files (`report compressibility`) and plot measurements (`report
    /// frontier`).
    Report(report::ReportArgs),
    /// Greedy-decode with each step's top logits, for token-by-token comparisons.
    Trace(trace::TraceArgs),
    /// Write a random-weight F16 GGUF with a public model's shapes, for speed at scale.
    RandomModel(random_model::RandomModelArgs),
    /// Measure DRAM read bandwidth, and the decode speed it allows each model.
    Bandwidth(bandwidth::BandwidthArgs),
}

fn main() -> ExitCode {
    lantern_cli::init_tracing();
    lantern_cli::exit_code(run(Cli::parse()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::SparsitySweep(args) => sparsity_sweep::run(args),
        Command::Report(args) => report::run(args),
        Command::Trace(args) => trace::run(args),
        Command::RandomModel(args) => random_model::run(args),
        Command::Bandwidth(args) => bandwidth::run(args),
    }
}
