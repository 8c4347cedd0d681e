//! FFN threshold files: the side file that carries calibrated thresholds for a model.
//!
//! Plain text: `#` lines say what the thresholds are and where they came from, then one
//! threshold per line, layer by layer.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use lantern::FfnThresholds;

/// Writes `thresholds` to `path` atomically, after the comment lines `about`.
pub(crate) fn write(path: &Path, thresholds: &FfnThresholds, about: &[String]) -> Result<()> {
    let mut text = String::from("# lantern FFN thresholds on |SiLU(gate)|, one per layer\n");
    for line in about {
        let _ = writeln!(text, "# {line}");
    }
    for t in thresholds.as_slice() {
        let _ = writeln!(text, "{t:e}");
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    file.write_all(text.as_bytes()).and_then(|()| file.as_file().sync_all())?;
    file.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads a threshold file.
pub(crate) fn read(path: &Path) -> Result<FfnThresholds> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let values = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            l.trim().parse::<f32>().with_context(|| {
                format!("{} line {}: {l:?} is not a number", path.display(), i + 1)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    FfnThresholds::new(values).with_context(|| format!("thresholds in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_survive_a_round_trip_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let t = FfnThresholds::new(vec![0.0, 1.5e-3, 0.0123]).unwrap();
        write(&path, &t, &["criterion: test".into()]).unwrap();
        assert_eq!(read(&path).unwrap(), t);
        std::fs::write(&path, "# x\n0.1\nfast\n").unwrap();
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(err.contains("line 3") && err.contains("fast"), "{err}");
        std::fs::write(&path, "-1\n").unwrap();
        assert!(read(&path).is_err());
    }
}
