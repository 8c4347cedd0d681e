//! Matrix kernels on SmolLM2-135M's shapes, per weight format and kernel path (and, where
//! a path has one, its interleaved layout): one input (a decode step) and a batch of 64
//! (prefill); then a decode step's matrices from DRAM.
//!
//! Throughput is weight bytes per second per input: decode reads every weight once per
//! token, so for one input this is the figure to hold against memory bandwidth.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for, GROUP_ROWS};
use lantern_core::kernels::{best_isa, matmul_fn_for, reads_q8k, Input, Isa};
use lantern_core::{
    quantize_activation, quantize_activation_k, quantize_row, BlockQ8, BlockQ8K, GgmlType, QK8,
    QK_K,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::random;

/// (rows, row length): FFN gate/up, FFN down, output layer.
const SHAPES: [(usize, usize); 3] = [(1536, 576), (576, 1536), (49152, 576)];
/// The shape whose rows are whole K-quant super-blocks (256 values): FFN down.
const K_SHAPES: [(usize, usize); 1] = [(576, 1536)];
/// Inputs per call: a decode step and a prefill batch.
const BATCHES: [usize; 2] = [1, 64];

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|isa| isa.is_available()).collect();
    let types = [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0];
    let more = [GgmlType::Q3_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS];
    for ty in types.into_iter().chain(more) {
        let shapes = if reads_q8k(ty) { &K_SHAPES[..] } else { &SHAPES[..] };
        for &(rows, len) in shapes {
            let bytes = weights(ty, rows, len);
            let row_bytes = ty.row_bytes(len).unwrap();
            let mut groups = vec![0u8; rows.div_ceil(GROUP_ROWS) * group_bytes(ty, row_bytes)];
            let interleaved = interleave(ty, &bytes, row_bytes, &mut groups);
            for n in BATCHES {
                if n > 1 && rows > 4096 {
                    continue; // the output layer runs once per sequence, not per batch
                }
                let x = random(len * n, 1.0, 2);
                let mut xq = vec![BlockQ8::default(); len * n / QK8];
                quantize_activation(&x, &mut xq);
                // K-quant rows read 256-value blocks as well.
                let mut xqk =
                    vec![BlockQ8K::default(); if reads_q8k(ty) { len * n / QK_K } else { 0 }];
                if !xqk.is_empty() {
                    quantize_activation_k(&x, &mut xqk);
                }
                let mut out = vec![0.0f32; rows * n];
                group.throughput(Throughput::Bytes((bytes.len() * n) as u64));
                for &isa in &isas {
                    let Some(kernel) = matmul_fn_for(ty, isa) else { continue };
                    if isa == Isa::Scalar && n > 1 {
                        continue; // per-row scalar kernels gain nothing from a batch
                    }
                    let id = BenchmarkId::new(format!("{ty:?}/{rows}x{len}/n{n}"), isa);
                    group.bench_function(id, |b| {
                        b.iter(|| {
                            let input = Input::new(black_box(&x), &xq, n).with_q8k(&xqk);
                            kernel(&bytes, row_bytes, input, &mut out);
                            black_box(&out);
                        })
                    });
                    let Some(kernel) = interleaved_fn_for(ty, isa).filter(|_| interleaved) else {
                        continue;
                    };
                    let id = BenchmarkId::new(
                        format!("{ty:?}/{rows}x{len}/n{n}"),
                        format!("{isa}/interleaved"),
                    );
                    group.bench_function(id, |b| {
                        b.iter(|| {
                            let input = Input::new(black_box(&x), &xq, n).with_q8k(&xqk);
                            kernel(&groups, row_bytes, input, &mut out);
                            black_box(&out);
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

/// `rows` rows of `len` values of `ty`: random values quantized, or for Q3_K, Q6_K, IQ4_NL
/// and IQ4_XS, which lantern does not quantize to, random blocks with a sane scale `d`.
fn weights(ty: GgmlType, rows: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
    // Where each block keeps its f16 `d`.
    let d_at = match ty {
        GgmlType::Q3_K | GgmlType::Q6_K => Some(ty.type_size() - 2),
        GgmlType::IQ4_NL | GgmlType::IQ4_XS => Some(0),
        _ => None,
    };
    if let Some(at) = d_at {
        StdRng::seed_from_u64(1).fill(&mut bytes[..]);
        let d = half::f16::from_f32(0.05).to_le_bytes();
        for block in bytes.chunks_exact_mut(ty.type_size()) {
            block[at..at + 2].copy_from_slice(&d);
        }
    } else {
        quantize_row(ty, &random(rows * len, 0.1, 1), &mut bytes).unwrap();
    }
    bytes
}

/// A decode step's view of memory: one input against 120 FFN matrices in turn, 60 MB of
/// Q4_0 (FFN gate/up) or 106 MB of Q6_K (FFN down) that no cache holds, so each call starts
/// cold. Small matrices from DRAM are what a token costs; a single hot matrix flatters every
/// kernel.
fn matmul_cold(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_cold");
    let count = 120;
    for (ty, rows, len) in [(GgmlType::Q4_0, 1536, 576), (GgmlType::Q6_K, 576, 1536)] {
        let row_bytes = ty.row_bytes(len).unwrap();
        let bytes = weights(ty, rows, len);
        let mut groups = vec![0u8; rows.div_ceil(GROUP_ROWS) * group_bytes(ty, row_bytes)];
        assert!(interleave(ty, &bytes, row_bytes, &mut groups));
        let x = random(len, 1.0, 2);
        let mut xq = vec![BlockQ8::default(); len / QK8];
        quantize_activation(&x, &mut xq);
        let mut xqk = vec![BlockQ8K::default(); len / QK_K];
        quantize_activation_k(&x, &mut xqk);
        let mut out = vec![0.0f32; rows];
        group.throughput(Throughput::Bytes((bytes.len() * count) as u64));
        let isa = best_isa();
        let layouts = [
            ("file", matmul_fn_for(ty, isa), bytes),
            ("interleaved", interleaved_fn_for(ty, isa), groups),
        ];
        for (layout, kernel, matrix) in layouts {
            let Some(kernel) = kernel else { continue };
            let matrices = vec![matrix; count];
            let id =
                BenchmarkId::new(format!("{ty:?}/{rows}x{len}x{count}"), format!("{isa}/{layout}"));
            group.bench_function(id, |b| {
                b.iter(|| {
                    for m in &matrices {
                        let input = Input::new(black_box(&x), &xq, 1).with_q8k(&xqk);
                        kernel(m, row_bytes, input, &mut out);
                        black_box(&out);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, matmul, matmul_cold);
