//! [`StreamStats`]: what streaming has cost so far, and the counters behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters shared by the prefetch thread and the reader.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    bytes_read: AtomicU64,
    reads: AtomicU64,
    decode_ns: AtomicU64,
    device_wait_ns: AtomicU64,
    stall_ns: AtomicU64,
    loads: AtomicU64,
}

impl Counters {
    pub(crate) fn read(&self, bytes: u64, device_wait: Duration) {
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        self.reads.fetch_add(1, Ordering::Relaxed);
        add(&self.device_wait_ns, device_wait);
    }

    pub(crate) fn decoded(&self, time: Duration) {
        add(&self.decode_ns, time);
    }

    pub(crate) fn stalled(&self, time: Duration) {
        add(&self.stall_ns, time);
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, resident: u64, peak_resident: u64) -> StreamStats {
        let ns = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        StreamStats {
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            decode_time: ns(&self.decode_ns),
            device_wait: ns(&self.device_wait_ns),
            prefetch_stall: ns(&self.stall_ns),
            loads: self.loads.load(Ordering::Relaxed),
            resident_bytes: resident,
            peak_resident_bytes: peak_resident,
        }
    }
}

fn add(counter: &AtomicU64, time: Duration) {
    counter.fetch_add(time.as_nanos().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// What a streamed model has read and waited for since it opened. Subtract two snapshots
/// ([`StreamStats::since`]) for the cost of the tokens between them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Bytes read from storage (for `O_DIRECT`, whole pages).
    pub bytes_read: u64,
    /// Read requests.
    pub reads: u64,
    /// Time spent verifying checksums and decompressing.
    pub decode_time: Duration,
    /// Time the reading threads waited for the storage model to deliver.
    pub device_wait: Duration,
    /// Time compute waited for a load the prefetcher had not finished.
    pub prefetch_stall: Duration,
    /// Loads handed to compute.
    pub loads: u64,
    /// Weight bytes held now: pinned tensors, slabs and read buffers.
    pub resident_bytes: u64,
    /// The most weight bytes held at once.
    pub peak_resident_bytes: u64,
}

impl StreamStats {
    /// The counts and times from `earlier` to `self`; the resident figures are `self`'s.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            bytes_read: self.bytes_read - earlier.bytes_read,
            reads: self.reads - earlier.reads,
            decode_time: self.decode_time.saturating_sub(earlier.decode_time),
            device_wait: self.device_wait.saturating_sub(earlier.device_wait),
            prefetch_stall: self.prefetch_stall.saturating_sub(earlier.prefetch_stall),
            loads: self.loads - earlier.loads,
            ..*self
        }
    }
}
