//! [`ModelSource`]: the bytes of a model file, read into memory or memory-mapped.
//!
//! Either way the bytes end up behind a [`TensorBytes`], so tensors are zero-copy slices
//! that keep the buffer (or the mapping) alive for as long as they exist. Reading is safe
//! and costs the file's size in heap memory; mapping is an `unsafe` opt-in because the
//! program's memory then changes if someone else changes the file (see
//! [`ModelSource::mmap`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lantern_core::{ReleasePages, TensorBytes};

use crate::{Error, Result};

/// The bytes of a model file, with where they came from.
#[derive(Clone, Debug)]
pub struct ModelSource {
    bytes: TensorBytes,
    path: Option<PathBuf>,
    mapped: bool,
}

/// A read-only memory map, owned by the [`TensorBytes`] views of it.
struct MappedFile(memmap2::Mmap);

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl ReleasePages for MappedFile {
    /// Drops the whole pages within `range` from this process (`MADV_DONTNEED`): they stop
    /// counting in its resident memory, and a later read maps them again from the page
    /// cache or the file.
    fn release_pages(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        {
            let page = page_size();
            let start = range.start.next_multiple_of(page);
            let end = range.end.min(self.0.len()) / page * page;
            if start >= end {
                return;
            }
            // SAFETY: the mapping is read-only and backed by a file the caller of
            // `ModelSource::mmap` promised not to change, so dropping its pages loses
            // nothing: a later read maps the same bytes again. The range lies inside it.
            let advised = unsafe {
                self.0.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
            if let Err(e) = advised {
                tracing::debug!(error = %e, "madvise(DONTNEED) failed; the pages stay resident");
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

/// The system's page size.
#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

impl ModelSource {
    /// Reads the file at `path` into memory.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` if it cannot be read.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        tracing::debug!(path = %path.display(), bytes = bytes.len(), "read model file");
        Ok(Self { bytes: TensorBytes::from_vec(bytes), path: Some(path.to_owned()), mapped: false })
    }

    /// Memory-maps the file at `path` read-only, falling back to [`ModelSource::read`] if
    /// the mapping fails (as on some network or virtual file systems).
    ///
    /// Mapping makes opening instant and lets the OS share and evict the pages; only the
    /// tensors actually touched are read from disk.
    ///
    /// # Safety
    /// The file must not be modified or truncated while this source or any tensor sliced
    /// from it is alive. Another process writing the file changes memory that Rust assumes
    /// immutable (undefined behaviour), and truncating it makes accesses fault (`SIGBUS`).
    /// Model files are normally written once and then only read, which is what makes this
    /// trade worth offering.
    ///
    /// # Errors
    /// [`Error::Io`] naming `path` if it cannot be opened or read.
    pub unsafe fn mmap(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the mapping is read-only, and the caller guarantees (per this function's
        // contract) that the file is neither modified nor truncated while it is mapped.
        let mapped = unsafe { memmap2::MmapOptions::new().map(&file) };
        match mapped {
            Ok(map) => {
                tracing::debug!(path = %path.display(), bytes = map.len(), "mapped model file");
                Ok(Self {
                    bytes: TensorBytes::releasable(Arc::new(MappedFile(map))),
                    path: Some(path.to_owned()),
                    mapped: true,
                })
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "mmap failed; reading instead");
                Self::read(path)
            }
        }
    }

    /// A source over bytes already in memory, e.g. a file built by
    /// [`GgufWriter::to_bytes`](crate::GgufWriter::to_bytes).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Self { bytes: TensorBytes::from_vec(bytes), path: None, mapped: false }
    }

    /// The file's bytes; slice them with [`TensorBytes::slice`] to get tensor data.
    pub fn bytes(&self) -> &TensorBytes {
        &self.bytes
    }

    /// The file the bytes came from; `None` for [`ModelSource::from_vec`].
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the bytes are memory-mapped (rather than on the heap).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_and_mmap_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, b"hello model").unwrap();
        let read = ModelSource::read(&path).unwrap();
        // SAFETY: the file lives in a private temp dir and is not modified while mapped.
        let mapped = unsafe { ModelSource::mmap(&path) }.unwrap();
        assert_eq!(&**read.bytes(), &**mapped.bytes());
        assert!(!read.is_mapped());
        assert_eq!(mapped.path(), Some(path.as_path()));
        let missing = ModelSource::read(dir.path().join("nope"));
        assert!(matches!(missing, Err(Error::Io { ref path, .. }) if path.ends_with("nope")));
    }

    #[test]
    fn released_pages_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        let content: Vec<u8> = (0..5 * 4096 + 123).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        // SAFETY: the file lives in a private temp dir and is not modified while mapped.
        let mapped = unsafe { ModelSource::mmap(&path) }.unwrap();
        let bytes = mapped.bytes();
        // A range that starts and ends inside pages, then the whole file.
        bytes.slice(100..3 * 4096 + 5).unwrap().release_pages();
        assert_eq!(&**bytes, &content[..]);
        bytes.release_pages();
        assert_eq!(&**bytes, &content[..]);
        // Bytes on the heap have nothing to give back, and stay as they were.
        let read = ModelSource::read(&path).unwrap();
        read.bytes().release_pages();
        assert_eq!(&**read.bytes(), &content[..]);
    }
}
