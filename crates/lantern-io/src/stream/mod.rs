//! Streaming a `.lantern` container under a memory budget: for models larger than the
//! memory an app can spare.
//!
//! A [`StreamedContainer`] opens the file without mapping or reading its data: only the
//! header, metadata and index come into memory. Tensors that stay resident (norms, or the
//! embedding if the budget allows) are read once with [`StreamedContainer::read_tensor`].
//! The rest is read every pass by a [`Stream`]: a prefetch thread reads, verifies and
//! decompresses the next `depth` loads into a bounded pool of slabs while compute works on
//! the current one. Every read goes through a [`StorageModel`], so that any machine can
//! measure how a phone's flash would run the model; unthrottled, reads go past the page
//! cache ([`ReadPath`]).
//!
//! What is held is metered: [`StreamStats::peak_resident_bytes`] counts pinned tensors,
//! slabs, read buffers and what the caller declares ([`StreamedContainer::count_held`]),
//! and [`StreamedContainer::stream`] refuses a budget they cannot fit in, saying the
//! minimum.

mod buffer;
mod chunks;
mod file;
mod plan;
mod prefetch;
mod read_at;
mod stats;
mod storage;

pub use file::ReadPath;
pub use prefetch::{Loaded, Stream};
pub(crate) use read_at::read_full;
pub use read_at::ReadAt;
pub use stats::StreamStats;
pub use storage::StorageModel;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lantern_core::QTensor;

use self::buffer::{Buffer, Meter};
use self::chunks::{ChunkBuffers, Shared};
use self::file::ChunkFile;
use self::stats::Counters;
use self::storage::Device;
use crate::container::Container;
use crate::{Error, Metadata, Result};

/// A `.lantern` container opened for streaming. See the [module docs](self).
#[derive(Debug)]
pub struct StreamedContainer {
    shared: Arc<Shared>,
    /// Buffers of row lookups, made on first use: chunk buffers and one decoded chunk.
    rows: Mutex<Option<(ChunkBuffers, Buffer)>>,
}

/// How a [`Stream`] may use memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// Most weight bytes held at once: pinned tensors, slabs, read buffers and what the
    /// caller declares.
    pub budget: u64,
    /// Loads to read ahead of compute, at most; the budget may allow fewer.
    pub depth: usize,
    /// Whether to set aside, within the budget, the buffers of
    /// [`StreamedContainer::dequantize_rows`] (an embedding that is not pinned).
    pub row_lookups: bool,
}

impl StreamedContainer {
    /// Opens the container at `path` and reads its header, metadata and index; reads go
    /// through `storage`, [`ReadPath::Direct`] when it is unthrottled (the real device is
    /// what is measured) and [`ReadPath::Cached`] when it is throttled (the model is).
    ///
    /// # Errors
    /// [`Error::Io`] naming `path`, and the errors of [`Container::parse`].
    pub fn open(path: impl AsRef<Path>, storage: StorageModel) -> Result<Self> {
        let reads =
            if storage.bytes_per_second.is_none() { ReadPath::Direct } else { ReadPath::Cached };
        Self::open_with(path, storage, reads)
    }

    /// [`StreamedContainer::open`] with the read path chosen.
    ///
    /// # Errors
    /// As [`StreamedContainer::open`].
    pub fn open_with(
        path: impl AsRef<Path>,
        storage: StorageModel,
        reads: ReadPath,
    ) -> Result<Self> {
        let path = path.as_ref();
        // The header and index through the page cache (O_DIRECT wants aligned buffers); the
        // chunks past it.
        let index_file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let container = Container::read_from(&index_file, path)?;
        Ok(Self::new(container, ChunkFile::open(path, reads)?, storage))
    }

    /// Opens a container the host reads itself (an asset in an app bundle, an encrypted
    /// store): `source` gives its bytes, `name` names it in errors, and reads go through
    /// `storage` like those of a file. See [`ReadAt`].
    ///
    /// # Errors
    /// As [`StreamedContainer::open`], naming `name`.
    pub fn open_from(
        source: impl ReadAt + 'static,
        name: impl Into<PathBuf>,
        storage: StorageModel,
    ) -> Result<Self> {
        let name = name.into();
        let container = Container::read_from(&source, &name)?;
        Ok(Self::new(container, ChunkFile::from_host(Box::new(source), name)?, storage))
    }

    fn new(container: Container, file: ChunkFile, storage: StorageModel) -> Self {
        let mut chunk_tensor = vec![0; container.chunks().len()];
        for (t, entry) in container.tensors().iter().enumerate() {
            chunk_tensor[entry.chunks.clone()].fill(t);
        }
        let shared = Shared {
            chunk_tensor,
            file,
            container,
            device: Device::new(storage),
            counters: Counters::default(),
            meter: Arc::new(Meter::default()),
        };
        Self { shared: Arc::new(shared), rows: Mutex::new(None) }
    }

    /// The parsed header, metadata and index.
    pub fn container(&self) -> &Container {
        &self.shared.container
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        self.shared.container.metadata()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.shared.file.path()
    }

    /// Size of the container in bytes.
    pub fn container_bytes(&self) -> u64 {
        self.shared.file.len()
    }

    /// Whether chunks are read with `O_DIRECT`. [`ReadPath::Direct`] falls back to buffered
    /// reads dropped from the cache after each read where the file system refuses it.
    pub fn is_direct(&self) -> bool {
        self.shared.file.is_direct()
    }

    /// Reads the tensor `name` whole, to keep resident. Its bytes count as held for as
    /// long as it lives.
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; I/O, checksum and decoding errors naming the tensor.
    pub fn read_tensor(&self, name: &str) -> Result<QTensor> {
        let shared = &self.shared;
        let entry = shared
            .container
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor { name: name.to_owned() })?;
        let chunks = &shared.container.chunks()[entry.chunks.clone()];
        let mut data = Buffer::new(shared.container.raw_bytes(entry) as usize, &shared.meter);
        let mut bufs = shared.chunk_buffers();
        let mut at = 0;
        for (chunk, c) in entry.chunks.clone().zip(chunks) {
            let out = &mut data.as_mut_slice()[at..at + c.raw_bytes as usize];
            shared.read_chunk(chunk, &mut bufs, out)?;
            at += out.len();
        }
        let bytes = lantern_core::TensorBytes::new(Arc::new(data));
        QTensor::new(entry.ty, &entry.dims, bytes)
            .map_err(|source| Error::Tensor { name: name.to_owned(), source })
    }

    /// Dequantizes rows `rows` of the matrix `name` into `out`, one row of `out.len() /
    /// rows.len()` values each, reading each chunk that holds one of them once (an
    /// embedding lookup).
    ///
    /// # Errors
    /// [`Error::MissingTensor`]; a row out of range or an `out` of the wrong size as
    /// [`Error::Tensor`]; I/O, checksum and decoding errors naming the tensor.
    pub fn dequantize_rows(&self, name: &str, rows: &[u32], out: &mut [f32]) -> Result<()> {
        let shared = &self.shared;
        let entry = shared
            .container
            .tensor(name)
            .ok_or_else(|| Error::MissingTensor { name: name.to_owned() })?;
        let wrap = |source| Error::Tensor { name: name.to_owned(), source };
        let row_len = entry.dims[0];
        let n_rows: usize = entry.dims.iter().skip(1).product();
        let row_bytes = entry.ty.tensor_bytes(&[row_len]).map_err(wrap)?;
        if out.len() != rows.len() * row_len || rows.iter().any(|&r| r as usize >= n_rows) {
            return Err(wrap(lantern_core::Error::ShapeMismatch {
                op: "dequantize rows",
                detail: format!(
                    "{} rows of {row_len} into {} values, from a tensor of {n_rows} rows",
                    rows.len(),
                    out.len()
                ),
            }));
        }
        // Each row's chunk and its offset there, visited chunk by chunk.
        let chunks = &shared.container.chunks()[entry.chunks.clone()];
        let mut starts = Vec::with_capacity(chunks.len() + 1);
        starts.push(0u64);
        for c in chunks {
            starts.push(starts[starts.len() - 1] + c.raw_bytes);
        }
        let mut order: Vec<(usize, usize)> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| (starts.partition_point(|&s| s <= r as u64 * row_bytes as u64) - 1, i))
            .collect();
        order.sort_unstable();
        let mut guard = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        let (bufs, decoded) = guard.get_or_insert_with(|| self.row_buffers());
        let mut current = None;
        for (chunk, i) in order {
            let raw = chunks[chunk].raw_bytes as usize;
            if current != Some(chunk) {
                let global = entry.chunks.start + chunk;
                shared.read_chunk(global, bufs, &mut decoded.as_mut_slice()[..raw])?;
                current = Some(chunk);
            }
            let start = rows[i] as usize * row_bytes - starts[chunk] as usize;
            let Some(row) = decoded.as_ref().get(start..start + row_bytes) else {
                // A row cut by a chunk boundary: the file's writer did not keep rows whole.
                return Err(wrap(lantern_core::Error::ShapeMismatch {
                    op: "dequantize rows",
                    detail: format!("row {} spans two chunks", rows[i]),
                }));
            };
            lantern_core::dequantize_row(entry.ty, row, &mut out[i * row_len..(i + 1) * row_len])
                .map_err(wrap)?;
        }
        Ok(())
    }

    /// Chunk buffers and a buffer for the largest decoded chunk.
    fn row_buffers(&self) -> (ChunkBuffers, Buffer) {
        let shared = &self.shared;
        let largest = shared.container.chunks().iter().map(|c| c.raw_bytes).max().unwrap_or(0);
        (shared.chunk_buffers(), Buffer::new(largest as usize, &shared.meter))
    }

    /// Starts the prefetch thread over `units`, the tensors of each in order of use, read
    /// one unit (or one run of rows of a large tensor) per slab, in a cycle.
    ///
    /// # Errors
    /// [`Error::BudgetTooSmall`] with the minimum when even one slab does not fit beside
    /// what is already held; [`Error::MissingTensor`] for an unknown name.
    pub fn stream(&self, units: &[Vec<String>], config: StreamConfig) -> Result<Stream> {
        let (loads, slab) = plan::plan(&self.shared.container, units)?;
        if config.row_lookups {
            let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
            rows.get_or_insert_with(|| self.row_buffers());
        }
        let held = self.shared.meter.held();
        // Depth 0 reads into one slab through one reader's buffers; read-ahead takes a slab
        // per load ahead, the reading thread's buffers and the decoding thread's scratch.
        let minimum = held + self.slab_and_reader(slab);
        if config.budget < minimum {
            return Err(Error::BudgetTooSmall {
                budget: config.budget,
                minimum,
                detail: format!(
                    "{held} bytes held (pinned tensors, row lookup buffers), one slab and a \
                     reader's buffers ({} bytes)",
                    minimum - held
                ),
            });
        }
        let read_buffer = (self.shared.read_buffer_bytes() + buffer::ALIGN) as u64;
        let chunk_buffers = self.shared.chunk_buffers_bytes();
        let slab_held = (slab + buffer::ALIGN) as u64;
        let scratch = chunk_buffers - read_buffer;
        let prefetch = held + prefetch::READ_BUFFERS as u64 * read_buffer + scratch;
        let fits = config.budget.saturating_sub(prefetch) / slab_held;
        let depth =
            config.depth.min(fits.saturating_sub(1) as usize).min(loads.len().saturating_sub(1));
        tracing::debug!(loads = loads.len(), slab, depth, "starting the prefetch thread");
        Stream::start(Arc::clone(&self.shared), loads, slab, depth)
    }

    /// The least budget [`StreamedContainer::stream`] will accept for `units` once the
    /// tensors `pinned` are read with [`StreamedContainer::read_tensor`] and `extra` bytes
    /// are declared with [`StreamedContainer::count_held`], worked out from the index before
    /// anything is read: so that a budget too small is refused before it is overrun.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] for an unknown name.
    pub fn minimum_budget(
        &self,
        units: &[Vec<String>],
        pinned: &[&str],
        extra: u64,
        row_lookups: bool,
    ) -> Result<u64> {
        let (_, slab) = plan::plan(&self.shared.container, units)?;
        let container = &self.shared.container;
        let mut held = self.shared.meter.held() + extra;
        for name in pinned {
            let entry = container
                .tensor(name)
                .ok_or_else(|| Error::MissingTensor { name: (*name).to_owned() })?;
            held += container.raw_bytes(entry) + buffer::ALIGN as u64;
        }
        let rows_missing = self.rows.lock().unwrap_or_else(|e| e.into_inner()).is_none();
        if row_lookups && rows_missing {
            let largest = container.chunks().iter().map(|c| c.raw_bytes).max().unwrap_or(0);
            held += self.shared.chunk_buffers_bytes() + largest + buffer::ALIGN as u64;
        }
        Ok(held + self.slab_and_reader(slab))
    }

    /// Bytes of one slab of `slab` bytes and one reader's chunk buffers.
    fn slab_and_reader(&self, slab: usize) -> u64 {
        (slab + buffer::ALIGN) as u64 + self.shared.chunk_buffers_bytes()
    }

    /// Counts `bytes` of weights that the caller keeps in buffers of its own (norm gains
    /// converted to f32, say) as held from now on, in the budget and the statistics.
    pub fn count_held(&self, bytes: u64) {
        self.shared.meter.add(bytes);
    }

    /// What streaming has read, waited for and held so far.
    pub fn stats(&self) -> StreamStats {
        let meter = &self.shared.meter;
        self.shared.counters.snapshot(meter.held(), meter.peak())
    }
}
