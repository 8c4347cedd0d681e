//! Matrix kernels on SmolLM2-135M's shapes, per weight format and kernel path: one input
//! (a decode step) and a batch of 64 (prefill).
//!
//! Throughput is weight bytes per second per input: decode reads every weight once per
//! token, so for one input this is the figure to hold against memory bandwidth.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
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
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, matmul);
