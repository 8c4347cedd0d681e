//! `lantern-lab bandwidth`: this machine's DRAM read bandwidth, and the decode speed it
//! allows each model: the ceiling that a decode step, which reads every weight once, cannot
//! pass (bytes per token ÷ bandwidth).
//!
//! Threads read disjoint parts of a buffer far larger than any cache, summing its words so
//! that the reads cannot be skipped; the best of several passes counts. Bytes per token are
//! the model's block matrices and output head (the embedding when the head is tied), as the
//! file stores them: what a decode step reads at a short context.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lantern_io::{GgufModel, ModelSource};

#[derive(Debug, Args)]
pub(crate) struct BandwidthArgs {
    /// GGUF models whose decode ceiling to print.
    models: Vec<PathBuf>,
    /// Thread counts to measure, comma-separated.
    #[arg(short, long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Buffer size in MiB: well beyond the last-level cache.
    #[arg(long, default_value_t = 2048)]
    mib: usize,
    /// Passes over the buffer per thread count; the fastest counts.
    #[arg(long, default_value_t = 5)]
    passes: usize,
}

pub(crate) fn run(args: BandwidthArgs) -> Result<()> {
    let words = args.mib << 17;
    // Written once, so that every page is backed by memory before the timed reads.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let models = args
        .models
        .iter()
        .map(|path| Ok((path, bytes_per_token(path)?)))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "| threads | read bandwidth |{}",
        models.iter().map(|(p, _)| format!(" {} |", name(p))).collect::<String>()
    );
    println!("|---:|---:|{}", "---:|".repeat(models.len()));
    for &threads in &args.threads {
        let best =
            (0..args.passes).map(|_| read_pass(&buffer, threads.max(1))).fold(0.0f64, f64::max);
        let ceilings: String = models
            .iter()
            .map(|(_, bytes)| format!(" {:.1} tok/s |", best / *bytes as f64))
            .collect();
        println!("| {threads} | {:.1} GB/s |{ceilings}", best / 1e9);
    }
    for (path, bytes) in &models {
        println!("{}: {:.3} GB of weights per token", name(path), *bytes as f64 / 1e9);
    }
    Ok(())
}

/// One pass over `buffer` by `threads` threads, each its own part: bytes per second.
fn read_pass(buffer: &[u64], threads: usize) -> f64 {
    let part = buffer.len().div_ceil(threads);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in buffer.chunks(part) {
            scope.spawn(move || black_box(sum(part)));
        }
    });
    std::mem::size_of_val(buffer) as f64 / start.elapsed().as_secs_f64()
}

/// The wrapping sum of `words`, in eight independent lanes so that the adds keep up with
/// the loads.
fn sum(words: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    for chunk in words.chunks_exact(8) {
        for (lane, &w) in lanes.iter_mut().zip(chunk) {
            *lane = lane.wrapping_add(w);
        }
    }
    lanes.iter().fold(0, |a, &b| a.wrapping_add(b))
}

/// The bytes of the weights a decode step reads: every block's matrices and the output head.
fn bytes_per_token(path: &std::path::Path) -> Result<usize> {
    lantern_cli::mapped::explain_faults();
    // SAFETY: only the header is read, while nothing else writes model files here.
    let source = unsafe { ModelSource::mmap(path) };
    let model = GgufModel::open(source.with_context(|| format!("mapping {}", path.display()))?)
        .with_context(|| format!("reading {}", path.display()))?;
    let tensors = model.gguf().tensors();
    let matrices: usize = tensors
        .iter()
        .filter(|t| t.name.starts_with("blk.") && t.dims.len() == 2)
        .map(|t| t.size)
        .sum();
    let head = ["output.weight", "token_embd.weight"]
        .iter()
        .find_map(|name| model.gguf().tensor_info(name))
        .map_or(0, |t| t.size);
    Ok(matrices + head)
}

fn name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into())
}
