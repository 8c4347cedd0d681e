//! Converting a GGUF model into a `.lantern` container.

use std::collections::{HashMap, HashSet};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use lantern_core::{GgmlType, QTensor};

use super::{
    layer_of, to_planes, Codec, Transform, CHUNK_BYTES, DEFAULT_ALIGNMENT, HEADER_BYTES, MAGIC,
    NO_LAYER, VERSION,
};
use crate::gguf::writer::{check_string_len, check_value, put_string, put_value};
use crate::{AtomicFile, Error, GgufModel, ModelFile, Replaced, Result, Value};

/// How [`write_container_with`] stores the data.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// LZ4-compress each chunk when that makes it smaller, and store a tensor as byte
    /// planes when that makes it at least [`PLANES_GAIN`] smaller. When off, every chunk is
    /// stored raw, as in the GGUF file.
    pub compress: bool,
    /// Metadata pairs added after the GGUF file's, replacing any of the same key (lantern's
    /// own, under `lantern.`, such as calibrated thresholds).
    pub metadata: Vec<(String, Value)>,
    /// Tensors that take the place of the GGUF file's tensors of the same name, in any type
    /// and with dimensions no larger (re-quantized or pruned weights, for example).
    pub replacements: Vec<(String, QTensor)>,
    /// Tensors stored instead of the GGUF file's tensor of the first name, in its place in
    /// the order of use, under names of their own (a matrix stored as factors, for
    /// example). The tensor they stand for is left out.
    pub substitutes: Vec<(String, Vec<(String, QTensor)>)>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            compress: true,
            metadata: Vec::new(),
            replacements: Vec::new(),
            substitutes: Vec::new(),
        }
    }
}

/// The least saving, as a share of a tensor's stored bytes, for which the writer lays the
/// tensor out as byte planes: less is within what a reader pays to put the planes back.
pub const PLANES_GAIN: f64 = 0.01;

/// What a conversion wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// Per tensor type, in order of first appearance: raw bytes, stored bytes, and how many
    /// of its tensors are stored as byte planes.
    pub by_type: Vec<(GgmlType, u64, u64, usize)>,
    /// Bytes of the whole file.
    pub file_bytes: u64,
}

impl ConvertStats {
    fn add(&mut self, ty: GgmlType, raw: u64, stored: u64, planes: bool) {
        let planes = usize::from(planes);
        match self.by_type.iter_mut().find(|(t, ..)| *t == ty) {
            Some((_, r, s, p)) => (*r, *s, *p) = (*r + raw, *s + stored, *p + planes),
            None => self.by_type.push((ty, raw, stored, planes)),
        }
    }
}

/// Writes `model` to `path` as a container (see `docs/format.md`) with the default
/// [`WriteOptions`]: compressed where that pays.
///
/// # Errors
/// As [`write_container_with`].
pub fn write_container(
    model: &GgufModel,
    path: impl AsRef<Path>,
    progress: impl FnMut(u64, u64),
) -> Result<ConvertStats> {
    write_container_with(model, path, WriteOptions::default(), progress)
}

/// Writes `model` to `path` as a container (see `docs/format.md`), atomically with an
/// [`AtomicFile`]: the target appears complete or not at all, symbolic links are followed,
/// and a directory or special file is refused. `progress(done, total)` is called after each
/// tensor with raw bytes.
///
/// # Errors
/// The errors of [`AtomicFile::create`] (such as
/// [`Error::NotRegularFile`](crate::Error::NotRegularFile)),
/// [`Error::Io`](crate::Error::Io) naming the file that failed,
/// [`Error::Replacement`](crate::Error::Replacement) for a replacement that matches no
/// tensor of the model by name or is larger in some dimension, or a substitute that stands
/// for no tensor of the model or whose name is taken, and the errors of reading the model's
/// tensors or of metadata a GGUF writer would reject.
pub fn write_container_with(
    model: &GgufModel,
    path: impl AsRef<Path>,
    options: WriteOptions,
    progress: impl FnMut(u64, u64),
) -> Result<ConvertStats> {
    let prepared = Prepared::new(model, options)?;
    prepared.write(AtomicFile::create(path)?, progress)
}

/// As [`write_container_with`], into `file`, which it commits: the caller creates the
/// [`AtomicFile`] before long work (calibrating, re-quantizing) so that a destination it
/// refuses, such as a device, fails at once rather than after that work. Dropping `file`
/// on an error leaves the destination as it was.
///
/// # Errors
/// As [`write_container_with`], but for those of [`AtomicFile::create`].
pub fn write_container_into(
    model: &GgufModel,
    file: AtomicFile,
    options: WriteOptions,
    progress: impl FnMut(u64, u64),
) -> Result<ConvertStats> {
    Prepared::new(model, options)?.write(file, progress)
}

/// What a container will hold, checked before a byte is written: its metadata encoded, and
/// its tensors in the order of use.
struct Prepared {
    metadata: Vec<u8>,
    /// Block (if any), tensor and name.
    tensors: Vec<(Option<u32>, QTensor, String)>,
    compress: bool,
}

impl Prepared {
    fn new(model: &GgufModel, options: WriteOptions) -> Result<Self> {
        let metadata = encode_metadata(model, &options.metadata)?;
        let file = Replaced::new(Arc::new(model.clone()), options.replacements)?;
        let substitutes = check_substitutes(model, options.substitutes)?;
        let mut tensors = Vec::new();
        for info in model.gguf().tensors() {
            match substitutes.get(&info.name) {
                Some(parts) => tensors.extend(
                    parts.iter().map(|(name, t)| (layer_of(name), t.clone(), name.clone())),
                ),
                None => tensors.push((
                    layer_of(&info.name),
                    file.tensor(&info.name)?,
                    info.name.clone(),
                )),
            }
        }
        // The order of use: tensors outside the blocks, then block by block (a stable sort
        // keeps the file's order within each).
        tensors.sort_by_key(|(layer, ..)| layer.map_or(0, |l| u64::from(l) + 1));
        Ok(Self { metadata, tensors, compress: options.compress })
    }

    /// Writes the container into `file` and commits it.
    fn write(
        self,
        mut file: AtomicFile,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<ConvertStats> {
        let Self { metadata, tensors, compress } = self;
        let total: u64 = tensors.iter().map(|(_, t, _)| t.bytes().len() as u64).sum();
        let alignment = u64::from(DEFAULT_ALIGNMENT);
        let mut stats = ConvertStats::default();
        let written = (|| {
            let mut pos = Position { w: &mut file, at: 0 };
            pos.write(&[0; HEADER_BYTES])?;
            pos.write(&metadata)?;
            let data_offset = pos.pad_to(alignment)?;
            let mut index = Vec::new();
            let mut chunks = Vec::new();
            index.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
            let mut done = 0;
            for (layer, tensor, name) in &tensors {
                let first = chunks.len() as u64;
                let (transform, encoded) = encode(tensor, compress);
                let mut stored_bytes = 0;
                for (raw, (codec, stored)) in
                    tensor.bytes().chunks(chunk_bytes(tensor)).zip(encoded)
                {
                    let offset = pos.pad_to(alignment)?;
                    pos.write(&stored)?;
                    stored_bytes += stored.len() as u64;
                    chunks.push((
                        offset,
                        stored.len() as u64,
                        raw.len() as u64,
                        codec,
                        crc(&stored),
                    ));
                }
                let planes = transform == Transform::Planes;
                stats.add(tensor.ty(), tensor.bytes().len() as u64, stored_bytes, planes);
                put_string(&mut index, name);
                index.extend_from_slice(&tensor.ty().id().to_le_bytes());
                index.extend_from_slice(&(tensor.dims().len() as u32).to_le_bytes());
                for &d in tensor.dims() {
                    index.extend_from_slice(&(d as u64).to_le_bytes());
                }
                index.extend_from_slice(&layer.unwrap_or(NO_LAYER).to_le_bytes());
                index.extend_from_slice(&transform.id().to_le_bytes());
                index.extend_from_slice(&first.to_le_bytes());
                index.extend_from_slice(&(chunks.len() as u64 - first).to_le_bytes());
                done += tensor.bytes().len() as u64;
                progress(done, total);
            }
            index.extend_from_slice(&(chunks.len() as u64).to_le_bytes());
            for (offset, stored, raw, codec, crc) in chunks {
                for v in [offset, stored, raw] {
                    index.extend_from_slice(&v.to_le_bytes());
                }
                index.extend_from_slice(&codec.id().to_le_bytes());
                index.extend_from_slice(&crc.to_le_bytes());
            }
            index.extend_from_slice(&self::crc(&index).to_le_bytes());
            let index_offset = pos.at;
            pos.write(&index)?;
            stats.file_bytes = pos.at;

            let mut header = Vec::with_capacity(HEADER_BYTES);
            header.extend_from_slice(&MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            header.extend_from_slice(&DEFAULT_ALIGNMENT.to_le_bytes());
            for v in [HEADER_BYTES as u64, metadata.len() as u64, index_offset, index.len() as u64]
            {
                header.extend_from_slice(&v.to_le_bytes());
            }
            header.extend_from_slice(&data_offset.to_le_bytes());
            header.extend_from_slice(&self::crc(&header).to_le_bytes());
            header.extend_from_slice(&0u32.to_le_bytes());
            pos.w.seek(SeekFrom::Start(0))?;
            pos.w.write_all(&header)
        })();
        written.map_err(|e| Error::io(file.path(), e))?;
        file.commit()?;
        Ok(stats)
    }
}

/// `substitutes` by the name of the tensor each set stands for, checked: that tensor is the
/// model's, and no new name is one of the model's or given twice.
fn check_substitutes(
    model: &GgufModel,
    substitutes: Vec<(String, Vec<(String, QTensor)>)>,
) -> Result<HashMap<String, Vec<(String, QTensor)>>> {
    let mut names: HashSet<String> =
        model.gguf().tensors().iter().map(|t| t.name.clone()).collect();
    let mut by_name = HashMap::new();
    for (name, parts) in substitutes {
        if !model.has_tensor(&name) || by_name.contains_key(&name) {
            let detail = "no tensor of the model, or one substituted twice".to_string();
            return Err(Error::Replacement { name, detail });
        }
        for (part, _) in &parts {
            if !names.insert(part.clone()) {
                let detail = format!("substitute {part:?} has the name of another tensor");
                return Err(Error::Replacement { name, detail });
            }
        }
        by_name.insert(name, parts);
    }
    Ok(by_name)
}

/// The chunks of `tensor` as stored: raw, or compressed chunk by chunk, as byte planes if
/// that saves [`PLANES_GAIN`] of the stored bytes.
fn encode(tensor: &QTensor, compress: bool) -> (Transform, Vec<(Codec, Vec<u8>)>) {
    let chunks = tensor.bytes().chunks(chunk_bytes(tensor));
    if !compress {
        return (Transform::None, chunks.map(|raw| (Codec::Raw, raw.to_vec())).collect());
    }
    let compress = |raw: Vec<u8>| {
        let compressed = lz4_flex::compress(&raw);
        if compressed.len() < raw.len() {
            (Codec::Lz4, compressed)
        } else {
            (Codec::Raw, raw)
        }
    };
    let as_stored: Vec<_> = chunks.clone().map(|raw| compress(raw.to_vec())).collect();
    let block = tensor.ty().type_size();
    let as_planes: Vec<_> = chunks.map(|raw| compress(to_planes(raw, block))).collect();
    let size = |c: &[(Codec, Vec<u8>)]| c.iter().map(|(_, b)| b.len()).sum::<usize>() as f64;
    if size(&as_planes) <= size(&as_stored) * (1.0 - PLANES_GAIN) {
        (Transform::Planes, as_planes)
    } else {
        (Transform::None, as_stored)
    }
}

/// Raw bytes per chunk of `tensor`: as many whole rows as fit in [`CHUNK_BYTES`], so that a
/// streaming reader can take a large tensor a run of chunks, that is a run of rows, at a
/// time; and, where rows allow, a multiple of the alignment, so that the raw chunks of a
/// tensor lie back to back and a mapped file can lend them as one view. A row larger than a
/// chunk is cut.
fn chunk_bytes(tensor: &QTensor) -> usize {
    let row = tensor.bytes().len() / tensor.n_rows().max(1);
    if row == 0 || row > CHUNK_BYTES {
        return CHUNK_BYTES;
    }
    let alignment = DEFAULT_ALIGNMENT as usize;
    let aligned_rows = row / gcd(row, alignment) * alignment;
    let unit = if aligned_rows <= CHUNK_BYTES { aligned_rows } else { row };
    CHUNK_BYTES / unit * unit
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The metadata section: the GGUF file's pairs then `extra` (which replace pairs of the same
/// key), in GGUF's encoding, then their CRC-32.
fn encode_metadata(model: &GgufModel, extra: &[(String, Value)]) -> Result<Vec<u8>> {
    let replaced = |key: &str| extra.iter().any(|(k, _)| k == key);
    let pairs: Vec<(&str, &Value)> = model
        .metadata()
        .iter()
        .filter(|(key, _)| !replaced(key))
        .chain(extra.iter().map(|(k, v)| (k.as_str(), v)))
        .collect();
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u64).to_le_bytes());
    let mut total_values = 0;
    for (key, value) in pairs {
        check_string_len("metadata key", key)?;
        check_value(key, value, 0, &mut total_values)?;
        put_string(&mut out, key);
        out.extend_from_slice(&value.type_id().to_le_bytes());
        put_value(&mut out, value);
    }
    out.extend_from_slice(&crc(&out).to_le_bytes());
    Ok(out)
}

/// CRC-32 (IEEE) of `bytes`.
pub(super) fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// A writer and how many bytes have gone through it.
struct Position<'a, W> {
    w: &'a mut W,
    at: u64,
}

impl<W: Write> Position<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Writes zeros up to the next multiple of `alignment`; returns the new position.
    fn pad_to(&mut self, alignment: u64) -> io::Result<u64> {
        let pad = self.at.next_multiple_of(alignment) - self.at;
        self.write(&vec![0; pad as usize])?;
        Ok(self.at)
    }
}
