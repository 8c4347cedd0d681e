//! Shared, immutable tensor bytes that may live in a memory map or on the heap.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

use crate::{Error, Result};

/// A cheaply clonable view into bytes owned by someone else: a memory-mapped file, a buffer
/// read from disk, or a `Vec` built in memory.
///
/// The owner is kept alive as long as any view of it exists, so tensors can outlive the
/// reader that produced them.
#[derive(Clone)]
pub struct TensorBytes {
    owner: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
    /// How the owner gives memory back, if it can.
    pages: Option<Arc<dyn ReleasePages>>,
}

/// An owner of bytes that can give the memory behind some of them back to the system while
/// keeping them readable: a memory map, whose pages are read from the file again when
/// touched.
pub trait ReleasePages: Send + Sync {
    /// Gives back the memory of the whole pages within `range` (of the owner's bytes).
    fn release_pages(&self, range: Range<usize>);
}

impl TensorBytes {
    /// A view of all of `owner`'s bytes.
    pub fn new(owner: Arc<dyn AsRef<[u8]> + Send + Sync>) -> Self {
        let len = (*owner).as_ref().len();
        Self { owner, range: 0..len, pages: None }
    }

    /// A view of all of `owner`'s bytes, whose memory [`TensorBytes::release_pages`] can
    /// give back.
    pub fn releasable<T: AsRef<[u8]> + ReleasePages + 'static>(owner: Arc<T>) -> Self {
        let len = (*owner).as_ref().len();
        let pages: Arc<dyn ReleasePages> = owner.clone();
        Self { owner, range: 0..len, pages: Some(pages) }
    }

    /// Gives the memory behind these bytes back to the system where the owner can (whole
    /// pages of a memory map; nothing for bytes on the heap), for bytes that will rarely
    /// be read again, such as file rows a repacked copy replaces. The bytes stay readable:
    /// a later read brings the pages back from the file.
    pub fn release_pages(&self) {
        if let Some(pages) = &self.pages {
            pages.release_pages(self.range.clone());
        }
    }

    /// A view of a freshly built buffer.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self::new(Arc::new(bytes))
    }

    /// A fresh buffer of `len` bytes that starts on a cache line, zeroed, then filled by
    /// `fill`: for bytes that kernels read with wide loads.
    pub(crate) fn aligned(len: usize, fill: impl FnOnce(&mut [u8])) -> Self {
        let mut lines = vec![Line([0; 64]); len.div_ceil(64)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut lines);
        fill(&mut bytes[..len]);
        let owner = Arc::new(Aligned(lines));
        Self { owner, range: 0..len, pages: None }
    }

    /// A sub-view, `range` relative to this view.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when `range` does not lie within this view.
    pub fn slice(&self, range: Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::ShapeMismatch {
                op: "slice bytes",
                detail: format!("{range:?} outside 0..{}", self.len()),
            });
        }
        let start = self.range.start + range.start;
        let range = start..start + range.len();
        Ok(Self { owner: Arc::clone(&self.owner), range, pages: self.pages.clone() })
    }
}

/// One cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Line([u8; 64]);

/// Cache lines seen as bytes.
struct Aligned(Vec<Line>);

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

impl Deref for TensorBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &(*self.owner).as_ref()[self.range.clone()]
    }
}

impl fmt::Debug for TensorBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorBytes").field("range", &self.range).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_and_are_checked() {
        let bytes = TensorBytes::from_vec((0u8..10).collect());
        let mid = bytes.slice(2..8).unwrap();
        assert_eq!(&*mid, &[2, 3, 4, 5, 6, 7]);
        assert_eq!(&*mid.slice(1..3).unwrap(), &[3, 4]);
        assert!(mid.slice(4..7).is_err());
    }

    #[test]
    fn aligned_buffers_start_on_a_cache_line() {
        for len in [0, 1, 64, 100] {
            let bytes = TensorBytes::aligned(len, |b| b.fill(7));
            assert_eq!(bytes.len(), len);
            assert_eq!(bytes.as_ptr() as usize % 64, 0);
            assert!(bytes.iter().all(|&b| b == 7));
        }
    }
}
