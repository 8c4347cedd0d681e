//! Errors of the core crate.

use crate::GgmlType;

/// What can go wrong while interpreting quantized tensor data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor type id that ggml does not define.
    #[error("unknown tensor type id {id}")]
    UnknownType {
        /// The raw type id found in the file.
        id: u32,
    },
    /// A tensor type name that names no type.
    #[error("unknown tensor type {name:?}")]
    UnknownTypeName {
        /// The name given.
        name: String,
    },
    /// A type an operation does not take: one lantern has no kernels for, or one of lantern's
    /// own where only ggml's types may go (a GGUF file).
    #[error("tensor type {ty:?} is not supported for {op}")]
    UnsupportedType {
        /// The tensor's type.
        ty: GgmlType,
        /// What was asked of it.
        op: &'static str,
    },
    /// A row length that is not a whole number of blocks.
    #[error("row of {len} elements is not a multiple of the {ty:?} block size {block}")]
    RaggedRow {
        /// The tensor's type.
        ty: GgmlType,
        /// The row length in elements.
        len: usize,
        /// The type's block size in elements.
        block: usize,
    },
    /// A byte buffer whose length does not match the shape and type.
    #[error("{ty:?} tensor of shape {dims:?} needs {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The tensor's type.
        ty: GgmlType,
        /// The tensor's dimensions, innermost first.
        dims: Vec<usize>,
        /// Bytes the shape requires.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// Shapes that do not fit together in an operation.
    #[error("shape mismatch in {op}: {detail}")]
    ShapeMismatch {
        /// The operation.
        op: &'static str,
        /// Which sizes disagreed.
        detail: String,
    },
    /// A size computation overflowed `usize`.
    #[error("size overflow computing {what}")]
    Overflow {
        /// What was being computed.
        what: &'static str,
    },
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
