//! Quantized tensor formats and the kernels that compute with them.
//!
//! lantern-core knows how tensor bytes are laid out and how to multiply them with
//! activations fast. It reads no files: the I/O crate hands it bytes. Its [`ThreadPool`] is
//! the low-latency fork/join the runtime spreads rows over; which rows go where is the
//! runtime's choice.
//!
//! # Overview
//! - [`GgmlType`]: every ggml element type, with its block geometry.
//! - [`TensorBytes`]: shared bytes from a memory map or the heap.
//! - [`QTensor`]: a typed, shaped tensor over such bytes, with [`QTensor::matmul`] for one
//!   input (decode) or many (prefill).
//! - [`BlockQ4_0`], [`BlockQ4_1`], [`BlockQ8_0`]: on-disk blocks, bit-exact with ggml;
//!   [`BlockIQ4NL`], [`BlockIQ4XS`]: ggml's non-linear 4-bit blocks, indices into
//!   [`IQ4NL_VALUES`]; [`BlockQ3_0`]: lantern's own 3-bit block, which only `.lantern`
//!   containers hold.
//! - [`BlockQ8`] and [`quantize_activation`]: an activation vector quantized to 8 bits once,
//!   then dotted with many weight rows.
//! - [`ColumnMajor`]: a matrix copied column by column, whose products with a sparse input
//!   read only the columns of its non-zero values.
//! - [`ThreadPool`]: persistent workers with a fork/join of a few microseconds.
//! - [`kernels`]: scalar kernels and their SIMD twins, chosen at run time.
//!
//! # Example
//! ```
//! use lantern_core::kernels::Input;
//! use lantern_core::{quantize_activation, quantize_row, BlockQ8, GgmlType, QTensor, TensorBytes};
//!
//! // Two rows of 32 weights, quantized to Q4_1.
//! let weights: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 16.0).collect();
//! let mut bytes = vec![0u8; GgmlType::Q4_1.tensor_bytes(&[32, 2])?];
//! quantize_row(GgmlType::Q4_1, &weights, &mut bytes)?;
//! let w = QTensor::new(GgmlType::Q4_1, &[32, 2], TensorBytes::from_vec(bytes))?;
//!
//! let x = vec![1.0f32; 32];
//! let mut xq = vec![BlockQ8::default(); 1];
//! quantize_activation(&x, &mut xq);
//! let mut y = [0.0f32; 2];
//! w.matmul(0..2, Input::new(&x, &xq, 1), &mut y)?;
//! assert!((y[0] - weights[..32].iter().sum::<f32>()).abs() < 0.5);
//! # Ok::<(), lantern_core::Error>(())
//! ```
//!
//! # Features
//! No optional features. SIMD paths (AVX2 on x86-64) are compiled in and chosen at run time;
//! every SIMD kernel has a scalar twin that runs everywhere.

#![deny(missing_docs)]

mod blocks;
mod bytes;
mod columns;
mod dequant;
mod error;
mod ggml_type;
mod grid;
pub mod kernels;
mod pool;
mod qtensor;
mod quantize;

pub use blocks::{
    BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ3_0, BlockQ4K, BlockQ4_0, BlockQ4_1,
    BlockQ5K, BlockQ5_0, BlockQ6K, BlockQ8, BlockQ8K, BlockQ8_0, IQ4NL_VALUES, QK8, QK_K,
};
pub use bytes::{ReleasePages, TensorBytes};
pub use columns::ColumnMajor;
pub use dequant::dequantize_row;
pub use error::{Error, Result};
pub use ggml_type::GgmlType;
pub use grid::{quantize_row_on, BlockScale, Grid};
pub use pool::ThreadPool;
pub use qtensor::QTensor;
pub use quantize::{quantize_activation, quantize_activation_k, quantize_row};
