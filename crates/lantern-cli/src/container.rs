//! Converting a GGUF model into a `.lantern` container (docs/format.md): the options every
//! `convert` takes ([`ContainerArgs`]) and the writing, with a summary of what was stored.
//!
//! The output is an [`AtomicFile`] created before anything else, so a destination it
//! refuses (a directory, a device such as `/dev/null`) fails at once, not after minutes of
//! calibration; the file is committed only when the whole container is written.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lantern_core::QTensor;
use lantern_io::container::{write_container_into, WriteOptions};
use lantern_io::{AtomicFile, GgufModel, ModelSource, Value};

use crate::progress;

/// What every conversion takes: the model, the output and how to store it.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    /// GGUF model file.
    pub model: PathBuf,
    /// Output file; written atomically (a temporary file, flushed, then renamed). A
    /// directory or a device is refused before any work.
    #[arg(short, long)]
    pub output: PathBuf,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// Store every chunk raw, as in the GGUF file. By default a chunk is LZ4-compressed when
    /// that makes it smaller, and a tensor laid out as byte planes when that makes it at
    /// least 1% smaller.
    #[arg(long)]
    pub no_compress: bool,
    /// Store these FFN thresholds (a file from `lantern calibrate`) in the container, as
    /// the model's default activation sparsity.
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
}

/// A conversion under way: the output created, the model read.
#[derive(Debug)]
pub struct Conversion {
    /// The GGUF model.
    pub model: GgufModel,
    /// Metadata the container adds to the model's (the thresholds, if any).
    pub metadata: Vec<(String, Value)>,
    output: AtomicFile,
    path: PathBuf,
    compress: bool,
    quiet: bool,
    start: Instant,
}

impl ContainerArgs {
    /// Creates the output (refusing a directory or device before any work), reads the model
    /// and the thresholds.
    ///
    /// # Errors
    /// When the output cannot be created there, the model cannot be read or parsed, or
    /// the thresholds file cannot be read.
    pub fn open(&self) -> Result<Conversion> {
        let output = AtomicFile::create(&self.output)?;
        let source = ModelSource::read(&self.model)
            .with_context(|| format!("reading {}", self.model.display()))?;
        let model =
            GgufModel::open(source).with_context(|| format!("parsing {}", self.model.display()))?;
        let start = Instant::now();
        let metadata = match &self.thresholds {
            Some(path) => crate::thresholds::read(path)?.to_metadata(),
            None => Vec::new(),
        };
        Ok(Conversion {
            model,
            metadata,
            output,
            path: self.output.clone(),
            compress: !self.no_compress,
            quiet: self.quiet,
            start,
        })
    }
}

impl Conversion {
    /// Writes the container with `replacements` (tensors in place of the model's of the
    /// same name) and `substitutes` (tensors stored instead of one of the model's), commits
    /// it, and prints what was stored, by type.
    ///
    /// # Errors
    /// As [`write_container_into`].
    pub fn write(
        self,
        replacements: Vec<(String, QTensor)>,
        substitutes: Vec<(String, Vec<(String, QTensor)>)>,
    ) -> Result<()> {
        let Self { model, metadata, output, path, compress, quiet, start } = self;
        let options = WriteOptions { compress, metadata, replacements, substitutes };
        let bar = progress::bytes(0, "converting", quiet);
        let stats = write_container_into(&model, output, options, |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .with_context(|| format!("writing {}", path.display()))?;
        bar.finish_and_clear();
        println!(
            "wrote {} ({} bytes) in {:.2} s",
            path.display(),
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
}
