//! `lantern inspect`: metadata, tensors and bytes by type of a GGUF file or a `.lantern`
//! container.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use lantern_io::container::{ContainerModel, MAGIC};
use lantern_io::{GgufModel, Metadata, ModelSource, Value};

/// Show what a model file holds.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// GGUF model file or `.lantern` container.
    model: PathBuf,
    /// List every tensor.
    #[arg(long)]
    tensors: bool,
}

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    let source = ModelSource::read(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    if source.bytes().starts_with(&MAGIC) {
        let model = ContainerModel::open(source)
            .with_context(|| format!("parsing {}", args.model.display()))?;
        return container(&model, args.tensors);
    }
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
    print_metadata(gguf.metadata());
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

/// What a container holds: metadata, and per tensor its chunks, raw and stored bytes.
fn container(model: &ContainerModel, tensors: bool) -> Result<()> {
    let c = model.container();
    println!(
        ".lantern container, {} metadata keys, {} tensors in {} chunks, alignment {}",
        c.metadata().len(),
        c.tensors().len(),
        c.chunks().len(),
        c.alignment()
    );
    print_metadata(c.metadata());
    let stored = |t: &lantern_io::container::TensorEntry| -> (u64, u64) {
        let chunks = &c.chunks()[t.chunks.clone()];
        (chunks.iter().map(|k| k.raw_bytes).sum(), chunks.iter().map(|k| k.stored_bytes).sum())
    };
    let (raw, kept): (u64, u64) =
        c.tensors().iter().map(stored).fold((0, 0), |(a, b), (r, s)| (a + r, b + s));
    println!("\ntensor bytes: {raw} raw, {kept} stored");
    if tensors {
        println!("\ntensors:");
        for t in c.tensors() {
            let (raw, kept) = stored(t);
            let layer = t.layer.map_or_else(|| "-".to_owned(), |l| l.to_string());
            println!(
                "  {:<32} {:<6} {:?} layer {layer}, {} chunks, {raw} bytes stored as {kept}",
                t.name,
                format!("{:?}", t.ty),
                t.dims,
                t.chunks.len()
            );
        }
    }
    Ok(())
}

fn print_metadata(metadata: &Metadata) {
    println!("\nmetadata:");
    for (key, value) in metadata.iter() {
        println!("  {key} = {}", summary(value));
    }
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
