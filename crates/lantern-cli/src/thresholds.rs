//! FFN threshold files: the side file that carries calibrated thresholds for a model.
//!
//! Plain text: `#` lines say where the thresholds came from, a `criterion` line names the
//! score they apply to (`gate` or `gate-up`), then one line per layer of one threshold, or
//! one per neuron, separated by spaces.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use lantern::{Criterion, FfnThresholds};

/// Writes `thresholds` to `path` atomically, after the comment lines `about`.
pub(crate) fn write(path: &Path, thresholds: &FfnThresholds, about: &[String]) -> Result<()> {
    let mut text = String::from("# lantern FFN thresholds: one line per layer\n");
    for line in about {
        let _ = writeln!(text, "# {line}");
    }
    let _ = writeln!(text, "criterion {}", thresholds.criterion());
    for layer in thresholds.layers() {
        let values: Vec<String> = layer.iter().map(|t| format!("{t:e}")).collect();
        let _ = writeln!(text, "{}", values.join(" "));
    }
    crate::atomic_file::write(path, text.as_bytes())
}

/// Reads a threshold file.
pub(crate) fn read(path: &Path) -> Result<FfnThresholds> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut criterion = None;
    let mut layers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let at = || format!("{} line {}", path.display(), i + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix("criterion ") {
            criterion = Some(name.trim().parse::<Criterion>().with_context(at)?);
            continue;
        }
        let values = line
            .split_whitespace()
            .map(|v| v.parse::<f32>().with_context(|| format!("{}: {v:?} is not a number", at())))
            .collect::<Result<Vec<_>>>()?;
        layers.push(values);
    }
    let Some(criterion) = criterion else {
        bail!("{} has no `criterion gate|gate-up` line", path.display());
    };
    FfnThresholds::new(criterion, layers)
        .with_context(|| format!("thresholds in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_survive_a_round_trip_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        let layers = vec![vec![0.0], vec![1.5e-3, 0.0123, 7.0]];
        let t = FfnThresholds::new(Criterion::GateUp, layers).unwrap();
        write(&path, &t, &["criterion: test".into()]).unwrap();
        assert_eq!(read(&path).unwrap(), t);
        std::fs::write(&path, "# x\ncriterion gate\n0.1\nfast\n").unwrap();
        let err = format!("{:#}", read(&path).unwrap_err());
        assert!(err.contains("line 4") && err.contains("fast"), "{err}");
        std::fs::write(&path, "criterion gate\n-1\n").unwrap();
        assert!(read(&path).is_err());
        std::fs::write(&path, "0.1\n").unwrap();
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("criterion"));
    }
}
