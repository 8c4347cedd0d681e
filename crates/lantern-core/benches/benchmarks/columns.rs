//! The FFN down projection of SmolLM2-135M (576 rows of 1536 Q4_1 values) against one
//! input whose values are zero with a given share, as activation sparsity leaves it: the
//! file layout's kernel, which reads every byte whatever the zeros, against the
//! column-major copy, which reads only the non-zero inputs' columns.
//!
//! Two views of memory: `columns_cold`, a decode step's, as `matmul_cold`: 120 matrices in
//! turn, 66 MB that no cache holds; and `columns_hot`, one matrix that stays in L2, as on a
//! CPU whose cache holds the model. Throughput is the file layout's bytes per second, so
//! the two layouts' figures compare as speeds.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use lantern_core::kernels::{best_isa, Input};
use lantern_core::{
    quantize_activation, quantize_row, BlockQ8, ColumnMajor, GgmlType, QTensor, TensorBytes, QK8,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::random;

const ROWS: usize = 576;
const LEN: usize = 1536;

fn columns(c: &mut Criterion) {
    run(c, "columns_cold", 120);
    run(c, "columns_hot", 1);
}

/// The two layouts over `count` matrices in turn.
fn run(c: &mut Criterion, group: &str, count: usize) {
    let mut group = c.benchmark_group(group);
    let ty = GgmlType::Q4_1;
    let matrices: Vec<QTensor> = (0..count)
        .map(|i| {
            let mut bytes = vec![0u8; ty.tensor_bytes(&[LEN, ROWS]).unwrap()];
            quantize_row(ty, &random(ROWS * LEN, 0.1, i as u64), &mut bytes).unwrap();
            QTensor::new(ty, &[LEN, ROWS], TensorBytes::from_vec(bytes)).unwrap()
        })
        .collect();
    let Some(copies) = matrices.iter().map(ColumnMajor::new).collect::<Option<Vec<_>>>() else {
        return; // this CPU's path has no column kernel
    };
    group.throughput(Throughput::Bytes((matrices[0].bytes().len() * count) as u64));
    let isa = best_isa();
    for sparsity in [0.0, 0.3, 0.5, 0.7] {
        let mut rng = StdRng::seed_from_u64(3);
        let x: Vec<f32> = random(LEN, 1.0, 2)
            .into_iter()
            .map(|v| if rng.random_bool(sparsity) { 0.0 } else { v })
            .collect();
        let mut xq = vec![BlockQ8::default(); LEN / QK8];
        quantize_activation(&x, &mut xq);
        let mut out = vec![0.0f32; ROWS];
        let name = format!("Q4_1/{ROWS}x{LEN}x{count}/zero{sparsity}");
        group.bench_function(BenchmarkId::new(&name, format!("{isa}/file")), |b| {
            b.iter(|| {
                for m in &matrices {
                    m.matmul(0..ROWS, Input::new(black_box(&x), &xq, 1), &mut out).unwrap();
                    black_box(&out);
                }
            })
        });
        group.bench_function(BenchmarkId::new(&name, format!("{isa}/columns")), |b| {
            b.iter(|| {
                for m in &copies {
                    m.matvec(black_box(&xq), 0..ROWS, &mut out).unwrap();
                    black_box(&out);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, columns);
