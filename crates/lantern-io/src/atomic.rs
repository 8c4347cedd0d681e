//! Files written whole or not at all: [`AtomicFile`] and [`write_atomic`]. The contract
//! (what is refused, how links are followed, which permissions a file gets) is documented
//! on [`AtomicFile`], where users of the crate see it.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// Symbolic links followed before giving up, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// Attempts at a fresh temporary name when one is taken (a stray file of a crashed run).
const NAME_ATTEMPTS: usize = 8;

/// What a destination is when it is not a regular file (see [`Error::NotRegularFile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A directory.
    Directory,
    /// A character device, such as `/dev/null`.
    CharDevice,
    /// A block device, such as a disk.
    BlockDevice,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A symbolic link (found where a link had just been followed to a file).
    Symlink,
    /// Anything else that is not a regular file.
    Other,
}

impl FileKind {
    /// The kind of `ty`, or `None` for a regular file.
    fn of(ty: fs::FileType) -> Option<Self> {
        if ty.is_file() {
            return None;
        }
        if ty.is_dir() {
            return Some(Self::Directory);
        }
        if ty.is_symlink() {
            return Some(Self::Symlink);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt as _;
            if ty.is_char_device() {
                return Some(Self::CharDevice);
            }
            if ty.is_block_device() {
                return Some(Self::BlockDevice);
            }
            if ty.is_fifo() {
                return Some(Self::Fifo);
            }
            if ty.is_socket() {
                return Some(Self::Socket);
            }
        }
        Some(Self::Other)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Directory => "a directory",
            Self::CharDevice => "a character device",
            Self::BlockDevice => "a block device",
            Self::Fifo => "a FIFO",
            Self::Socket => "a socket",
            Self::Symlink => "a symbolic link",
            Self::Other => "a special file",
        })
    }
}

/// A file written whole or not at all: a temporary file that [`AtomicFile::commit`] renames
/// over the destination, and that dropping the `AtomicFile` without committing removes.
///
/// The temporary file is created in the destination's directory (so on the same file
/// system), flushed to disk at the commit and renamed over the destination; the directory is
/// flushed after the rename where the platform allows. A reader sees the old file or the new
/// one, never half of either, and a write that fails or is dropped leaves the destination as
/// it was. A crash can leave a stray `.<name>.<pid>.<n>.tmp` beside the destination, never a
/// partial destination. Writes are buffered; [`Seek`] flushes the buffer first, so a writer
/// can go back and fill in a header.
///
/// # What may be replaced
/// The destination is looked at with [`std::fs::symlink_metadata`] before anything is
/// written:
/// - nothing there, or a regular file: it is written;
/// - a directory, a character or block device, a FIFO, a socket: refused with
///   [`Error::NotRegularFile`], whoever runs the process (root included), before a temporary
///   file exists;
/// - a symbolic link: followed, through up to 40 links (more, or a cycle, is
///   [`Error::SymlinkLoop`]), and what it leads to is judged by the rules above. The file
///   behind the link is replaced and the link stays a link. A link to nothing creates the
///   file it names, as [`File::create`] would, if that file's directory exists. The link
///   itself is never replaced.
///
/// The check is made again just before the rename, so a directory or device that appeared
/// while a long file was being written is not replaced either. (No portable rename refuses
/// to replace a special file, so one put there between that check and the rename still is.)
///
/// # Permissions
/// On Unix:
/// - a new file gets the mode [`File::create`] would give it: `0o666` less the process
///   umask (not the `0o600` of a typical temporary file);
/// - a regular file being replaced keeps its permission bits (read, write and execute for
///   owner, group and others). The set-user-ID, set-group-ID and sticky bits are dropped,
///   since the new file belongs to whoever writes it. The temporary file is never more open
///   than the file it replaces: it is created `0o600` and given the kept bits before the
///   first byte is written.
///
/// The rename puts a new file under the name: its owner is the writing user, extended
/// attributes are not copied, and other hard links to the old file keep the old bytes. On
/// other platforms a file gets the platform's defaults and nothing is copied.
///
/// # Example
/// ```
/// use std::io::{Seek, SeekFrom, Write};
/// use lantern_io::AtomicFile;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("out.bin");
/// let mut file = AtomicFile::create(&path)?;
/// file.write_all(b"????-body")?;
/// file.seek(SeekFrom::Start(0))?;
/// file.write_all(b"head")?;
/// assert!(!path.exists()); // nothing under the name until the commit
/// file.commit()?;
/// assert_eq!(std::fs::read(&path)?, b"head-body");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    /// The temporary file, buffered. Declared first so that on drop it is closed before
    /// `temp` removes it.
    writer: BufWriter<File>,
    /// Removes the temporary file unless the commit renamed it.
    temp: TempPath,
    /// The path the caller gave.
    given: PathBuf,
    /// The file replaced: `given` with symbolic links followed.
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path`: checks what is there, then creates the temporary file beside
    /// the file to replace.
    ///
    /// # Errors
    /// - [`Error::NotRegularFile`] when `path` is, or links to, a directory, a device, a
    ///   FIFO or a socket;
    /// - [`Error::SymlinkLoop`] when following links from `path` does not end;
    /// - [`Error::Io`] naming the path that could not be examined, or the directory the
    ///   temporary file could not be created in (it is missing, or not writable).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (target, existing) = resolve(path)?;
        let Some(name) = target.file_name() else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "path has no file name");
            return Err(Error::io(path, e));
        };
        let (file, temp) = create_temp(parent_dir(&target), name, existing.as_ref())?;
        Ok(Self { writer: BufWriter::new(file), temp, given: path.to_path_buf(), target })
    }

    /// The file this replaces or creates: the path given, with symbolic links followed. The
    /// path to name in an error about writing.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Flushes the file to disk and renames it over the destination, then flushes the
    /// directory where the platform allows (a failure there is only traced: the file is in
    /// place, and the rename may not survive a power cut).
    ///
    /// # Errors
    /// [`Error::NotRegularFile`] when a directory or special file took the destination's
    /// place while the file was written, and [`Error::Io`] naming the destination when
    /// flushing or the rename fails. In every case the temporary file is removed and the
    /// destination is left as it was.
    pub fn commit(self) -> Result<()> {
        let Self { writer, mut temp, given, target } = self;
        let file = writer.into_inner().map_err(|e| Error::io(&target, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&target, e))?;
        drop(file);
        if let Some(kind) = kind_at(&target)? {
            return Err(refused(given, target, kind));
        }
        fs::rename(&temp.path, &target).map_err(|e| Error::io(&target, e))?;
        temp.renamed = true;
        sync_dir(parent_dir(&target));
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Seek for AtomicFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.writer.seek(pos)
    }
}

/// Writes `bytes` to `path` with an [`AtomicFile`]: the whole file or nothing, refusing
/// directories, devices, FIFOs and sockets, writing through symbolic links, keeping the
/// permissions of a file it replaces. See [`AtomicFile`] for the details.
///
/// # Errors
/// As [`AtomicFile::create`] and [`AtomicFile::commit`], and [`Error::Io`] naming the
/// destination when writing fails.
///
/// # Example
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("notes.txt");
/// lantern_io::write_atomic(&path, b"first")?;
/// lantern_io::write_atomic(&path, b"second")?;
/// assert_eq!(std::fs::read(&path)?, b"second");
///
/// // A device is refused before anything is written, whoever runs this.
/// # #[cfg(unix)]
/// assert!(matches!(
///     lantern_io::write_atomic("/dev/null", b""),
///     Err(lantern_io::Error::NotRegularFile { kind: lantern_io::FileKind::CharDevice, .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes).map_err(|e| Error::io(file.path(), e))?;
    file.commit()
}

/// A temporary file's path, removed on drop unless it was renamed.
#[derive(Debug)]
struct TempPath {
    path: PathBuf,
    renamed: bool,
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.renamed {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::debug!(path = %self.path.display(), error = %e, "could not remove temporary file");
            }
        }
    }
}

/// Follows symbolic links from `path` to the file to write, with that file's metadata if
/// it is a regular file and `None` if nothing is there.
fn resolve(path: &Path) -> Result<(PathBuf, Option<fs::Metadata>)> {
    let mut target = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let meta = match fs::symlink_metadata(&target) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((target, None)),
            Err(e) => return Err(Error::io(target, e)),
        };
        match FileKind::of(meta.file_type()) {
            None => return Ok((target, Some(meta))),
            Some(FileKind::Symlink) => {
                let link = fs::read_link(&target).map_err(|e| Error::io(&target, e))?;
                // A relative link is relative to the directory holding it; an absolute one
                // replaces the whole path in `join`.
                target = match target.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            Some(kind) => return Err(refused(path.to_path_buf(), target, kind)),
        }
    }
    Err(Error::SymlinkLoop { path: path.to_path_buf() })
}

/// What is at `path` when it is neither a regular file nor nothing.
fn kind_at(path: &Path) -> Result<Option<FileKind>> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(FileKind::of(meta.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn refused(path: PathBuf, target: PathBuf, kind: FileKind) -> Error {
    Error::NotRegularFile { path, target, kind }
}

/// The directory holding `path`, `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates a fresh temporary file in `dir` for the file `name`, with the permissions of
/// `existing` (the file it will replace) or, for a new file, those `File::create` gives.
fn create_temp(
    dir: &Path,
    name: &OsStr,
    existing: Option<&fs::Metadata>,
) -> Result<(File, TempPath)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // A shortened name keeps the temporary name within the usual 255-byte limit.
    let stem: String = name.to_string_lossy().chars().take(48).collect();
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if existing.is_some() {
        // Private until the kept permissions are set, which happens before any write.
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut attempt = 0;
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
        match options.open(&path) {
            Ok(file) => {
                let temp = TempPath { path, renamed: false };
                keep_permissions(&file, existing).map_err(|e| Error::io(&temp.path, e))?;
                return Ok((file, temp));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < NAME_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(Error::io(dir, e)),
        }
    }
}

/// Gives `file` the permission bits of `existing`, less set-ID and sticky bits.
#[cfg(unix)]
fn keep_permissions(file: &File, existing: Option<&fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    match existing {
        Some(meta) => {
            file.set_permissions(fs::Permissions::from_mode(meta.permissions().mode() & 0o777))
        }
        None => Ok(()),
    }
}

#[cfg(not(unix))]
fn keep_permissions(_file: &File, _existing: Option<&fs::Metadata>) -> io::Result<()> {
    Ok(())
}

/// Makes a rename in `dir` durable (POSIX needs the directory flushed too). Best effort:
/// the file's bytes are already on disk.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(path = %dir.display(), error = %e, "could not flush directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}
