//! lantern-core benches: matrix kernels, activation quantization and the
//! worker pool's fork/join.
//!
//! Run with: `cargo bench -p lantern-core` (add a filter such as `Q4_1` to run a subset).

mod benchmarks;

criterion::criterion_main!(
    benchmarks::matmul::benches,
    benchmarks::columns::benches,
    benchmarks::quantize::benches,
    benchmarks::pool::benches,
);
