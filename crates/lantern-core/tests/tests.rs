//! Integration tests of lantern-core, one binary split by topic.
//!
//! Fixtures are built in the tests themselves: hand-made blocks whose values are worked out
//! in comments, and seeded random rows.

mod columns;
mod common;
mod dequant;
mod gather;
mod grid;
mod interleaved;
mod interleaved_iq4_nl;
mod interleaved_iq4_xs;
mod interleaved_q3_k;
mod kernels;
mod kquants;
mod peer_vectors;
mod qtensor;
mod quantize;
