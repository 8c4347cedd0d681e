//! lantern-core benches: matrix-vector kernels and activation quantization.
//!
//! Run with: `cargo bench -p lantern-core` (add a filter such as `Q4_1` to run a subset).

mod benchmarks;

criterion::criterion_main!(benchmarks::matvec::benches, benchmarks::quantize::benches);
