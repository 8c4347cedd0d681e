//! Reading one chunk through the storage model, and checking and decoding it: the steps
//! that the prefetch thread, pinned tensors and row lookups share.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use super::buffer::{Buffer, Meter, ALIGN};
use super::file::ChunkFile;
use super::stats::Counters;
use super::storage::{wait_until, Device};
use crate::container::{decode_chunk, Container, Transform};
use crate::Result;

/// A container opened for streaming: its file, index, device and counters.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) file: ChunkFile,
    pub(crate) container: Container,
    pub(crate) device: Device,
    pub(crate) counters: Counters,
    pub(crate) meter: Arc<Meter>,
    /// The tensor each chunk belongs to.
    pub(crate) chunk_tensor: Vec<usize>,
}

/// A read buffer and a scratch buffer for byte planes: what a reader of one chunk at a
/// time needs.
#[derive(Debug)]
pub(crate) struct ChunkBuffers {
    read: Buffer,
    scratch: Buffer,
}

/// A chunk read from the device and not yet decoded: where its bytes sit in the read
/// buffer, and when the storage model delivers them.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) chunk: usize,
    pub(crate) bytes: Range<usize>,
    /// Bytes the device moved for it (whole pages, with `O_DIRECT`).
    pub(crate) moved: u64,
    pub(crate) ready_at: Instant,
}

impl Shared {
    /// Bytes a read buffer needs for any chunk.
    pub(crate) fn read_buffer_bytes(&self) -> usize {
        let chunks = self.container.chunks();
        let span = |c: &crate::container::Chunk| self.file.span(c.offset, c.stored_bytes);
        chunks.iter().map(|c| span(c).end - span(c).start).max().unwrap_or(0) as usize
    }

    /// Bytes of the scratch buffer that chunks stored as byte planes are decoded into
    /// before they are put back: none if no tensor is.
    pub(crate) fn scratch_bytes(&self) -> usize {
        let c = &self.container;
        let planes = c.tensors().iter().filter(|t| t.transform == Transform::Planes);
        let chunks = planes.flat_map(|t| &c.chunks()[t.chunks.clone()]);
        chunks.map(|c| c.raw_bytes as usize).max().unwrap_or(0)
    }

    /// Reads chunk `chunk` into `buf` and books its transfer on the device.
    pub(crate) fn fetch(&self, chunk: usize, buf: &mut Buffer) -> Result<Fetched> {
        let c = &self.container.chunks()[chunk];
        let span = self.file.span(c.offset, c.stored_bytes);
        let moved = span.end - span.start;
        let ready_at = self.device.book(moved);
        let bytes = self.file.read(c.offset, c.stored_bytes, buf)?;
        Ok(Fetched { chunk, bytes, moved, ready_at })
    }

    /// Waits until the storage model delivers `fetched`, and counts the read.
    pub(crate) fn arrive(&self, fetched: &Fetched) {
        let waited = wait_until(fetched.ready_at);
        self.counters.read(fetched.moved, waited);
    }

    /// Checks `fetched`, read into `buf`, and decodes it into `out`, its raw size, through
    /// `scratch` ([`Shared::scratch_bytes`]).
    pub(crate) fn decode(
        &self,
        fetched: &Fetched,
        buf: &Buffer,
        out: &mut [u8],
        scratch: &mut Buffer,
    ) -> Result<()> {
        let start = Instant::now();
        let tensor = &self.container.tensors()[self.chunk_tensor[fetched.chunk]];
        let stored = &buf.as_ref()[fetched.bytes.clone()];
        decode_chunk(&self.container, tensor, fetched.chunk, stored, out, scratch.as_mut_slice())?;
        self.counters.decoded(start.elapsed());
        Ok(())
    }

    /// The buffers one reader of single chunks needs.
    pub(crate) fn chunk_buffers(&self) -> ChunkBuffers {
        ChunkBuffers {
            read: Buffer::new(self.read_buffer_bytes(), &self.meter),
            scratch: Buffer::new(self.scratch_bytes(), &self.meter),
        }
    }

    /// Bytes that [`Shared::chunk_buffers`] holds.
    pub(crate) fn chunk_buffers_bytes(&self) -> u64 {
        (self.read_buffer_bytes() + self.scratch_bytes() + 2 * ALIGN) as u64
    }

    /// Reads, checks and decodes chunk `chunk` into `out` before returning.
    pub(crate) fn read_chunk(
        &self,
        chunk: usize,
        bufs: &mut ChunkBuffers,
        out: &mut [u8],
    ) -> Result<()> {
        let fetched = self.fetch(chunk, &mut bufs.read)?;
        self.arrive(&fetched);
        self.decode(&fetched, &bufs.read, out, &mut bufs.scratch)
    }
}
