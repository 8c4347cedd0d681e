//! `lantern inspect`: metadata, tensors and bytes by type of a GGUF file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lantern::io::{GgufModel, ModelSource, Value};

/// Show what a model file holds.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// GGUF model file.
    model: PathBuf,
    /// List every tensor.
    #[arg(long)]
    tensors: bool,
}

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    let source = ModelSource::read(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let file =
        GgufModel::open(source).with_context(|| format!("parsing {}", args.model.display()))?;
    let gguf = file.gguf();
    println!(
        "GGUF v{}, {} metadata keys, {} tensors, alignment {}, data at offset {}",
        gguf.version(),
        gguf.metadata().len(),
        gguf.tensors().len(),
        gguf.alignment(),
        gguf.data_offset()
    );
    println!("\nmetadata:");
    for (key, value) in gguf.metadata().iter() {
        println!("  {key} = {}", summary(value));
    }
    println!("\nbytes by type:");
    for (ty, count, bytes) in file.bytes_by_type() {
        println!(
            "  {:<8} {count:>5} tensors {:>12} bytes ({:.1} MB)",
            format!("{ty:?}"),
            bytes,
            bytes as f64 / 1e6
        );
    }
    if args.tensors {
        println!("\ntensors:");
        for t in gguf.tensors() {
            println!(
                "  {:<32} {:<6} {:?} @ {} ({} bytes)",
                t.name,
                format!("{:?}", t.ty),
                t.dims,
                t.offset,
                t.size
            );
        }
    }
    Ok(())
}

/// A value on one line; long strings and arrays are abbreviated.
fn summary(value: &Value) -> String {
    match value {
        Value::String(s) if s.len() > 80 => {
            format!("{:?}… ({} bytes)", s.chars().take(60).collect::<String>(), s.len())
        }
        Value::Array(items) if items.len() > 8 => {
            let head: Vec<String> = items.iter().take(4).map(summary).collect();
            format!("[{}, …] ({} items)", head.join(", "), items.len())
        }
        Value::Array(items) => {
            format!("[{}]", items.iter().map(summary).collect::<Vec<_>>().join(", "))
        }
        Value::String(s) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}
