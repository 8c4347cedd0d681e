//! Activation quantization, run once per input vector before its matrix products: to the
//! 32-value blocks of most formats and to the 256-value blocks of the K-quants.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lantern_core::{quantize_activation, quantize_activation_k, BlockQ8, BlockQ8K, QK8, QK_K};

use super::random;

fn quantize(c: &mut Criterion) {
    let mut group = c.benchmark_group("quantize_activation");
    for n in [576, 1536] {
        let x = random(n, 1.0, 3);
        let mut out = vec![BlockQ8::default(); n.div_ceil(QK8)];
        group.throughput(Throughput::Bytes((n * 4) as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| quantize_activation(black_box(&x), black_box(&mut out)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("quantize_activation_k");
    for n in [576, 1536] {
        let x = random(n, 1.0, 3);
        let mut out = vec![BlockQ8K::default(); n.div_ceil(QK_K)];
        group.throughput(Throughput::Bytes((n * 4) as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| quantize_activation_k(black_box(&x), black_box(&mut out)))
        });
    }
    group.finish();
}

criterion_group!(benches, quantize);
