//! Matrix-vector products of SmolLM2-135M's shapes, per weight format and kernel path.
//!
//! Throughput is weight bytes per second: decode reads every weight once per token, so this
//! is the figure to hold against memory bandwidth.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lantern_core::kernels::{best_isa, dot_fn_for, Isa};
use lantern_core::{quantize_activation, quantize_row, BlockQ8, GgmlType, QK8};

use super::random;

/// (rows, row length): FFN gate/up, FFN down, output layer.
const SHAPES: [(usize, usize); 3] = [(1536, 576), (576, 1536), (49152, 576)];

fn matvec(c: &mut Criterion) {
    let mut group = c.benchmark_group("matvec");
    let mut isas = vec![Isa::Scalar];
    if best_isa() != Isa::Scalar {
        isas.push(best_isa());
    }
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        for (rows, len) in SHAPES {
            let w = random(rows * len, 0.1, 1);
            let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
            quantize_row(ty, &w, &mut bytes).unwrap();
            let x = random(len, 1.0, 2);
            let mut xq = vec![BlockQ8::default(); len / QK8];
            quantize_activation(&x, &mut xq);
            let row_bytes = ty.row_bytes(len).unwrap();
            let mut out = vec![0.0f32; rows];
            group.throughput(Throughput::Bytes(bytes.len() as u64));
            for &isa in &isas {
                let Some(dot) = dot_fn_for(ty, isa) else { continue };
                let id = BenchmarkId::new(format!("{ty:?}/{rows}x{len}"), isa);
                group.bench_function(id, |b| {
                    b.iter(|| {
                        for (o, row) in out.iter_mut().zip(bytes.chunks_exact(row_bytes)) {
                            *o = dot(row, black_box(&x), black_box(&xq));
                        }
                        black_box(&out);
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, matvec);
