//! Model files for the lantern inference runtime: GGUF parsing and writing, and the bytes
//! behind them, read into memory or memory-mapped.
//!
//! lantern-io turns a file into validated metadata and zero-copy [`QTensor`]s. It treats
//! every file as hostile: counts and lengths are capped, every offset is checked against
//! the file's length with checked arithmetic, and malformed input is an [`Error`] that names
//! the key, tensor or offset at fault, never a panic or an outsized allocation. It knows
//! nothing about model architectures; the runtime reads those from [`Metadata`].
//!
//! [`QTensor`]: lantern_core::QTensor
//!
//! # Overview
//! - [`ModelSource`]: a file's bytes, from [`ModelSource::read`] (safe),
//!   [`ModelSource::mmap`] (`unsafe` opt-in) or [`ModelSource::from_vec`].
//! - [`Gguf`]: a parsed and validated GGUF v2/v3 header: version, [`Metadata`] and a
//!   [`TensorInfo`] per tensor.
//! - [`Metadata`] and [`Value`]: ordered key-value pairs with typed getters that name the
//!   key when it is missing or of the wrong type.
//! - [`GgufModel`]: a source and its header, handing out tensors by name.
//! - [`container`]: the `.lantern` container, its reader and its writer.
//! - [`ModelFile`] and [`open_model_file`]: either kind of file, as the runtime loads it.
//! - [`stream`]: a container streamed from storage under a memory budget, with a prefetch
//!   thread and a storage model.
//! - [`AtomicFile`] and [`write_atomic`]: files written whole or not at all (a temporary
//!   file renamed into place), refusing to replace a directory, device, FIFO or socket and
//!   writing through symbolic links; the GGUF and container writers use them.
//! - [`GgufWriter`]: builds GGUF v3 files, in memory or atomically on disk; tests use it to
//!   make tiny models on the spot.
//! - [`Error`] and [`Result`].
//!
//! # Example
//! ```
//! use lantern_core::GgmlType;
//! use lantern_io::{GgufModel, GgufWriter, ModelSource};
//!
//! // A tiny "model": two metadata keys and a 2×3 f32 matrix.
//! let mut w = GgufWriter::new();
//! w.metadata("general.architecture", "llama").metadata("llama.block_count", 1u32);
//! w.tensor_f32("token_embd.weight", &[3, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0])?;
//! let bytes = w.to_bytes()?;
//!
//! // In real use: ModelSource::read(path)? or, with its safety contract, mmap.
//! let model = GgufModel::open(ModelSource::from_vec(bytes))?;
//! assert_eq!(model.gguf().architecture()?, "llama");
//! assert_eq!(model.metadata().u32("llama.block_count")?, 1);
//!
//! let t = model.tensor("token_embd.weight")?;
//! assert_eq!((t.ty(), t.dims()), (GgmlType::F32, &[3, 2][..]));
//! assert_eq!(t.row(1), &[3.0f32, 4.0, 5.0].map(f32::to_le_bytes).concat()[..]);
//! # Ok::<(), lantern_io::Error>(())
//! ```
//!
//! # Features
//! No optional features. Parsing emits `tracing` events at debug level (parse time, tensor
//! and key counts) and installs no subscriber.

#![deny(missing_docs)]

mod atomic;
pub mod container;
mod error;
pub mod gguf;
mod model_file;
mod replaced;
mod source;
pub mod stream;

pub use atomic::{write_atomic, AtomicFile, FileKind};
pub use error::{Error, Result};
pub use gguf::{Gguf, GgufWriter, Metadata, TensorInfo, Value};
pub use model_file::{open_model_file, GgufModel, ModelFile};
pub use replaced::Replaced;
pub use source::ModelSource;
