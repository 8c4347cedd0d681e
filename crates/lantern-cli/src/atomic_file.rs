//! Files written whole or not at all: the output goes to a temporary file beside the
//! destination, which then replaces it in one rename, so a reader never sees half a file
//! and an interrupted run leaves the old one in place.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// When the temporary file cannot be created, written or renamed onto `path`.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = beside(path, "")?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", file.path().display()))?;
    persist(file, path)
}

/// An empty temporary file in `path`'s directory (the same file system, so the rename is
/// atomic), its name ending in `suffix`, for writers that want a path to write to.
///
/// # Errors
/// When the directory does not take new files.
pub(crate) fn beside(path: &Path, suffix: &str) -> Result<NamedTempFile> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .suffix(suffix)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

/// Renames the finished temporary `file` onto `path`.
///
/// # Errors
/// When the rename fails.
pub(crate) fn persist(file: NamedTempFile, path: &Path) -> Result<()> {
    file.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
