//! Errors of the I/O crate.
//!
//! Every variant names what a user needs to act on: the file path for I/O failures, the
//! byte offset for malformed input, the metadata key or the tensor name for bad entries.

use std::path::{Path, PathBuf};

use crate::FileKind;

/// What can go wrong while reading, validating or writing a model file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening, reading, mapping or writing a file failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Writing to a caller-supplied writer failed.
    #[error("cannot write GGUF output: {source}")]
    Write {
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file ended before a field it declares.
    #[error("file truncated reading {what} at offset {offset}: need {needed} bytes, file is {file_len} bytes")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Byte offset of the field.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Length of the whole file.
        file_len: u64,
    },
    /// The file does not start with `GGUF`.
    #[error("not a GGUF file: it starts with \"{}\", not \"GGUF\"", .found.escape_ascii())]
    BadMagic {
        /// The first four bytes of the file.
        found: [u8; 4],
    },
    /// A length-prefixed string longer than lantern reads.
    #[error("{what} is {len} bytes long, more than the maximum of {max}")]
    StringTooLong {
        /// Which string.
        what: &'static str,
        /// Its recorded length.
        len: u64,
        /// The longest read.
        max: u64,
    },
    /// A GGUF version other than 2 or 3 (v1 and big-endian files land here too).
    #[error("unsupported GGUF version {version} (lantern reads versions 2 and 3)")]
    UnsupportedVersion {
        /// The version found in the header.
        version: u32,
    },
    /// A count, length or nesting depth above lantern's sanity cap.
    #[error("{what} is {value}, more than the maximum of {max}")]
    TooLarge {
        /// What was counted.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The cap.
        max: u64,
    },
    /// A string that is not valid UTF-8.
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which string.
        what: &'static str,
        /// Byte offset of the string's bytes.
        offset: u64,
    },
    /// A bool stored as a byte other than 0 or 1.
    #[error(
        "metadata key {}: bool at offset {offset} has byte value {value}, expected 0 or 1"
    , quoted(.key))]
    InvalidBool {
        /// The metadata key.
        key: String,
        /// Byte offset of the value.
        offset: u64,
        /// The byte found.
        value: u8,
    },
    /// A metadata value type id GGUF does not define.
    #[error("metadata key {} has unknown value type id {id}", quoted(.key))]
    UnknownValueType {
        /// The metadata key.
        key: String,
        /// The raw type id.
        id: u32,
    },
    /// An array whose elements do not all have the same type (writer only).
    #[error("metadata key {}: array mixes {first} and {found} elements", quoted(.key))]
    MixedArray {
        /// The metadata key.
        key: String,
        /// The first element's type.
        first: &'static str,
        /// The first differing element's type.
        found: &'static str,
    },
    /// A tensor type id ggml does not define (in a GGUF file, lantern's own ids too).
    #[error("tensor {} has unknown type id {id}", quoted(.tensor))]
    UnknownTensorType {
        /// The tensor's name.
        tensor: String,
        /// The raw type id.
        id: u32,
    },
    /// A tensor with more dimensions than ggml allows.
    #[error("tensor {} has {n_dims} dimensions, at most {max} are allowed", quoted(.tensor))]
    TooManyDims {
        /// The tensor's name.
        tensor: String,
        /// The number of dimensions declared.
        n_dims: u64,
        /// The cap (ggml's `GGML_MAX_DIMS`).
        max: u64,
    },
    /// A tensor whose data lies (partly) outside the file.
    #[error("tensor {}: {size} bytes at offset {offset} run past the end of the {file_len}-byte file", quoted(.tensor))]
    TensorOutOfBounds {
        /// The tensor's name.
        tensor: String,
        /// Absolute byte offset of the data (saturated on overflow).
        offset: u64,
        /// Size of the data in bytes.
        size: u64,
        /// Length of the whole file.
        file_len: u64,
    },
    /// Two tensors whose data share bytes: each tensor's type and shape give its length, and
    /// no two may overlap.
    #[error(
        "tensors {} and {} overlap: the first's data runs to byte {first_end}, the second's starts at {second_start}",
        quoted(.first), quoted(.second)
    )]
    OverlappingTensors {
        /// The tensor that starts first.
        first: String,
        /// Absolute end of its data.
        first_end: u64,
        /// The tensor whose data starts inside the first's.
        second: String,
        /// Absolute start of its data.
        second_start: u64,
    },
    /// A tensor whose data offset is not a multiple of the file's alignment.
    #[error(
        "tensor {}: data offset {offset} is not a multiple of the alignment {alignment}"
    , quoted(.tensor))]
    MisalignedTensor {
        /// The tensor's name.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },
    /// A `general.alignment` that is zero, not a power of two or above the cap.
    #[error("general.alignment is {value}; it must be a power of two between 1 and 16777216")]
    BadAlignment {
        /// The value found.
        value: u64,
    },
    /// A metadata key or tensor name that appears twice.
    #[error("duplicate {what} {}", quoted(.name))]
    Duplicate {
        /// `"metadata key"` or `"tensor name"`.
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// A required metadata key is absent.
    #[error("metadata key {} is missing", quoted(.key))]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value of a different type than asked for.
    #[error("metadata key {} has type {found}, expected {expected}", quoted(.key))]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// An integer metadata value that does not fit the type asked for.
    #[error("metadata key {} has value {value}, which does not fit {expected}", quoted(.key))]
    OutOfRange {
        /// The key.
        key: String,
        /// The value found.
        value: i128,
        /// The type asked for.
        expected: &'static str,
    },
    /// A tensor the caller asked for is not in the file.
    #[error("tensor {} not found in the model file", quoted(.name))]
    MissingTensor {
        /// The tensor's name.
        name: String,
    },
    /// A tensor's shape, type and bytes do not fit together.
    #[error("tensor {}: {source}", quoted(.name))]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What the core crate reported.
        source: lantern_core::Error,
    },
    /// A file that does not start with the `.lantern` container's magic.
    #[error("not a .lantern container: it starts with \"{}\", not \"LANTERN\\0\"", .found.escape_ascii())]
    NotContainer {
        /// The first eight bytes of the file.
        found: [u8; 8],
    },
    /// A `.lantern` container version this build does not read.
    #[error(
        "unsupported .lantern container version {version} (this build reads version {supported})"
    )]
    UnsupportedContainerVersion {
        /// The version found in the header.
        version: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Stored bytes whose CRC-32 does not match the one recorded for them.
    #[error("{what}: checksum mismatch (recorded {recorded:08x}, computed {computed:08x})")]
    Checksum {
        /// Which bytes: a header, a section, or a chunk of a named tensor.
        what: String,
        /// The CRC-32 the file records.
        recorded: u32,
        /// The CRC-32 of the bytes as read.
        computed: u32,
    },
    /// A container whose parts do not fit together.
    #[error("{what}: {detail}")]
    Corrupt {
        /// Which part: a section, a chunk, or a named tensor.
        what: String,
        /// What does not fit.
        detail: String,
    },
    /// A setting out of range or that does not parse.
    #[error("invalid {name}: {reason}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A memory budget too small to stream the model at all.
    #[error(
        "a memory budget of {budget} bytes is too small to stream this model: the minimum is \
         {minimum} bytes ({detail})"
    )]
    BudgetTooSmall {
        /// The budget asked for.
        budget: u64,
        /// The least budget that runs, with no layer read ahead.
        minimum: u64,
        /// What the minimum is made of.
        detail: String,
    },
    /// The prefetch thread is gone (it stopped after reporting an error).
    #[error("the prefetch thread has stopped")]
    StreamStopped,
    /// A tensor given to replace one of the model's does not fit it.
    #[error("cannot replace tensor {}: {detail}", quoted(.name))]
    Replacement {
        /// The tensor's name.
        name: String,
        /// How it does not fit.
        detail: String,
    },
    /// A destination that is not a regular file: writing would replace a directory, a
    /// device, a FIFO or a socket (see [`AtomicFile`](crate::AtomicFile)).
    #[error("refusing to write {}: it is {kind}, not a regular file", shown(path, target))]
    NotRegularFile {
        /// The path as given.
        path: PathBuf,
        /// What `path` leads to after symbolic links; `path` itself when it is no link.
        target: PathBuf,
        /// What is there.
        kind: FileKind,
    },
    /// A destination behind more than 40 symbolic links, or a cycle of them.
    #[error("too many levels of symbolic links from {}", path.display())]
    SymlinkLoop {
        /// The path as given.
        path: PathBuf,
    },
}

/// Result with the I/O crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

/// `path`, and where it leads when that is elsewhere.
/// A name read from a file, quoted and escaped, and cut after 64 characters: a corrupt name
/// can be any length and any bytes.
fn quoted(name: &str) -> String {
    const SHOWN: usize = 64;
    match name.char_indices().nth(SHOWN) {
        None => format!("{name:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &name[..cut], name.len()),
    }
}

fn shown(path: &Path, target: &Path) -> String {
    if path == target {
        path.display().to_string()
    } else {
        format!("{} (a symbolic link to {})", path.display(), target.display())
    }
}
