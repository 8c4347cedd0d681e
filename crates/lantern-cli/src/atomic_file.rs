//! Files written whole or not at all: the output goes to a temporary file beside the
//! destination, which then replaces it in one rename, so a reader never sees half a file
//! and an interrupted run leaves the old one in place.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// When the temporary file cannot be created or written, or renamed onto `path`.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    // The same directory, so the same file system and the rename is atomic.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = builder()
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("writing {}", file.path().display()))?;
    file.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Temporary files readable by all, as files the command writes directly would be (less
/// the umask): a temporary file is private by default, and the rename would keep that.
#[cfg(unix)]
fn builder() -> tempfile::Builder<'static, 'static> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut builder = tempfile::Builder::new();
    builder.permissions(std::fs::Permissions::from_mode(0o666));
    builder
}

#[cfg(not(unix))]
fn builder() -> tempfile::Builder<'static, 'static> {
    tempfile::Builder::new()
}
