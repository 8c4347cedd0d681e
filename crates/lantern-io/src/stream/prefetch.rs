//! [`Stream`]: the prefetch thread that reads loads ahead of compute into a bounded pool of
//! slabs, and the handle compute takes them from.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lantern_core::{QTensor, TensorBytes};

use super::buffer::Buffer;
use super::chunks::{Fetched, Shared};
use super::plan::Load;
use crate::{Error, Result};

/// How often a prefetch thread waiting for a free slab looks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(20);

/// The loads of a streamed model, read in a cycle by a prefetch thread `depth` loads ahead
/// of compute. Made by [`StreamedContainer::stream`](super::StreamedContainer::stream).
///
/// Compute takes each load with [`Stream::take`], in order; a load's tensors live in a slab
/// that goes back to the pool when the last of them is dropped.
#[derive(Debug)]
pub struct Stream {
    shared: Arc<Shared>,
    loads: Arc<[Load]>,
    ready: Option<Receiver<Result<Loaded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    depth: usize,
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
        let stop = Arc::new(AtomicBool::new(false));
        // One slab is computed on while `depth` are filled or wait.
        let (ready_tx, ready) = mpsc::sync_channel(depth + 1);
        let prefetcher = Prefetcher::new(&shared, &loads, slab_bytes, depth + 1, ready_tx, &stop);
        let thread = std::thread::Builder::new()
            .name("lantern-prefetch".into())
            .spawn(move || prefetcher.run())
            .map_err(|e| Error::io(shared.file.path(), e))?;
        Ok(Self { shared, loads, ready: Some(ready), stop, thread: Some(thread), depth })
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
    pub fn take(&mut self, load: usize) -> Result<Loaded> {
        let ready = self.ready.as_ref().ok_or(Error::StreamStopped)?;
        let start = Instant::now();
        loop {
            let loaded = ready.recv().map_err(|_| Error::StreamStopped)??;
            if loaded.load == load {
                self.shared.counters.stalled(start.elapsed());
                return Ok(loaded);
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver frees the slabs it held and fails the thread's next send.
        self.ready.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
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

/// The prefetch thread's state.
struct Prefetcher {
    shared: Arc<Shared>,
    loads: Arc<[Load]>,
    free: Receiver<Buffer>,
    home: Sender<Buffer>,
    read_bufs: [Buffer; 2],
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
        let read_bytes = shared.read_buffer_bytes();
        let read_bufs = [0; 2].map(|_| Buffer::new(read_bytes, &shared.meter));
        Self {
            shared: Arc::clone(shared),
            loads: Arc::clone(loads),
            free,
            home,
            read_bufs,
            ready,
            stop: Arc::clone(stop),
        }
    }

    /// Reads the loads in a cycle until the stream is dropped or a read fails.
    fn run(mut self) {
        // Every chunk of a cycle, in order, with its load, piece and place in the slab.
        let order: Vec<(usize, usize, usize)> = self
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
        let result = self.cycle(&order);
        if let Err(e) = result {
            let _ = self.ready.send(Err(e));
        }
    }

    /// The loop of [`Prefetcher::run`]; returns `Ok` when told to stop.
    fn cycle(&mut self, order: &[(usize, usize, usize)]) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        // The device reads chunk `i + 1` while chunk `i` is checked and decoded.
        let mut pending = shared.fetch(order[0].2, &mut self.read_bufs[0])?;
        let mut slab: Option<Buffer> = None;
        let mut filled = 0; // bytes of the current piece decoded so far
        for i in 0.. {
            let (l, p, chunk) = order[i % order.len()];
            let load = &self.loads[l];
            let piece = &load.pieces[p];
            if slab.is_none() {
                let Some(free) = self.free_slab() else { return Ok(()) };
                slab = Some(free);
            }
            let next = order[(i + 1) % order.len()].2;
            let [now, ahead] = if i % 2 == 0 {
                let [a, b] = &mut self.read_bufs;
                [a, b]
            } else {
                let [a, b] = &mut self.read_bufs;
                [b, a]
            };
            let fetched: Fetched = std::mem::replace(&mut pending, shared.fetch(next, ahead)?);
            let raw = shared.container.chunks()[chunk].raw_bytes as usize;
            let Some(buf) = slab.as_mut() else { unreachable!("a slab was taken above") };
            let at = piece.at + filled;
            shared.finish(&fetched, now, &mut buf.as_mut_slice()[at..at + raw])?;
            filled += raw;
            if chunk + 1 == piece.chunks.end {
                filled = 0;
                if p + 1 == load.pieces.len() {
                    let Some(full) = slab.take() else { unreachable!("filled above") };
                    let loaded = self.loaded(l, full)?;
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

    /// The tensors of load `l`, views of `slab`.
    fn loaded(&self, l: usize, slab: Buffer) -> Result<Loaded> {
        let slab = TensorBytes::new(Arc::new(Slab { buf: Some(slab), home: self.home.clone() }));
        let tensors = self.loads[l]
            .pieces
            .iter()
            .map(|piece| {
                let entry = &self.shared.container.tensors()[piece.tensor];
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
}
