//! [`Buffer`]: page-aligned heap bytes that count themselves in a [`Meter`], the running
//! total of weight bytes a streamed model holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Alignment of every buffer: a page, which `O_DIRECT` reads need and kernels are happy with.
pub(crate) const ALIGN: usize = 4096;

/// Weight bytes held now and at most so far.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    held: AtomicU64,
    peak: AtomicU64,
}

impl Meter {
    pub(crate) fn add(&self, bytes: u64) {
        let held = self.held.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(held, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

/// `len` zeroed bytes starting on a page boundary, counted in a [`Meter`] while they live.
pub(crate) struct Buffer {
    raw: Vec<u8>,
    start: usize,
    len: usize,
    meter: Arc<Meter>,
}

impl Buffer {
    pub(crate) fn new(len: usize, meter: &Arc<Meter>) -> Self {
        // Over-allocating by a page and starting at the first boundary keeps this safe code.
        let raw = vec![0; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        meter.add(raw.len() as u64);
        Self { raw, start, len, meter: Arc::clone(meter) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.meter.sub(self.raw.len() as u64);
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer").field("len", &self.len).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_and_metered() {
        let meter = Arc::new(Meter::default());
        let a = Buffer::new(10, &meter);
        let b = Buffer::new(5000, &meter);
        assert_eq!(a.as_ref().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.as_ref().len(), 5000);
        let both = meter.held();
        assert_eq!(both, (10 + 5000 + 2 * ALIGN) as u64);
        drop(a);
        assert_eq!(meter.held(), both - (10 + ALIGN) as u64);
        assert_eq!(meter.peak(), both);
    }
}
