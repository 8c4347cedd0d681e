//! [`Stream`]: the prefetch thread that reads loads ahead of compute into a bounded pool of
//! slabs, and the handle compute takes them from; or, with no read-ahead, the reads that
//! compute makes itself.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lantern_core::{QTensor, TensorBytes};

use super::buffer::Buffer;
use super::chunks::{ChunkBuffers, Fetched, Shared};
use super::plan::Load;
use crate::{Error, Result};

/// How often a prefetch thread waiting for a free slab looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The loads of a streamed model, read in a cycle by a prefetch thread `depth` loads ahead
/// of compute, or at depth 0 when compute asks for them. Made by
/// [`StreamedContainer::stream`](super::StreamedContainer::stream).
///
/// Compute takes each load with [`Stream::take`], in order; a load's tensors live in a slab
/// that goes back to the pool when the last of them is dropped.
#[derive(Debug)]
pub struct Stream {
    shared: Arc<Shared>,
    loads: Arc<[Load]>,
    depth: usize,
    source: Source,
}

/// Where [`Stream::take`] gets a load.
#[derive(Debug)]
enum Source {
    /// From the prefetch thread.
    Prefetch {
        ready: Option<Receiver<Result<Loaded>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    },
    /// From reads made then, into the one slab.
    OnDemand { free: Receiver<Buffer>, home: Sender<Buffer>, bufs: ChunkBuffers },
}

/// One load's tensors, views of one slab, in the order the unit named them. A piece of a
/// tensor cut into runs of rows has its `rows` of the whole.
#[derive(Debug)]
pub struct Loaded {
    load: usize,
    /// The tensors, each with the rows of the whole tensor it holds.
    pub tensors: Vec<(QTensor, Range<usize>)>,
}

impl Stream {
    pub(crate) fn start(
        shared: Arc<Shared>,
        loads: Vec<Load>,
        slab_bytes: usize,
        depth: usize,
    ) -> Result<Self> {
        let loads: Arc<[Load]> = loads.into();
        if depth == 0 {
            let (home, free) = mpsc::channel();
            let _ = home.send(Buffer::new(slab_bytes, &shared.meter));
            let bufs = shared.chunk_buffers();
            let source = Source::OnDemand { free, home, bufs };
            return Ok(Self { shared, loads, depth, source });
        }
        let stop = Arc::new(AtomicBool::new(false));
        // One slab is computed on while `depth` are filled or wait.
        let (ready_tx, ready) = mpsc::sync_channel(depth + 1);
        let prefetcher = Prefetcher::new(&shared, &loads, slab_bytes, depth + 1, ready_tx, &stop);
        let thread = std::thread::Builder::new()
            .name("lantern-prefetch".into())
            .spawn(move || prefetcher.run())
            .map_err(|e| Error::io(shared.file.path(), e))?;
        let source = Source::Prefetch { ready: Some(ready), stop, thread: Some(thread) };
        Ok(Self { shared, loads, depth, source })
    }

    /// Loads read ahead of the one being computed.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The loads that bring unit `unit`: one, or several runs of rows of a tensor too large
    /// for a slab. Loads are numbered in order across units.
    pub fn loads_of(&self, unit: usize) -> Range<usize> {
        let start = self.loads.partition_point(|l| l.unit < unit);
        let end = self.loads.partition_point(|l| l.unit <= unit);
        start..end
    }

    /// Waits for load `load` and returns it. Loads before it in the cycle that were read
    /// but not taken are dropped, so a pass cut short by an error realigns itself.
    ///
    /// # Errors
    /// What the prefetch thread found reading (a checksum mismatch naming the tensor, an
    /// I/O error), then [`Error::StreamStopped`].
    ///
    /// At depth 0 the load is read now, and the previous one must have been dropped.
    pub fn take(&mut self, load: usize) -> Result<Loaded> {
        let start = Instant::now();
        let loaded = match &mut self.source {
            Source::Prefetch { ready, .. } => {
                let ready = ready.as_ref().ok_or(Error::StreamStopped)?;
                loop {
                    let loaded = ready.recv().map_err(|_| Error::StreamStopped)??;
                    if loaded.load == load {
                        break loaded;
                    }
                }
            }
            Source::OnDemand { free, home, bufs } => {
                let mut slab = free.try_recv().map_err(|_| Error::InvalidSetting {
                    name: "stream depth",
                    reason: "at depth 0 a load must be dropped before the next is taken".into(),
                })?;
                let shared = &self.shared;
                let mut read = || {
                    for piece in &self.loads[load].pieces {
                        let mut at = piece.at;
                        for chunk in piece.chunks.clone() {
                            let raw = shared.container.chunks()[chunk].raw_bytes as usize;
                            let out = &mut slab.as_mut_slice()[at..at + raw];
                            shared.read_chunk(chunk, bufs, out)?;
                            at += raw;
                        }
                    }
                    Ok(())
                };
                if let Err(e) = read() {
                    // The slab goes back for the next pass, as a taken load's would.
                    let _ = home.send(slab);
                    return Err(e);
                }
                loaded(shared, &self.loads, load, slab, home)?
            }
        };
        let stall = start.elapsed();
        self.shared.counters.stalled(stall);
        tracing::trace!(load, stall_us = stall.as_micros() as u64, "load taken");
        Ok(loaded)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Source::Prefetch { ready, stop, thread } = &mut self.source {
            stop.store(true, Ordering::Relaxed);
            // Dropping the receiver frees the slabs it held and fails the thread's next send.
            ready.take();
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// A slab of the pool: it goes home when the last tensor viewing it is dropped.
struct Slab {
    buf: Option<Buffer>,
    home: Sender<Buffer>,
}

impl AsRef<[u8]> for Slab {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], Buffer::as_ref)
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let _ = self.home.send(buf);
        }
    }
}

/// Reads the storage model keeps in flight: the next is queued while one transfers, so that
/// the modelled device never idles between two requests.
const QUEUE_DEPTH: usize = 2;

/// Read buffers between the reading and the decoding thread: those in flight, one read and
/// waiting, one being decoded.
pub(crate) const READ_BUFFERS: usize = QUEUE_DEPTH + 2;

/// A chunk read into its buffer, from the reading thread to the decoding one.
type Arrived = Result<(Buffer, Fetched)>;

/// The prefetch thread's state.
struct Prefetcher {
    shared: Arc<Shared>,
    loads: Arc<[Load]>,
    free: Receiver<Buffer>,
    home: Sender<Buffer>,
    ready: SyncSender<Result<Loaded>>,
    stop: Arc<AtomicBool>,
}

impl Prefetcher {
    fn new(
        shared: &Arc<Shared>,
        loads: &Arc<[Load]>,
        slab_bytes: usize,
        slabs: usize,
        ready: SyncSender<Result<Loaded>>,
        stop: &Arc<AtomicBool>,
    ) -> Self {
        let (home, free) = mpsc::channel();
        for _ in 0..slabs {
            let _ = home.send(Buffer::new(slab_bytes, &shared.meter));
        }
        Self {
            shared: Arc::clone(shared),
            loads: Arc::clone(loads),
            free,
            home,
            ready,
            stop: Arc::clone(stop),
        }
    }

    /// Decodes the loads in a cycle until the stream is dropped or a read fails, while a
    /// second thread reads the chunks ahead: the device works while this thread checks and
    /// decompresses.
    fn run(self) {
        // Every chunk of a cycle, in order, with its load and piece.
        let order: Arc<[(usize, usize, usize)]> = self
            .loads
            .iter()
            .enumerate()
            .flat_map(|(l, load)| {
                load.pieces.iter().enumerate().flat_map(move |(p, piece)| {
                    piece.chunks.clone().map(move |chunk| (l, p, chunk))
                })
            })
            .collect();
        if order.is_empty() {
            return;
        }
        let (empty, empty_rx) = mpsc::channel();
        let read_bytes = self.shared.read_buffer_bytes();
        for _ in 0..READ_BUFFERS {
            let _ = empty.send(Buffer::new(read_bytes, &self.shared.meter));
        }
        let (arrived_tx, arrived) = mpsc::sync_channel(READ_BUFFERS);
        let (shared, chunks) = (Arc::clone(&self.shared), Arc::clone(&order));
        let reader = std::thread::Builder::new()
            .name("lantern-read".into())
            .spawn(move || read_ahead(&shared, &chunks, &empty_rx, &arrived_tx));
        let reader = match reader {
            Ok(reader) => reader,
            Err(e) => {
                let _ = self.ready.send(Err(Error::io(self.shared.file.path(), e)));
                return;
            }
        };
        if let Err(e) = self.decode(&order, &arrived, &empty) {
            let _ = self.ready.send(Err(e));
        }
        // Without its channels the reading thread ends at its next send or receive.
        drop((arrived, empty));
        let _ = reader.join();
    }

    /// The decoding loop of [`Prefetcher::run`]; returns `Ok` when told to stop.
    fn decode(
        &self,
        order: &[(usize, usize, usize)],
        arrived: &Receiver<Arrived>,
        empty: &Sender<Buffer>,
    ) -> Result<()> {
        let mut slab: Option<Buffer> = None;
        let mut scratch = Buffer::new(self.shared.scratch_bytes(), &self.shared.meter);
        let mut filled = 0; // bytes of the current piece decoded so far
        for &(l, p, chunk) in order.iter().cycle() {
            let load = &self.loads[l];
            let piece = &load.pieces[p];
            let buf = match &mut slab {
                Some(buf) => buf,
                empty_slot => match self.free_slab() {
                    Some(free) => empty_slot.insert(free),
                    None => return Ok(()),
                },
            };
            let Ok(next) = arrived.recv() else { return Ok(()) };
            let (read_buf, fetched) = next?;
            let raw = self.shared.container.chunks()[chunk].raw_bytes as usize;
            let at = piece.at + filled;
            let out = &mut buf.as_mut_slice()[at..at + raw];
            self.shared.decode(&fetched, &read_buf, out, &mut scratch)?;
            let _ = empty.send(read_buf);
            filled += raw;
            if chunk + 1 == piece.chunks.end {
                filled = 0;
                if p + 1 == load.pieces.len() {
                    let Some(full) = slab.take() else { unreachable!("filled above") };
                    let loaded = loaded(&self.shared, &self.loads, l, full, &self.home)?;
                    if self.ready.send(Ok(loaded)).is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// A free slab, waiting for one; `None` when the stream is being dropped.
    fn free_slab(&self) -> Option<Buffer> {
        loop {
            match self.free.recv_timeout(STOP_POLL) {
                Ok(buf) => return Some(buf),
                Err(RecvTimeoutError::Timeout) if !self.stop.load(Ordering::Relaxed) => {}
                Err(_) => return None,
            }
        }
    }
}

/// The reading thread: reads `order`'s chunks in a cycle into free buffers, each delivered
/// when the storage model says it arrives, until the decoding thread goes away.
fn read_ahead(
    shared: &Shared,
    order: &[(usize, usize, usize)],
    empty: &Receiver<Buffer>,
    arrived: &SyncSender<Arrived>,
) {
    let mut in_flight = VecDeque::with_capacity(QUEUE_DEPTH);
    for &(_, _, chunk) in order.iter().cycle() {
        let Ok(mut buf) = empty.recv() else { return };
        match shared.fetch(chunk, &mut buf) {
            Ok(fetched) => in_flight.push_back((buf, fetched)),
            Err(e) => {
                let _ = arrived.send(Err(e));
                return;
            }
        }
        if in_flight.len() == QUEUE_DEPTH {
            let Some((buf, fetched)) = in_flight.pop_front() else { return };
            shared.arrive(&fetched);
            if arrived.send(Ok((buf, fetched))).is_err() {
                return;
            }
        }
    }
}

/// The tensors of load `l`, views of `slab`, which goes `home` once they are all dropped.
fn loaded(
    shared: &Shared,
    loads: &[Load],
    l: usize,
    slab: Buffer,
    home: &Sender<Buffer>,
) -> Result<Loaded> {
    let slab = TensorBytes::new(Arc::new(Slab { buf: Some(slab), home: home.clone() }));
    let tensors = loads[l]
        .pieces
        .iter()
        .map(|piece| {
            let entry = &shared.container.tensors()[piece.tensor];
            let wrap = |source| Error::Tensor { name: entry.name.clone(), source };
            let bytes = slab.slice(piece.at..piece.at + piece.bytes).map_err(wrap)?;
            let whole = entry.dims.iter().skip(1).product::<usize>();
            let dims = if piece.rows.len() == whole {
                entry.dims.clone()
            } else {
                vec![entry.dims[0], piece.rows.len()]
            };
            let tensor = QTensor::new(entry.ty, &dims, bytes).map_err(wrap)?;
            Ok((tensor, piece.rows.clone()))
        })
        .collect::<Result<_>>()?;
    Ok(Loaded { load: l, tensors })
}
