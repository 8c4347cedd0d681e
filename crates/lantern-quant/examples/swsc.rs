//! SWSC on a real model's matrices: for blocks 0 and 15's `attn_q`, `attn_output`, `ffn_up`
//! and `ffn_down`, the bytes and the relative Frobenius error ‖W − Ŵ‖/‖W‖ of a few cluster
//! counts k and residual ranks r, beside the file's tensor and plain nearest rounding to
//! smaller formats. W is the file's tensor dequantized; factors are stored in f16, plain
//! k-means (no calibration inputs), seed 0.
//!
//! Run with: `cargo run --release -p lantern-quant --example swsc -- [model.gguf]`
//! (by default `~/.cache/lantern/models/SmolLM2-135M-Instruct.Q4_1.gguf`).

use std::path::PathBuf;
use std::time::Instant;

use lantern_core::{GgmlType, QTensor};
use lantern_io::{GgufModel, ModelSource};
use lantern_quant::Swsc;

const MATRICES: [&str; 4] = ["attn_q", "attn_output", "ffn_up", "ffn_down"];
const BLOCKS: [usize; 2] = [0, 15];
const RANKS: [usize; 4] = [0, 8, 32, 64];
/// Formats to compare with, rounded to nearest from the file's values.
const PLAIN: [GgmlType; 2] = [GgmlType::Q4_0, GgmlType::Q3_0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args_os().nth(1) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(std::env::var_os("HOME").ok_or("no HOME: pass a model path")?)
            .join(".cache/lantern/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    let model = GgufModel::open(ModelSource::read(&path)?)?;
    println!("{}", path.display());
    println!(
        "{:<22} {:>9} {:>5} {:>3} {:>9} {:>7} {:>8} {:>5} {:>8} {:>9}",
        "tensor", "out×in", "k", "r", "bytes", "×file", "rel err", "iters", "factor s", "matvec µs"
    );
    for block in BLOCKS {
        for matrix in MATRICES {
            let name = format!("blk.{block}.{matrix}.weight");
            measure(&name, &model.tensor(&name)?)?;
        }
    }
    Ok(())
}

fn measure(name: &str, tensor: &QTensor) -> Result<(), Box<dyn std::error::Error>> {
    let (rows, cols) = (tensor.n_rows(), tensor.row_len());
    let w = tensor.dequantize()?;
    let file_bytes = tensor.bytes().len();
    let shape = format!("{rows}×{cols}");
    let norm = frobenius(w.iter().copied());
    let row = |what: String, bytes: usize, error: f64, rest: String| {
        println!(
            "{name:<22} {shape:>9} {what} {bytes:>9} {:>7.3} {error:>8.4} {rest}",
            bytes as f64 / file_bytes as f64
        );
    };
    row(format!("{:>9}", format!("{:?}", tensor.ty())), file_bytes, 0.0, String::new());
    for ty in PLAIN {
        let plain = tensor.requantize(ty)?;
        let error = frobenius(plain.dequantize()?.iter().zip(&w).map(|(a, b)| a - b)) / norm;
        row(format!("{:>9}", format!("{ty:?}")), plain.bytes().len(), error, String::new());
    }
    let x: Vec<f32> = (0..cols).map(|j| ((j * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    for k in [cols / 8, cols / 4, cols / 2] {
        for r in RANKS {
            let start = Instant::now();
            let swsc = Swsc::builder(k, r).factor(&w, rows, cols)?;
            let seconds = start.elapsed().as_secs_f64();
            let dense = swsc.to_dense();
            let error = frobenius(w.iter().zip(&dense).map(|(a, b)| a - b)) / norm;
            let mut y = vec![0.0; rows];
            let reps = 200;
            let start = Instant::now();
            for _ in 0..reps {
                swsc.matvec(&x, &mut y)?;
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(reps);
            let rest = format!("{:>5} {seconds:>8.2} {micros:>9.1}", swsc.iterations());
            row(format!("{k:>5} {r:>3}"), swsc.bytes(), error, rest);
        }
    }
    Ok(())
}

fn frobenius(values: impl Iterator<Item = f32>) -> f64 {
    values.map(|v| f64::from(v).powi(2)).sum::<f64>().sqrt()
}
