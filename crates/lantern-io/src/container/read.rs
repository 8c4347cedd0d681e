//! Parsing a `.lantern` container: every offset, length and checksum is checked before use.

use std::collections::HashMap;

use lantern_core::{GgmlType, QTensor, TensorBytes};

use super::write::crc;
use super::{
    from_planes_into, Chunk, Codec, TensorEntry, Transform, ALIGNMENTS, HEADER_BYTES, MAGIC,
    MAX_CHUNK_RAW, NO_LAYER, VERSION,
};
use crate::gguf::reader::Cursor;
use crate::gguf::{read_metadata, MAX_DIMS, MAX_KV, MAX_TENSORS, MIN_KV_SIZE};
use crate::stream::{read_full, ReadAt};
use crate::{Error, Metadata, ModelFile, ModelSource, Result};

/// Most chunks accepted in one container.
const MAX_CHUNKS: u64 = 1 << 24;
/// How many times its stored size an LZ4 chunk can decode to: LZ4 spends at least one byte
/// per 255 bytes of a match. A larger claim is corrupt, and would make a small file ask for
/// a huge buffer.
const MAX_LZ4_RATIO: u64 = 256;
/// Bytes a chunk record takes in the index.
const CHUNK_RECORD: u64 = 8 + 8 + 8 + 4 + 4;
/// Bytes a tensor record takes in the index at least.
const MIN_TENSOR_RECORD: u64 = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8;

/// A parsed and validated container: metadata, tensors and chunks.
#[derive(Clone, Debug)]
pub struct Container {
    alignment: u64,
    metadata: Metadata,
    tensors: Vec<TensorEntry>,
    by_name: HashMap<String, usize>,
    chunks: Vec<Chunk>,
}

impl Container {
    /// Parses and checks the container in `bytes` (the whole file): header, metadata and
    /// index, their checksums, and that every chunk lies in the data section, aligned, in
    /// order, and that each tensor's chunks add up to its size. Chunk contents are checked
    /// when a tensor is read ([`ContainerModel::tensor`]).
    ///
    /// # Errors
    /// [`Error::NotContainer`], [`Error::UnsupportedContainerVersion`], [`Error::Truncated`],
    /// [`Error::Checksum`] naming the header, metadata or index, [`Error::Corrupt`] naming
    /// what does not fit, and the metadata errors of GGUF parsing.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let header = Header::parse(bytes, bytes.len() as u64)?;
        let metadata = section(bytes, header.meta, "metadata")?;
        let index = section(bytes, header.index, "index")?;
        header.with_sections(metadata, index)
    }

    /// Reads and checks the container in `file` as [`Container::parse`] does, reading only
    /// its header, metadata and index: what a streaming reader needs before any chunk.
    ///
    /// # Errors
    /// As [`Container::parse`], and [`Error::Io`] naming `path` if a read fails.
    pub fn read_from(source: &dyn ReadAt, path: &std::path::Path) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let file_len = source.size().map_err(io)?;
        let head_len = HEADER_BYTES.min(usize::try_from(file_len).unwrap_or(usize::MAX));
        let mut head = vec![0; head_len];
        read_full(source, &mut head, 0, head_len).map_err(io)?;
        let header = Header::parse(&head, file_len)?;
        let read = |(offset, len): (u64, u64), what: &str| -> Result<Vec<u8>> {
            // The header check placed every section inside the file, but a file (or a host's
            // storage) may claim more than memory holds.
            let too_large = || corrupt(what, format!("{len} bytes cannot be allocated"));
            let len = usize::try_from(len).map_err(|_| too_large())?;
            let mut bytes = Vec::new();
            bytes.try_reserve_exact(len).map_err(|_| too_large())?;
            bytes.resize(len, 0);
            read_full(source, &mut bytes, offset, len).map_err(io)?;
            Ok(bytes)
        };
        let metadata = read(header.meta, "metadata")?;
        let index = read(header.index, "index")?;
        header.with_sections(
            checked(&metadata, header.meta.1, "metadata")?,
            checked(&index, header.index.1, "index")?,
        )
    }

    /// The metadata: the GGUF file's pairs and lantern's own.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensors, in file order.
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// Every chunk, in file order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Bytes of `tensor` once decoded: its chunks' raw bytes.
    pub fn raw_bytes(&self, tensor: &TensorEntry) -> u64 {
        self.chunks[tensor.chunks.clone()].iter().map(|c| c.raw_bytes).sum()
    }

    /// The chunk alignment in bytes.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
}

/// The fixed header's fields, checked against each other and the file's length.
struct Header {
    alignment: u64,
    meta: (u64, u64),
    index: (u64, u64),
    data_offset: u64,
}

impl Header {
    /// Parses the header at the start of `bytes`, of a file `file_len` bytes long.
    fn parse(bytes: &[u8], file_len: u64) -> Result<Self> {
        let mut c = Cursor::new(bytes);
        let magic: [u8; 8] = c.fixed("magic")?;
        if magic != MAGIC {
            return Err(Error::NotContainer { found: magic });
        }
        let version = c.u32("version")?;
        if version != VERSION {
            return Err(Error::UnsupportedContainerVersion { version, supported: VERSION });
        }
        let alignment = u64::from(c.u32("alignment")?);
        let meta = (c.u64("metadata offset")?, c.u64("metadata length")?);
        let index = (c.u64("index offset")?, c.u64("index length")?);
        let data_offset = c.u64("data offset")?;
        let recorded = c.u32("header checksum")?;
        let computed = crc(&bytes[..HEADER_BYTES - 8]);
        if recorded != computed {
            return Err(Error::Checksum { what: "header".into(), recorded, computed });
        }
        if !ALIGNMENTS.contains(&alignment) || !alignment.is_power_of_two() {
            return Err(corrupt(
                "header",
                format!("alignment {alignment} is not a power of two in 64..=16777216"),
            ));
        }
        // The sections in order: header, metadata, data, index, up to the end of the file.
        let meta_end = meta.0.checked_add(meta.1);
        let index_end = index.0.checked_add(index.1);
        let in_place = meta.0 == HEADER_BYTES as u64
            && meta_end.and_then(|end| end.checked_next_multiple_of(alignment))
                == Some(data_offset)
            && data_offset <= index.0
            && index_end == Some(file_len);
        if !in_place {
            return Err(corrupt(
                "header",
                format!(
                    "sections out of place: metadata {meta:?}, data from {data_offset}, index \
                     {index:?}, in a {file_len}-byte file"
                ),
            ));
        }
        Ok(Self { alignment, meta, index, data_offset })
    }

    /// The container, from its checked metadata and index bodies.
    fn with_sections(&self, metadata: &[u8], index: &[u8]) -> Result<Container> {
        let metadata = parse_metadata(metadata)?;
        let (tensors, chunks) = parse_index(index, self.index.0, self.data_offset, self.alignment)?;
        let by_name = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Container { alignment: self.alignment, metadata, tensors, by_name, chunks })
    }
}

/// The body of a section the header placed within the file, its checksum verified.
fn section<'a>(bytes: &'a [u8], (offset, len): (u64, u64), what: &str) -> Result<&'a [u8]> {
    // The header check placed every section inside the file, whose length is a usize.
    let (start, end) = (offset as usize, (offset + len) as usize);
    let body = bytes.get(start..end).ok_or_else(|| corrupt(what, "outside the file".into()))?;
    checked(body, len, what)
}

/// A section's body without its trailing CRC-32, which must match.
fn checked<'a>(section: &'a [u8], len: u64, what: &str) -> Result<&'a [u8]> {
    let Some(split) = section.len().checked_sub(4) else {
        return Err(corrupt(what, format!("{len} bytes, too short for its checksum")));
    };
    let (body, tail) = section.split_at(split);
    let recorded = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc(body);
    if recorded != computed {
        return Err(Error::Checksum { what: what.into(), recorded, computed });
    }
    Ok(body)
}

fn parse_metadata(bytes: &[u8]) -> Result<Metadata> {
    let mut c = Cursor::new(bytes);
    let n = c.count("metadata key count", MAX_KV, MIN_KV_SIZE)?;
    let metadata = read_metadata(&mut c, n)?;
    if c.remaining() != 0 {
        return Err(corrupt("metadata", format!("{} bytes after the last pair", c.remaining())));
    }
    Ok(metadata)
}

fn parse_index(
    bytes: &[u8],
    index_offset: u64,
    data_offset: u64,
    alignment: u64,
) -> Result<(Vec<TensorEntry>, Vec<Chunk>)> {
    let mut c = Cursor::new(bytes);
    let n_tensors = c.count("tensor count", MAX_TENSORS, MIN_TENSOR_RECORD)?;
    let mut tensors = Vec::with_capacity(n_tensors);
    let mut names = HashMap::with_capacity(n_tensors);
    let mut chunk_ranges = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let ty = GgmlType::from_id(c.u32("tensor type")?)
            .map_err(|source| Error::Tensor { name: name.clone(), source })?;
        let n_dims = u64::from(c.u32("tensor dimension count")?);
        if !(1..=MAX_DIMS as u64).contains(&n_dims) {
            return Err(Error::TooManyDims { tensor: name, n_dims, max: MAX_DIMS as u64 });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = c.u64("tensor dimension")?;
            let d = usize::try_from(d).map_err(|_| corrupt(&name, format!("dimension {d}")))?;
            dims.push(d);
        }
        let layer = c.u32("tensor layer")?;
        let transform = c.u32("tensor transform")?;
        let Some(transform) = Transform::from_id(transform) else {
            return Err(corrupt(&name, format!("unknown transform {transform}")));
        };
        let range = (c.u64("first chunk")?, c.u64("chunk count")?);
        if names.insert(name.clone(), ()).is_some() {
            return Err(Error::Duplicate { what: "tensor name", name });
        }
        chunk_ranges.push(range);
        let layer = (layer != NO_LAYER).then_some(layer);
        tensors.push(TensorEntry { name, ty, dims, layer, transform, chunks: 0..0 });
    }
    let n_chunks = c.count("chunk count", MAX_CHUNKS, CHUNK_RECORD)?;
    let mut chunks = Vec::with_capacity(n_chunks);
    let mut end = data_offset;
    for i in 0..n_chunks {
        let chunk = Chunk {
            offset: c.u64("chunk offset")?,
            stored_bytes: c.u64("chunk length")?,
            raw_bytes: c.u64("chunk raw length")?,
            codec: {
                let id = c.u32("chunk codec")?;
                Codec::from_id(id)
                    .ok_or_else(|| corrupt(&format!("chunk {i}"), format!("unknown codec {id}")))?
            },
            crc: c.u32("chunk checksum")?,
        };
        let stored_end = chunk.offset.checked_add(chunk.stored_bytes);
        let fits = chunk.offset >= end
            && chunk.offset.is_multiple_of(alignment)
            && stored_end.is_some_and(|e| e <= index_offset)
            && chunk.raw_bytes <= MAX_CHUNK_RAW
            && match chunk.codec {
                Codec::Raw => chunk.stored_bytes == chunk.raw_bytes,
                Codec::Lz4 => chunk.raw_bytes <= chunk.stored_bytes.saturating_mul(MAX_LZ4_RATIO),
            };
        if !fits {
            return Err(corrupt(
                &format!("chunk {i}"),
                format!(
                    "{} stored bytes at offset {} ({} raw, {:?}) do not fit: data from {end}, \
                     index at {index_offset}, alignment {alignment}",
                    chunk.stored_bytes, chunk.offset, chunk.raw_bytes, chunk.codec
                ),
            ));
        }
        end = stored_end.unwrap_or(u64::MAX);
        chunks.push(chunk);
    }
    if c.remaining() != 0 {
        return Err(corrupt("index", format!("{} bytes after the last chunk", c.remaining())));
    }
    // Each tensor's chunks follow the previous tensor's, and together they are all chunks.
    let mut next = 0u64;
    for (t, (first, count)) in tensors.iter_mut().zip(chunk_ranges) {
        let last = first.checked_add(count).filter(|&l| first == next && l <= n_chunks as u64);
        let Some(last) = last else {
            return Err(corrupt(
                &t.name,
                format!("chunks {first}+{count} do not follow chunk {next} of {n_chunks}"),
            ));
        };
        t.chunks = first as usize..last as usize;
        next = last;
        let raw: u64 = chunks[t.chunks.clone()].iter().map(|c| c.raw_bytes).sum();
        let expected =
            t.ty.tensor_bytes(&t.dims)
                .map_err(|source| Error::Tensor { name: t.name.clone(), source })?;
        if raw != expected as u64 {
            return Err(corrupt(
                &t.name,
                format!("chunks hold {raw} bytes, the shape needs {expected}"),
            ));
        }
    }
    if next != n_chunks as u64 {
        return Err(corrupt("index", format!("chunks {next}..{n_chunks} belong to no tensor")));
    }
    Ok((tensors, chunks))
}

fn corrupt(what: &str, detail: String) -> Error {
    Error::Corrupt { what: what.to_owned(), detail }
}

/// A container's bytes and their parsed index, handing out tensors by name.
#[derive(Clone, Debug)]
pub struct ContainerModel {
    source: ModelSource,
    container: Container,
}

impl ContainerModel {
    /// Parses the container in `source`.
    ///
    /// # Errors
    /// As [`Container::parse`].
    pub fn open(source: ModelSource) -> Result<Self> {
        let container = Container::parse(source.bytes())?;
        Ok(Self { source, container })
    }

    /// The parsed container.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        self.container.metadata()
    }

    /// The bytes the container was parsed from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The tensor `name`, its chunks verified and decompressed. A tensor stored in raw
    /// chunks that lie back to back is a view of the source; others are decoded into memory.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; [`Error::Checksum`] naming the tensor and chunk whose bytes
    /// do not match their CRC-32; [`Error::Corrupt`] for a chunk that does not decompress to
    /// its size.
    pub fn tensor(&self, name: &str) -> Result<QTensor> {
        let entry = self
            .container
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor { name: name.to_owned() })?;
        let chunks = entry.chunks.clone();
        let bytes = self.source.bytes();
        // `parse` placed every chunk inside the file.
        let stored = |i: usize| {
            let c = &self.container.chunks[i];
            &bytes[c.offset as usize..(c.offset + c.stored_bytes) as usize]
        };
        let wrap = |source| Error::Tensor { name: name.to_owned(), source };
        let all = &self.container.chunks[chunks.clone()];
        let as_stored = entry.transform == Transform::None
            && all.iter().all(|c| c.codec == Codec::Raw)
            && all.windows(2).all(|w| w[0].offset + w[0].stored_bytes == w[1].offset);
        let data = match all {
            // Raw chunks back to back: a view of the source.
            [first, ..] if as_stored => {
                for (i, c) in chunks.clone().zip(all) {
                    check_crc(entry, i, c, stored(i))?;
                }
                let start = first.offset as usize;
                let len: u64 = all.iter().map(|c| c.stored_bytes).sum();
                bytes.slice(start..start + len as usize).map_err(wrap)?
            }
            all => {
                let total: u64 = all.iter().map(|c| c.raw_bytes).sum();
                let mut out = vec![0u8; total as usize];
                let planes = entry.transform == Transform::Planes;
                let largest = all.iter().map(|c| c.raw_bytes as usize).max().unwrap_or(0);
                let mut scratch = vec![0; if planes { largest } else { 0 }];
                let mut at = 0;
                for i in chunks {
                    let dst = &mut out[at..at + self.container.chunks[i].raw_bytes as usize];
                    decode_chunk(&self.container, entry, i, stored(i), dst, &mut scratch)?;
                    at += dst.len();
                }
                TensorBytes::from_vec(out)
            }
        };
        QTensor::new(entry.ty, &entry.dims, data).map_err(wrap)
    }
}

/// Checks chunk `chunk` of `tensor`, whose stored bytes are `stored`, and decodes it into
/// `out`, its raw size; `scratch`, at least as long, holds byte planes before they are put
/// back.
///
/// # Errors
/// [`Error::Checksum`] or [`Error::Corrupt`] naming the chunk and its tensor.
pub(crate) fn decode_chunk(
    container: &Container,
    tensor: &TensorEntry,
    chunk: usize,
    stored: &[u8],
    out: &mut [u8],
    scratch: &mut [u8],
) -> Result<()> {
    let c = &container.chunks[chunk];
    check_crc(tensor, chunk, c, stored)?;
    let decoded = match tensor.transform {
        Transform::None => &mut *out,
        Transform::Planes => &mut scratch[..out.len()],
    };
    match c.codec {
        Codec::Raw => decoded.copy_from_slice(stored),
        Codec::Lz4 => {
            let n = lz4_flex::decompress_into(stored, decoded)
                .map_err(|e| corrupt(&chunk_name(tensor, chunk), e.to_string()))?;
            if n != decoded.len() {
                let detail = format!("decompressed to {n} bytes, expected {}", decoded.len());
                return Err(corrupt(&chunk_name(tensor, chunk), detail));
            }
        }
    }
    if tensor.transform == Transform::Planes {
        from_planes_into(&scratch[..out.len()], tensor.ty.type_size(), out);
    }
    Ok(())
}

fn check_crc(tensor: &TensorEntry, chunk: usize, c: &Chunk, stored: &[u8]) -> Result<()> {
    let (recorded, computed) = (c.crc, crc(stored));
    if recorded != computed {
        return Err(Error::Checksum { what: chunk_name(tensor, chunk), recorded, computed });
    }
    Ok(())
}

/// "chunk 2 of tensor \"blk.0.ffn_up.weight\"": a chunk as an error names it.
fn chunk_name(tensor: &TensorEntry, chunk: usize) -> String {
    format!("chunk {} of tensor {:?}", chunk - tensor.chunks.start, tensor.name)
}

impl ModelFile for ContainerModel {
    fn metadata(&self) -> &Metadata {
        ContainerModel::metadata(self)
    }

    fn tensor(&self, name: &str) -> Result<QTensor> {
        ContainerModel::tensor(self, name)
    }

    fn has_tensor(&self, name: &str) -> bool {
        self.container.tensor(name).is_some()
    }

    fn source(&self) -> &ModelSource {
        ContainerModel::source(self)
    }
}
