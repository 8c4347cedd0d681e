//! GGUF, the model container of llama.cpp: parsing ([`Gguf`]) and writing ([`GgufWriter`]).
//!
//! # Layout
//! A GGUF file (versions 2 and 3; all integers little-endian) is:
//!
//! ```text
//! magic        [u8; 4]   = "GGUF"
//! version      u32       = 2 or 3 (v1 used 32-bit counts and is rejected)
//! n_tensors    u64
//! n_kv         u64
//! kv           n_kv × { key: string, type: u32, value }        see [`Value`]
//! tensor_info  n_tensors × { name: string, n_dims: u32 (≤ 4), dims: [u64; n_dims],
//!                             type: u32 (a ggml type id), offset: u64 }
//! padding      to a multiple of `general.alignment` (default 32)
//! data         tensor bytes; each tensor's `offset` is relative to the start of data
//!              and is a multiple of the alignment
//! ```
//!
//! `string` is a `u64` byte length followed by UTF-8 without a terminator. Dimensions are
//! innermost first: `dims[0]` is the row length.
//!
//! # Validation
//! [`Gguf::parse`] treats the file as hostile. Every count and length is capped and
//! checked against the bytes left before anything is allocated, all offset arithmetic is
//! checked, each tensor's type, size and byte range are verified, and duplicate keys or
//! tensor names are rejected. Malformed input yields an [`Error`] naming the
//! field, key or tensor and the offset; it never panics.

mod metadata;
mod names;
pub(crate) mod reader;
mod value;
pub(crate) mod writer;

use std::collections::HashMap;

use lantern_core::GgmlType;

pub use metadata::Metadata;
pub use names::{block_tensor_name, split_block_name};
pub use value::Value;
pub use writer::GgufWriter;

use crate::{Error, Result};
use reader::Cursor;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest `general.alignment` accepted (16 MiB), so padding stays bounded.
pub const MAX_ALIGNMENT: u64 = 1 << 24;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Most metadata key-value pairs accepted.
pub(crate) const MAX_KV: u64 = 1 << 20;
/// Most tensors accepted.
pub(crate) const MAX_TENSORS: u64 = 1 << 20;
/// Fewest bytes a key-value pair takes: empty key, type id, one-byte value.
pub(crate) const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Fewest bytes a tensor info takes: empty name, `n_dims` = 0, type, offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

/// Where one tensor lives in a GGUF file and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions, innermost first, as in GGUF: `dims[0]` is the row length.
    pub dims: Vec<usize>,
    /// Element type.
    pub ty: GgmlType,
    /// Absolute byte offset of the data in the file (data section start + relative offset).
    pub offset: u64,
    /// Size of the data in bytes, as [`GgmlType::tensor_bytes`] computes it.
    pub size: usize,
}

/// A parsed GGUF header: version, metadata and tensor directory.
///
/// It borrows nothing from the bytes it was parsed from; pair it with the bytes (see
/// [`GgufModel`](crate::GgufModel)) to read tensor data.
#[derive(Clone, Debug)]
pub struct Gguf {
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl Gguf {
    /// Parses and validates the GGUF file in `bytes`.
    ///
    /// Only the header is read and copied; tensor data is bounds-checked, not touched.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadMagic`], [`Error::UnsupportedVersion`],
    /// [`Error::TooLarge`], [`Error::InvalidUtf8`], [`Error::InvalidBool`],
    /// [`Error::UnknownValueType`], [`Error::Duplicate`], [`Error::BadAlignment`],
    /// [`Error::TooManyDims`], [`Error::UnknownTensorType`], [`Error::Tensor`] (ragged or
    /// overflowing shape), [`Error::MisalignedTensor`] or [`Error::TensorOutOfBounds`].
    ///
    /// ```
    /// use lantern_io::{Error, Gguf};
    /// assert!(matches!(Gguf::parse(b"GGML\x03\0\0\0"), Err(Error::BadMagic { .. })));
    /// ```
    #[tracing::instrument(level = "debug", skip_all, fields(bytes = bytes.len()))]
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let start = std::time::Instant::now();
        let mut c = Cursor::new(bytes);
        let magic: [u8; 4] = c.fixed("magic")?;
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = c.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::UnsupportedVersion { version });
        }
        let n_tensors = c.u64("tensor count")?;
        if n_tensors > MAX_TENSORS {
            return Err(Error::TooLarge {
                what: "tensor count",
                value: n_tensors,
                max: MAX_TENSORS,
            });
        }
        // Checked against the bytes left inside `count`, after the cap above.
        let n_kv = c.count("metadata key count", MAX_KV, MIN_KV_SIZE)?;

        let metadata = read_metadata(&mut c, n_kv)?;
        let alignment = alignment_of(&metadata)?;

        // n_tensors <= MAX_TENSORS, so this neither overflows nor truncates.
        let room = c.remaining() as u64 / MIN_TENSOR_INFO_SIZE;
        let mut raw = Vec::with_capacity(n_tensors.min(room) as usize);
        for _ in 0..n_tensors {
            raw.push(read_tensor_info(&mut c)?);
        }
        let data_offset = align_up(c.pos() as u64, alignment).ok_or(Error::TooLarge {
            what: "data offset",
            value: c.pos() as u64,
            max: u64::MAX,
        })?;

        let file_len = c.file_len();
        let mut tensors = Vec::with_capacity(raw.len());
        let mut by_name = HashMap::with_capacity(raw.len());
        for (name, dims, ty, rel) in raw {
            if by_name.contains_key(&name) {
                return Err(Error::Duplicate { what: "tensor name", name });
            }
            let info = locate(name, dims, ty, rel, alignment, data_offset, file_len)?;
            by_name.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }
        check_disjoint(&tensors)?;
        tracing::debug!(
            version,
            kv = metadata.len(),
            tensors = tensors.len(),
            data_offset,
            elapsed_us = start.elapsed().as_micros() as u64,
            "parsed GGUF header"
        );
        Ok(Self { version, metadata, tensors, by_name, alignment, data_offset })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata key-value pairs.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensor directory, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`, if present.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The alignment of the data section and of each tensor's data.
    ///
    /// By default (no `general.alignment` key) 32.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// The model architecture, the value of `general.architecture` (e.g. `"llama"`).
    ///
    /// # Errors
    /// [`Error::MissingKey`] or [`Error::WrongType`].
    pub fn architecture(&self) -> Result<&str> {
        self.metadata.str("general.architecture")
    }
}

/// `general.alignment`, or the default; validated.
/// `n` key-value pairs in GGUF's encoding, keys unique.
pub(crate) fn read_metadata(c: &mut Cursor<'_>, n: usize) -> Result<Metadata> {
    let mut metadata = Metadata::new();
    metadata.reserve(n);
    for _ in 0..n {
        let key = c.string("metadata key")?;
        let ty = c.u32("metadata value type")?;
        let value = c.value(&key, ty)?;
        metadata.insert_new(key, value)?;
    }
    Ok(metadata)
}

/// Checks that no two tensors' data share a byte (empty tensors share none).
fn check_disjoint(tensors: &[TensorInfo]) -> Result<()> {
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Both lie within the file (`locate`), so the end does not overflow.
        let a_end = a.offset + a.size as u64;
        if b.offset < a_end {
            return Err(Error::OverlappingTensors {
                first: a.name.clone(),
                first_end: a_end,
                second: b.name.clone(),
                second_start: b.offset,
            });
        }
    }
    Ok(())
}

pub(crate) fn alignment_of(metadata: &Metadata) -> Result<u64> {
    if !metadata.contains("general.alignment") {
        return Ok(DEFAULT_ALIGNMENT);
    }
    // A negative or non-integer value is reported by the getter, naming the key.
    let alignment = metadata.u64("general.alignment")?;
    if !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
        return Err(Error::BadAlignment { value: alignment });
    }
    Ok(alignment)
}

/// `pos` rounded up to a multiple of `alignment` (a power of two), or `None` on overflow.
pub(crate) fn align_up(pos: u64, alignment: u64) -> Option<u64> {
    Some(pos.checked_add(alignment - 1)? & !(alignment - 1))
}

type RawTensorInfo = (String, Vec<usize>, GgmlType, u64);

fn read_tensor_info(c: &mut Cursor<'_>) -> Result<RawTensorInfo> {
    let name = c.string("tensor name")?;
    let n_dims = c.u32("tensor dimension count")?;
    if n_dims as usize > MAX_DIMS {
        return Err(Error::TooManyDims {
            tensor: name,
            n_dims: n_dims.into(),
            max: MAX_DIMS as u64,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for _ in 0..n_dims {
        let d = c.u64("tensor dimension")?;
        let d = usize::try_from(d).map_err(|_| Error::TooLarge {
            what: "tensor dimension",
            value: d,
            max: usize::MAX as u64,
        })?;
        dims.push(d);
    }
    let id = c.u32("tensor type")?;
    // lantern's own types (Q3_0) have ids of their own, which GGUF files never hold.
    let ty = GgmlType::from_id(id)
        .ok()
        .filter(|ty| ty.is_ggml())
        .ok_or_else(|| Error::UnknownTensorType { tensor: name.clone(), id })?;
    let offset = c.u64("tensor offset")?;
    Ok((name, dims, ty, offset))
}

/// Computes a tensor's size and absolute range and checks them against the file.
fn locate(
    name: String,
    dims: Vec<usize>,
    ty: GgmlType,
    rel: u64,
    alignment: u64,
    data_offset: u64,
    file_len: u64,
) -> Result<TensorInfo> {
    let size = match ty.tensor_bytes(&dims) {
        Ok(size) => size,
        Err(source) => return Err(Error::Tensor { name, source }),
    };
    if !rel.is_multiple_of(alignment) {
        return Err(Error::MisalignedTensor { tensor: name, offset: rel, alignment });
    }
    let offset = data_offset.saturating_add(rel);
    let end = data_offset.checked_add(rel).and_then(|o| o.checked_add(size as u64));
    if end.is_none_or(|end| end > file_len) {
        return Err(Error::TensorOutOfBounds { tensor: name, offset, size: size as u64, file_len });
    }
    Ok(TensorInfo { name, dims, ty, offset, size })
}
