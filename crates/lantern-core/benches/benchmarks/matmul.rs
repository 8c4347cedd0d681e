//! Matrix kernels on SmolLM2-135M's shapes, per weight format and kernel path (and, where
//! a path has one, its interleaved layout): one input (a decode step) and a batch of 64
//! (prefill); then a decode step's matrices from DRAM.
//!
//! Throughput is weight bytes per second per input: decode reads every weight once per
//! token, so for one input this is the figure to hold against memory bandwidth.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for, GROUP_ROWS};
use lantern_core::kernels::{best_isa, matmul_fn_for, Input, Isa};
use lantern_core::{quantize_activation, quantize_row, BlockQ8, GgmlType, QK8};

use super::random;

/// (rows, row length): FFN gate/up, FFN down, output layer.
const SHAPES: [(usize, usize); 3] = [(1536, 576), (576, 1536), (49152, 576)];
/// Inputs per call: a decode step and a prefill batch.
const BATCHES: [usize; 2] = [1, 64];

fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|isa| isa.is_available()).collect();
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0] {
        for (rows, len) in SHAPES {
            let w = random(rows * len, 0.1, 1);
            let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
            quantize_row(ty, &w, &mut bytes).unwrap();
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
                            kernel(&bytes, row_bytes, Input::new(black_box(&x), &xq, n), &mut out);
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
                            kernel(&groups, row_bytes, Input::new(black_box(&x), &xq, n), &mut out);
                            black_box(&out);
                        })
                    });
                }
            }
        }
    }
    group.finish();
}

/// A decode step's view of memory: one input against 120 FFN matrices in turn, 60 MB of
/// Q4_0 that no cache holds, so each call starts cold. Small matrices from DRAM are what a
/// token costs; a single hot matrix flatters every kernel.
fn matmul_cold(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_cold");
    let (ty, rows, len, count) = (GgmlType::Q4_0, 1536, 576, 120);
    let row_bytes = ty.row_bytes(len).unwrap();
    let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
    quantize_row(ty, &random(rows * len, 0.1, 1), &mut bytes).unwrap();
    let mut groups = vec![0u8; rows.div_ceil(GROUP_ROWS) * group_bytes(ty, row_bytes)];
    assert!(interleave(ty, &bytes, row_bytes, &mut groups));
    let x = random(len, 1.0, 2);
    let mut xq = vec![BlockQ8::default(); len / QK8];
    quantize_activation(&x, &mut xq);
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
        group.bench_function(
            BenchmarkId::new(format!("{ty:?}/{rows}x{len}x{count}"), format!("{isa}/{layout}")),
            |b| {
                b.iter(|| {
                    for m in &matrices {
                        kernel(m, row_bytes, Input::new(black_box(&x), &xq, 1), &mut out);
                        black_box(&out);
                    }
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, matmul, matmul_cold);
