//! FFN threshold files ([`FfnThresholds::to_text`]): read from and written to disk.

use std::path::Path;

use anyhow::{Context, Result};
use lantern::FfnThresholds;

/// Writes `thresholds` to `path` atomically, after the comment lines `about`.
pub(crate) fn write(path: &Path, thresholds: &FfnThresholds, about: &[String]) -> Result<()> {
    crate::atomic_file::write(path, thresholds.to_text(about).as_bytes())
}

/// Reads a threshold file.
pub(crate) fn read(path: &Path) -> Result<FfnThresholds> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    FfnThresholds::parse(&text).with_context(|| format!("thresholds in {}", path.display()))
}
