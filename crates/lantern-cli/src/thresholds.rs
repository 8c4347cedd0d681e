//! FFN threshold files ([`FfnThresholds::to_text`]): read from and written to disk.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use lantern::FfnThresholds;
use lantern_io::AtomicFile;

/// Writes `thresholds`, after the comment lines `about`, into `file` (created before the
/// calibration, so that a destination it refuses fails at once) and commits it.
///
/// # Errors
/// When writing or committing the file fails.
pub fn write(mut file: AtomicFile, thresholds: &FfnThresholds, about: &[String]) -> Result<()> {
    let text = thresholds.to_text(about);
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", file.path().display()))?;
    Ok(file.commit()?)
}

/// Reads a threshold file.
///
/// # Errors
/// When the file cannot be read or does not parse.
pub fn read(path: &Path) -> Result<FfnThresholds> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    FfnThresholds::parse(&text).with_context(|| format!("thresholds in {}", path.display()))
}
