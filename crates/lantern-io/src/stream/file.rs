//! [`ChunkFile`]: reads of a container's chunks, past the page cache or through it
//! ([`ReadPath`]), or from the host's own [`ReadAt`].
//!
//! Direct reads open the file with `O_DIRECT` on Linux, so every read comes from the device
//! and none stays cached: a streamed model is measured as the device delivers it, not as RAM
//! does. Where `O_DIRECT` is refused (tmpfs, some network file systems) or does not exist,
//! reads are buffered, and on Unix each read range is dropped from the cache afterwards with
//! `posix_fadvise(DONTNEED)`.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::buffer::{Buffer, ALIGN};
use super::read_at::{read_full, ReadAt};
use crate::{Error, Result};

/// A container opened for chunk reads.
#[derive(Debug)]
pub(crate) struct ChunkFile {
    source: Source,
    /// The file's path, or the name the host gave its storage: for errors.
    path: PathBuf,
    len: u64,
    direct: bool,
    reads: ReadPath,
}

/// How a streamed container's chunks are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPath {
    /// Past the page cache: `O_DIRECT` where the file system allows it, else buffered reads
    /// dropped from the cache right after (`posix_fadvise(DONTNEED)`). The real device's
    /// speed, every pass.
    Direct,
    /// Through the page cache, which may hold the file. Under a [`StorageModel`] that is
    /// still the model's speed, since every read waits for its modelled transfer time; the
    /// cache only keeps the machine's own disk from slowing a faster simulated device.
    ///
    /// [`StorageModel`]: super::StorageModel
    Cached,
}

/// What a [`ChunkFile`] reads.
#[derive(Debug)]
enum Source {
    File(File),
    Host(Box<dyn ReadAt>),
}

impl Source {
    fn as_read_at(&self) -> &dyn ReadAt {
        match self {
            Self::File(file) => file,
            Self::Host(host) => host.as_ref(),
        }
    }
}

impl ChunkFile {
    pub(crate) fn open(path: &Path, reads: ReadPath) -> Result<Self> {
        let io = |e| Error::io(path, e);
        let direct = reads == ReadPath::Direct;
        let (file, direct) = match direct.then(|| open_direct(path)) {
            Some(Ok(file)) => (file, true),
            _ => (File::open(path).map_err(io)?, false),
        };
        let len = file.metadata().map_err(io)?.len();
        tracing::debug!(path = %path.display(), direct, "opened container for streaming");
        Ok(Self { source: Source::File(file), path: path.to_owned(), len, direct, reads })
    }

    /// Reads from the host's `source`, named `name` in errors.
    pub(crate) fn from_host(source: Box<dyn ReadAt>, name: PathBuf) -> Result<Self> {
        let len = source.size().map_err(|e| Error::io(&name, e))?;
        let reads = ReadPath::Cached;
        Ok(Self { source: Source::Host(source), path: name, len, direct: false, reads })
    }

    /// Size of the container in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// What chunks are read from.
    pub(crate) fn source(&self) -> &dyn ReadAt {
        self.source.as_read_at()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether reads bypass the page cache with `O_DIRECT`.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// The bytes a read of `len` bytes at `offset` moves from the device: with `O_DIRECT`,
    /// whole pages around the range.
    pub(crate) fn span(&self, offset: u64, len: u64) -> Range<u64> {
        if self.direct {
            let start = offset / ALIGN as u64 * ALIGN as u64;
            start
                ..(offset + len)
                    .next_multiple_of(ALIGN as u64)
                    .min(self.len.next_multiple_of(ALIGN as u64))
        } else {
            offset..offset + len
        }
    }

    /// Reads `len` bytes at `offset` into `buf`; returns where in `buf` they are. `buf` must
    /// hold [`ChunkFile::span`] of the range.
    pub(crate) fn read(&self, offset: u64, len: u64, buf: &mut Buffer) -> Result<Range<usize>> {
        let span = self.span(offset, len);
        let want = (span.end - span.start) as usize;
        if want > buf.len() {
            return Err(Error::io(
                &self.path,
                io::Error::other(format!("read of {want} bytes into a {}-byte buffer", buf.len())),
            ));
        }
        let dst = &mut buf.as_mut_slice()[..want];
        // With O_DIRECT the span may run past the end of the file to a page boundary.
        let needed = (offset + len - span.start) as usize;
        let read = read_full(self.source(), dst, span.start, needed);
        if let (Source::File(file), false, ReadPath::Direct) =
            (&self.source, self.direct, self.reads)
        {
            drop_cached(file, span.clone());
        }
        read.map_err(|e| Error::io(&self.path, e))?;
        let start = (offset - span.start) as usize;
        Ok(start..start + len as usize)
    }
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_: &Path) -> io::Result<File> {
    Err(io::ErrorKind::Unsupported.into())
}

/// Asks the OS to drop `range` of `file` from its page cache.
#[cfg(unix)]
fn drop_cached(file: &File, range: Range<u64>) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (range.start.try_into(), (range.end - range.start).try_into())
    else {
        return;
    };
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open for the
    // life of `file`. The advice is a hint, so its result is not needed.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), offset, len, libc::POSIX_FADV_DONTNEED);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file.as_raw_fd(), offset, len);
}

#[cfg(not(unix))]
fn drop_cached(_: &File, _: Range<u64>) {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stream::buffer::Meter;

    #[test]
    fn reads_any_range_whatever_the_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..3 * ALIGN + 123).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = ChunkFile::open(&path, ReadPath::Direct).unwrap();
        let mut buf = Buffer::new(4 * ALIGN, &Arc::new(Meter::default()));
        for (offset, len) in
            [(0, 10), (ALIGN, ALIGN), (100, 2 * ALIGN), (3 * ALIGN, 123), (5, 3 * ALIGN + 118)]
        {
            let at = file.read(offset as u64, len as u64, &mut buf).unwrap();
            assert_eq!(&buf.as_ref()[at], &bytes[offset..offset + len], "{offset} {len}");
        }
        let past_end = file.read(3 * ALIGN as u64, 200, &mut buf);
        assert!(matches!(past_end, Err(Error::Io { .. })));
    }
}
