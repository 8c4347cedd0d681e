//! `lantern-lab report compressibility`: how far lossless compression can shrink a model's
//! tensors, per type and layout: LZ4 in the container's 1 MiB chunks (ratio and
//! decompression speed), and the order-0 entropy of the bytes, the bound of a byte-wise
//! entropy coder. `lantern-lab report frontier`: the size/quality plot of measured variants.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lantern_core::GgmlType;
use lantern_io::container::{to_planes, CHUNK_BYTES};
use lantern_io::{GgufModel, ModelSource};

use crate::frontier_plot;

/// Measurements of model files.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(subcommand)]
    what: Report,
}

#[derive(Debug, Subcommand)]
enum Report {
    /// Lossless compressibility of each tensor type, as stored and as byte planes.
    Compressibility {
        /// GGUF model files.
        #[arg(required = true)]
        models: Vec<PathBuf>,
    },
    /// Perplexity against weight bytes, as a PNG: a line per series, each point labelled.
    Frontier {
        /// Tab-separated lines: series, label, MB, perplexity (`#` starts a comment), as
        /// benches/compression_frontier.sh writes them.
        table: PathBuf,
        /// The PNG to write (atomically).
        #[arg(short, long)]
        output: PathBuf,
        /// The plot's title.
        #[arg(long, default_value = "Weight bytes against perplexity")]
        title: String,
    },
}

pub(crate) fn run(args: ReportArgs) -> Result<()> {
    let models = match args.what {
        Report::Compressibility { models } => models,
        Report::Frontier { table, output, title } => {
            let text = std::fs::read_to_string(&table)
                .with_context(|| format!("reading {}", table.display()))?;
            let points = frontier_plot::parse(&text)?;
            return frontier_plot::draw(&output, &title, &points);
        }
    };
    println!(
        "| file | type | MB | LZ4 as stored | LZ4 byte planes | LZ4 decode GB/s | \
         entropy bound | per-position entropy bound |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for path in models {
        let source =
            ModelSource::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let model =
            GgufModel::open(source).with_context(|| format!("parsing {}", path.display()))?;
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into());
        for (ty, _, _) in model.bytes_by_type() {
            let mut bytes = Vec::new();
            for info in model.gguf().tensors().iter().filter(|t| t.ty == ty) {
                bytes.extend_from_slice(model.tensor(&info.name)?.bytes());
            }
            let stored = lz4(&bytes);
            let planes = lz4(&planes_of(ty, &bytes));
            println!(
                "| {name} | {ty:?} | {:.1} | {:.3} | {:.3} | {:.2} | {:.3} | {:.3} |",
                bytes.len() as f64 / 1e6,
                stored.ratio,
                planes.ratio,
                stored.decode_gbps,
                8.0 / entropy_bits(&bytes, 1).max(1e-9),
                8.0 / entropy_bits(&bytes, ty.type_size()).max(1e-9),
            );
        }
    }
    Ok(())
}

/// `bytes` of type `ty` as byte planes of its blocks (tensor by tensor would give the same
/// planes up to where the tensors meet).
fn planes_of(ty: GgmlType, bytes: &[u8]) -> Vec<u8> {
    bytes
        .chunks(CHUNK_BYTES - CHUNK_BYTES % ty.type_size())
        .flat_map(|c| to_planes(c, ty.type_size()))
        .collect()
}

/// LZ4 in the container's chunks: the size ratio (a chunk LZ4 does not shrink stays raw)
/// and the decompression speed.
struct Lz4 {
    ratio: f64,
    decode_gbps: f64,
}

fn lz4(data: &[u8]) -> Lz4 {
    let chunks: Vec<(Vec<u8>, usize)> =
        data.chunks(CHUNK_BYTES).map(|c| (lz4_flex::compress(c), c.len())).collect();
    let stored: usize = chunks.iter().map(|(z, raw)| z.len().min(*raw)).sum();
    let mut out = vec![0u8; CHUNK_BYTES];
    let rounds = 3;
    let start = Instant::now();
    for _ in 0..rounds {
        for (z, raw) in &chunks {
            let _ = lz4_flex::decompress_into(z, &mut out[..*raw]);
        }
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    Lz4 {
        ratio: data.len() as f64 / stored.max(1) as f64,
        decode_gbps: (rounds * data.len()) as f64 / seconds / 1e9,
    }
}

/// Order-0 entropy in bits per byte, with one byte distribution per position within
/// blocks of `block_bytes` (1: one distribution for all bytes): the bound of an entropy
/// coder that models each position on its own.
fn entropy_bits(data: &[u8], block_bytes: usize) -> f64 {
    let block_bytes = block_bytes.max(1);
    let mut counts = vec![[0u64; 256]; block_bytes];
    for (i, &b) in data.iter().enumerate() {
        counts[i % block_bytes][usize::from(b)] += 1;
    }
    let n = data.len().max(1) as f64;
    let mut bits = 0.0;
    for position in &counts {
        let total: u64 = position.iter().sum();
        for &c in position.iter().filter(|&&c| c > 0) {
            let p = c as f64 / total as f64;
            bits -= c as f64 * p.log2();
        }
    }
    bits / n
}
