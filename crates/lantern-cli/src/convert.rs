//! `lantern convert`: a GGUF model into a `.lantern` container (docs/format.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lantern::io::container::{write_container_with, WriteOptions};
use lantern::io::{GgufModel, ModelSource};

use crate::progress;

/// Convert a GGUF model into a `.lantern` container.
#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// GGUF model file.
    model: PathBuf,
    /// Output file; written atomically (a temporary file, flushed, then renamed).
    #[arg(short, long)]
    output: PathBuf,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// Store every chunk raw, as in the GGUF file. By default a chunk is LZ4-compressed when
    /// that makes it smaller, and a tensor laid out as byte planes when that makes it at
    /// least 1% smaller.
    #[arg(long)]
    no_compress: bool,
    /// Store these FFN thresholds (a file from `lantern calibrate`) in the container, as
    /// the model's default activation sparsity.
    #[arg(long, value_name = "FILE")]
    thresholds: Option<PathBuf>,
}

pub(crate) fn run(args: ConvertArgs) -> Result<()> {
    let source = ModelSource::read(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let model =
        GgufModel::open(source).with_context(|| format!("parsing {}", args.model.display()))?;
    let total = model.gguf().tensors().iter().map(|t| t.size as u64).sum();
    let bar = progress::bytes(total, "converting", args.quiet);
    let start = Instant::now();
    let metadata = match &args.thresholds {
        Some(path) => crate::thresholds::read(path)?.to_metadata(),
        None => Vec::new(),
    };
    let options = WriteOptions { compress: !args.no_compress, metadata };
    let stats = write_container_with(&model, &args.output, options, |done, _| {
        bar.set_position(done);
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} ({} bytes) in {:.2} s",
        args.output.display(),
        stats.file_bytes,
        start.elapsed().as_secs_f64()
    );
    println!(
        "{:<8} {:>12} {:>12} {:>7} {:>13}",
        "type", "raw bytes", "stored", "ratio", "byte planes"
    );
    for (ty, raw, stored, planes) in &stats.by_type {
        let ratio = *raw as f64 / (*stored).max(1) as f64;
        let ty = format!("{ty:?}");
        println!("{ty:<8} {raw:>12} {stored:>12} {ratio:>7.3} {planes:>6} tensors");
    }
    Ok(())
}
