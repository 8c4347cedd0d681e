//! lantern-core benches: matrix-vector kernels, activation quantization and the
//! worker pool's fork/join.
//!
//! Run with: `cargo bench -p lantern-core` (add a filter such as `Q4_1` to run a subset).

mod benchmarks;

criterion::criterion_main!(
    benchmarks::matvec::benches,
    benchmarks::quantize::benches,
    benchmarks::pool::benches,
);
