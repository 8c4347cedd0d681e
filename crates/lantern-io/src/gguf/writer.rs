//! [`GgufWriter`]: builds GGUF v3 files, mainly so tests can make tiny models on the spot.
//!
//! The output follows the layout in the [module docs](super): metadata in insertion order,
//! then tensor infos in insertion order, then the data section, where each tensor starts at
//! a multiple of the alignment and is zero-padded to the next one. Everything the parser
//! would reject (oversized strings, mixed arrays, bad alignment, mis-sized tensor bytes) is
//! rejected here first, so a writer that succeeds produces a file [`Gguf::parse`] accepts.
//!
//! [`Gguf::parse`]: super::Gguf::parse

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use lantern_core::GgmlType;

use super::reader::{MAX_ARRAY_DEPTH, MAX_ARRAY_LEN, MAX_STRING_LEN, MAX_TOTAL_VALUES};
use super::{align_up, alignment_of, Metadata, Value, MAGIC, MAX_DIMS};
use crate::{AtomicFile, Error, Result};

/// Builds a GGUF v3 file in memory, to a writer, or atomically to a path.
///
/// ```
/// use lantern_core::GgmlType;
/// use lantern_io::{Gguf, GgufWriter};
///
/// let mut w = GgufWriter::new();
/// w.metadata("general.architecture", "llama")
///     .metadata("llama.block_count", 2u32)
///     .metadata("tokenizer.ggml.tokens", vec!["<s>", "</s>", "hi"]);
/// w.tensor_f32("output_norm.weight", &[4], &[1.0, 1.0, 1.0, 1.0])?;
/// w.tensor("token_embd.weight", GgmlType::F16, &[4, 3], vec![0; 24])?;
/// let bytes = w.to_bytes()?;
///
/// let gguf = Gguf::parse(&bytes)?;
/// assert_eq!(gguf.metadata().u32("llama.block_count")?, 2);
/// assert_eq!(gguf.tensors().len(), 2);
/// # Ok::<(), lantern_io::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct GgufWriter {
    metadata: Metadata,
    tensors: Vec<PendingTensor>,
    names: HashSet<String>,
}

#[derive(Clone)]
struct PendingTensor {
    name: String,
    ty: GgmlType,
    dims: Vec<usize>,
    data: TensorData,
}

/// A tensor's bytes: held, or made when the file is written.
#[derive(Clone)]
enum TensorData {
    Bytes(Vec<u8>),
    /// Its length, and what fills a buffer of that length.
    Generated(usize, Arc<Generator>),
}

/// Fills a tensor's bytes as the file is written ([`GgufWriter::tensor_generated`]).
type Generator = dyn Fn(&mut [u8]) + Send + Sync;

impl TensorData {
    fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::Generated(len, _) => *len,
        }
    }
}

impl fmt::Debug for GgufWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tensor bytes are left out: they can be megabytes.
        let names: Vec<&str> = self.tensors.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("GgufWriter")
            .field("metadata", &self.metadata)
            .field("tensors", &names)
            .finish()
    }
}

impl GgufWriter {
    /// An empty writer: no metadata, no tensors, default alignment (32).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets metadata `key` to `value`, replacing (in place) any earlier value for `key`.
    ///
    /// Values are checked when the file is written.
    pub fn metadata(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the alignment of the data section and of each tensor, stored as
    /// `general.alignment`.
    ///
    /// By default 32. The value is checked when the file is written: it must be a power of
    /// two no larger than [`MAX_ALIGNMENT`](super::MAX_ALIGNMENT).
    pub fn alignment(&mut self, alignment: u64) -> &mut Self {
        let value = u32::try_from(alignment).map_or(Value::U64(alignment), Value::U32);
        self.metadata("general.alignment", value)
    }

    /// Adds a tensor of type `ty` and dimensions `dims` (innermost first) with raw `bytes`.
    ///
    /// # Errors
    /// [`Error::Duplicate`] for a name already added, [`Error::TooManyDims`] for more than
    /// four dimensions, [`Error::TooLarge`] for an over-long name, and [`Error::Tensor`]
    /// when `bytes.len()` is not what `ty` and `dims` require or `ty` is one of lantern's own
    /// ([`GgmlType::is_ggml`] is false), which GGUF files cannot hold.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[usize],
        bytes: Vec<u8>,
    ) -> Result<()> {
        self.add(name.into(), ty, dims, TensorData::Bytes(bytes))
    }

    /// Adds a tensor of type `ty` and dimensions `dims` whose bytes `fill` writes into a
    /// buffer of their length when the file is written, one tensor at a time: a model far
    /// larger than memory can be written while holding one tensor.
    ///
    /// # Errors
    /// As [`GgufWriter::tensor`], but for the length, which is right by construction.
    pub fn tensor_generated(
        &mut self,
        name: impl Into<String>,
        ty: GgmlType,
        dims: &[usize],
        fill: impl Fn(&mut [u8]) + Send + Sync + 'static,
    ) -> Result<()> {
        let name = name.into();
        let len = match ty.tensor_bytes(dims) {
            Ok(n) => n,
            Err(source) => return Err(Error::Tensor { name, source }),
        };
        self.add(name, ty, dims, TensorData::Generated(len, Arc::new(fill)))
    }

    fn add(&mut self, name: String, ty: GgmlType, dims: &[usize], data: TensorData) -> Result<()> {
        if self.names.contains(&name) {
            return Err(Error::Duplicate { what: "tensor name", name });
        }
        check_string_len("tensor name", &name)?;
        if !ty.is_ggml() {
            let source = lantern_core::Error::UnsupportedType {
                ty,
                op: "GGUF files, which hold ggml's types only",
            };
            return Err(Error::Tensor { name, source });
        }
        if dims.len() > MAX_DIMS {
            let n_dims = dims.len() as u64;
            return Err(Error::TooManyDims { tensor: name, n_dims, max: MAX_DIMS as u64 });
        }
        let expected = match ty.tensor_bytes(dims) {
            Ok(n) => n,
            Err(source) => return Err(Error::Tensor { name, source }),
        };
        if data.len() != expected {
            let source = lantern_core::Error::SizeMismatch {
                ty,
                dims: dims.to_vec(),
                expected,
                actual: data.len(),
            };
            return Err(Error::Tensor { name, source });
        }
        self.names.insert(name.clone());
        self.tensors.push(PendingTensor { name, ty, dims: dims.to_vec(), data });
        Ok(())
    }

    /// Adds an `F32` tensor from its values.
    ///
    /// # Errors
    /// As [`GgufWriter::tensor`].
    pub fn tensor_f32(
        &mut self,
        name: impl Into<String>,
        dims: &[usize],
        values: &[f32],
    ) -> Result<()> {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, GgmlType::F32, dims, bytes)
    }

    /// Writes the file to `out`.
    ///
    /// # Errors
    /// [`Error::BadAlignment`], [`Error::TooLarge`] or [`Error::MixedArray`] for metadata
    /// the parser would reject (nothing is written then), [`Error::Write`] if `out` fails.
    pub fn write_to(&self, out: &mut impl Write) -> Result<()> {
        let header = self.header()?;
        self.stream(&header, out).map_err(|source| Error::Write { source })
    }

    /// The file as bytes.
    ///
    /// # Errors
    /// As [`GgufWriter::write_to`], except that writing to memory does not fail.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = self.header()?;
        let data: usize = self.tensors.iter().map(|t| t.data.len() + 64).sum();
        let mut out = Vec::with_capacity(header.len() + data);
        self.stream(&header, &mut out).map_err(|source| Error::Write { source })?;
        Ok(out)
    }

    /// Writes the file to `path` atomically with an [`AtomicFile`]: into a temporary file in
    /// the same directory, which is flushed to disk and then renamed over `path`. An
    /// interrupted write leaves `path` as it was (at worst a stray `.<name>.<pid>.<n>.tmp`
    /// file remains). Symbolic links are followed; directories and special files are refused.
    ///
    /// # Errors
    /// As [`GgufWriter::write_to`] and [`AtomicFile::create`], and [`Error::Io`] naming the
    /// file that failed.
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let header = self.header()?;
        let mut file = AtomicFile::create(path)?;
        self.stream(&header, &mut file).map_err(|e| Error::io(file.path(), e))?;
        file.commit()
    }

    /// Validates everything and encodes the header, tensor infos and padding up to the data
    /// section.
    fn header(&self) -> Result<Vec<u8>> {
        let alignment = alignment_of(&self.metadata)?;
        let mut total_values = 0u64;
        let mut h = Vec::new();
        h.extend_from_slice(&MAGIC);
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in self.metadata.iter() {
            check_string_len("metadata key", key)?;
            check_value(key, value, 0, &mut total_values)?;
            put_string(&mut h, key);
            h.extend_from_slice(&value.type_id().to_le_bytes());
            put_value(&mut h, value);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            put_string(&mut h, &t.name);
            h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                h.extend_from_slice(&(d as u64).to_le_bytes());
            }
            h.extend_from_slice(&t.ty.id().to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
            offset =
                align_up(offset.saturating_add(t.data.len() as u64), alignment).unwrap_or(u64::MAX);
        }
        let data_offset = align_up(h.len() as u64, alignment).unwrap_or(u64::MAX);
        h.resize(data_offset as usize, 0);
        Ok(h)
    }

    /// Writes `header` and the tensor data, each tensor padded to the alignment.
    fn stream(&self, header: &[u8], out: &mut impl Write) -> io::Result<()> {
        // `header` ends aligned, and `header()` already validated the alignment.
        let alignment = alignment_of(&self.metadata).unwrap_or(super::DEFAULT_ALIGNMENT) as usize;
        out.write_all(header)?;
        let zeros = vec![0u8; alignment];
        let mut generated = Vec::new();
        for t in &self.tensors {
            let bytes = match &t.data {
                TensorData::Bytes(bytes) => bytes,
                TensorData::Generated(len, fill) => {
                    generated.clear();
                    generated.resize(*len, 0);
                    fill(&mut generated);
                    &generated
                }
            };
            out.write_all(bytes)?;
            let pad = bytes.len().next_multiple_of(alignment) - bytes.len();
            out.write_all(&zeros[..pad])?;
        }
        out.flush()
    }
}

pub(crate) fn check_string_len(what: &'static str, s: &str) -> Result<()> {
    if s.len() as u64 > MAX_STRING_LEN {
        return Err(Error::TooLarge { what, value: s.len() as u64, max: MAX_STRING_LEN });
    }
    Ok(())
}

/// Checks `value` against the parser's caps: string lengths, array lengths, homogeneity,
/// nesting depth and the total number of values.
pub(crate) fn check_value(key: &str, value: &Value, depth: usize, total: &mut u64) -> Result<()> {
    *total += 1;
    match value {
        Value::String(s) => check_string_len("metadata string", s)?,
        Value::Array(items) => {
            if depth >= MAX_ARRAY_DEPTH {
                let max = MAX_ARRAY_DEPTH as u64;
                return Err(Error::TooLarge { what: "array nesting depth", value: max + 1, max });
            }
            if items.len() as u64 > MAX_ARRAY_LEN {
                let value = items.len() as u64;
                return Err(Error::TooLarge { what: "array length", value, max: MAX_ARRAY_LEN });
            }
            if let Some(first) = items.first() {
                if let Some(odd) = items.iter().find(|v| v.type_id() != first.type_id()) {
                    let (first, found) = (first.type_name(), odd.type_name());
                    return Err(Error::MixedArray { key: key.to_owned(), first, found });
                }
            }
            for item in items {
                check_value(key, item, depth + 1, total)?;
            }
        }
        _ => {}
    }
    if *total > MAX_TOTAL_VALUES {
        let value = *total;
        return Err(Error::TooLarge {
            what: "total metadata values",
            value,
            max: MAX_TOTAL_VALUES,
        });
    }
    Ok(())
}

pub(crate) fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::U8(v) => out.push(*v),
        Value::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => out.push(u8::from(*v)),
        Value::String(s) => put_string(out, s),
        Value::Array(items) => {
            // An empty array has no element to take a type from; u8 is as good as any.
            let elem = items.first().map_or(0, Value::type_id);
            out.extend_from_slice(&elem.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                put_value(out, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_the_parser_would() {
        let mut w = GgufWriter::new();
        w.metadata("mixed", Value::Array(vec![Value::U8(1), Value::I8(1)]));
        assert!(matches!(w.to_bytes(), Err(Error::MixedArray { found: "i8", .. })));

        let mut w = GgufWriter::new();
        w.alignment(24);
        assert!(matches!(w.to_bytes(), Err(Error::BadAlignment { value: 24 })));

        let mut w = GgufWriter::new();
        let err = w.tensor("t", GgmlType::Q4_0, &[32], vec![0; 17]).unwrap_err();
        assert!(matches!(err, Error::Tensor { ref name, .. } if name == "t"), "{err}");
        w.tensor("t", GgmlType::Q4_0, &[32], vec![0; 18]).unwrap();
        assert!(matches!(w.tensor("t", GgmlType::I8, &[1], vec![0]), Err(Error::Duplicate { .. })));
    }

    #[test]
    fn refuses_lantern_only_types() {
        let mut w = GgufWriter::new();
        let err = w.tensor("q3", GgmlType::Q3_0, &[32], vec![0; 14]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Tensor {
                    ref name,
                    source: lantern_core::Error::UnsupportedType { ty: GgmlType::Q3_0, .. }
                } if name == "q3"
            ),
            "{err}"
        );
        assert!(err.to_string().contains("GGUF"), "{err}");
        // Nothing was added: the name is still free and the file has no Q3_0 tensor.
        w.tensor("q3", GgmlType::Q4_0, &[32], vec![0; 18]).unwrap();
        assert_eq!(crate::Gguf::parse(&w.to_bytes().unwrap()).unwrap().tensors().len(), 1);
    }
}
