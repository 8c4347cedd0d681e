//! [`ReadAt`]: where a streamed container's bytes come from, a file or the host's own
//! storage, and [`read_full`], which fills a buffer from it whatever each read returns.

use std::fmt;
use std::fs::File;
use std::io;

/// Random-access reads of a streamed container: a [`File`] by default, or storage the host
/// reads itself (an app bundle's asset, an encrypted store) through
/// [`StreamedContainer::open_from`](super::StreamedContainer::open_from).
///
/// Reads may come from several threads at once (the prefetch thread, and row lookups on
/// the caller's), and may return fewer bytes than asked; lantern asks again for the rest.
/// An error fails the pass that needed the bytes, and that pass only.
pub trait ReadAt: Send + Sync + fmt::Debug {
    /// Reads bytes at `offset` into `buf` and returns how many: at least one, unless
    /// `offset` is at or past the end.
    ///
    /// # Errors
    /// Whatever stops the read; [`io::ErrorKind::Interrupted`] is retried.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// The size in bytes.
    ///
    /// # Errors
    /// Whatever stops the storage from saying.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(self, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(self, buf, offset)
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = (buf, offset);
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// Fills `dst` from `offset` of `source` through as many reads as it takes; at least
/// `needed` bytes must arrive (the rest of `dst` may lie past the end).
///
/// # Errors
/// [`io::ErrorKind::UnexpectedEof`] if the source ends first; the source's own errors.
pub(crate) fn read_full(
    source: &dyn ReadAt,
    dst: &mut [u8],
    offset: u64,
    needed: usize,
) -> io::Result<()> {
    let mut done = 0;
    while done < needed {
        match source.read_at(&mut dst[done..], offset + done as u64) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n.min(dst.len() - done),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl<T: ReadAt + ?Sized> ReadAt for Box<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for std::sync::Arc<T> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        (**self).read_at(buf, offset)
    }

    fn size(&self) -> io::Result<u64> {
        (**self).size()
    }
}
