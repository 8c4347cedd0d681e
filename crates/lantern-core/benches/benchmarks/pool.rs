//! Fork/join cost of the worker pool: a broadcast of an empty job, as a decode step issues
//! about two hundred times per token.

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion};
use lantern_core::ThreadPool;

fn broadcast(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, 2, 4].into_iter().filter(|&t| t <= cpus.max(2)) {
        let pool = ThreadPool::new(threads).unwrap();
        group.bench_function(BenchmarkId::new("broadcast", threads), |b| {
            b.iter(|| {
                pool.broadcast(&|i| {
                    black_box(i);
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, broadcast);
