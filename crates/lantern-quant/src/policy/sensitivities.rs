//! The sensitivities file: the measured costs of a policy's candidates, kept so that trying
//! several budgets measures once.
//!
//! A text file of lines: first the provenance (what the costs were measured with: the
//! model's tensor bytes, the objective, the formats, the prune shares if any, the chunks
//! and the text), then `reference\t<the model's own perplexity>`, then one
//! `<unit>\t<candidate>\t<KL divergence>` line per measured candidate, such as
//! `blk.3\tQ3_0 keep 768\t0.0123`. Costs are read back only under the same provenance.

use std::collections::HashMap;
use std::path::Path;

use super::{PolicyRequest, Unit};
use crate::{Error, Result};

/// The first line of a sensitivities file: what its costs were measured with.
pub(super) fn provenance(request: &PolicyRequest<'_>) -> String {
    let formats: Vec<String> = request.formats.iter().map(|f| format!("{f:?}")).collect();
    let bytes: u64 = request.model.gguf().tensors().iter().map(|t| t.size as u64).sum();
    let prune = prune_provenance(request.prune);
    format!(
        "# lantern sensitivities (KL divergence): model of {bytes} tensor bytes, objective {}, \
         formats {}, {prune}\
         {} chunks of {}",
        request.objective.name(),
        formats.join(","),
        request.chunks.len(),
        request.text_name
    )
}

/// What the provenance says of the prune shares: nothing without any, so that files
/// measured before pruning existed still read.
fn prune_provenance(shares: &[f64]) -> String {
    if shares.is_empty() {
        return String::new();
    }
    let shares: Vec<String> = shares.iter().map(f64::to_string).collect();
    format!("FFN prune shares {}, ", shares.join(","))
}

/// Writes the measured costs of `units`, one `unit, candidate, KL divergence` line each,
/// after `provenance` and the `reference` perplexity, atomically.
pub(super) fn write_costs(
    path: &Path,
    provenance: &str,
    reference: f64,
    units: &[Unit],
) -> Result<()> {
    let mut text = format!("{provenance}\nreference\t{reference}\n");
    for unit in units {
        for c in unit.choices.iter().filter(|c| unit.measured(c)) {
            text.push_str(&format!("{}\t{}\t{}\n", unit.name, c.what.label(), c.cost));
        }
    }
    Ok(lantern_io::write_atomic(path, text.as_bytes())?)
}

/// Reads costs [`write_costs`] wrote with the same `provenance` into `units`; returns the
/// reference perplexity.
pub(super) fn read_costs(path: &Path, provenance: &str, units: &mut [Unit]) -> Result<f64> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| Error::ReadSensitivities { path: path.to_owned(), source })?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if first != provenance {
        let found = first.to_owned();
        return Err(Error::SensitivitiesMeasuredOtherwise { path: path.to_owned(), found });
    }
    let bad = || Error::NotSensitivities { path: path.to_owned() };
    let reference = lines.next().and_then(|l| l.strip_prefix("reference\t")).ok_or_else(bad)?;
    let mut costs = HashMap::new();
    for line in lines {
        let [unit, format, cost] = line.split('\t').collect::<Vec<_>>()[..] else {
            return Err(bad());
        };
        costs.insert((unit.to_owned(), format.to_owned()), cost.parse::<f64>().map_err(|_| bad())?);
    }
    for unit in units.iter_mut() {
        for i in 0..unit.choices.len() {
            if !unit.measured(&unit.choices[i]) {
                continue;
            }
            let key = (unit.name.clone(), unit.choices[i].what.label());
            unit.choices[i].cost = *costs.get(&key).ok_or_else(|| Error::MissingSensitivity {
                path: path.to_owned(),
                unit: key.0.clone(),
                candidate: key.1.clone(),
            })?;
        }
    }
    reference.parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::units::tests::{pruned_unit, unit};

    #[test]
    fn only_measured_costs_are_written_and_they_read_back_by_their_labels() {
        let mut u = pruned_unit();
        u.sum_combined_costs();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tsv");
        write_costs(&path, "# pruned", 9.0, std::slice::from_ref(&u)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# pruned\nreference\t9\nblk.0\tQ3_0\t0.25\nblk.0\tQ4_1 keep 64\t0.5\n");
        u.choices[2].cost = 0.0;
        read_costs(&path, "# pruned", std::slice::from_mut(&mut u)).unwrap();
        assert_eq!(u.choices[2].cost, 0.5);
        // Other prune shares are another provenance.
        assert_eq!(prune_provenance(&[]), "");
        assert_eq!(prune_provenance(&[0.25, 0.5]), "FFN prune shares 0.25,0.5, ");
        assert_ne!(prune_provenance(&[0.25]), prune_provenance(&[0.25, 0.5]));
    }

    #[test]
    fn sensitivities_read_back_as_written_and_only_with_their_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tsv");
        let mut units = [unit("blk.0"), unit("embd")];
        units[0].choices[1].cost = 0.25;
        units[1].choices[1].cost = 1.5;
        write_costs(&path, "# made so", 11.5, &units).unwrap();
        let mut read = [unit("blk.0"), unit("embd")];
        assert_eq!(read_costs(&path, "# made so", &mut read).unwrap(), 11.5);
        assert_eq!((read[0].choices[1].cost, read[1].choices[1].cost), (0.25, 1.5));
        let err = read_costs(&path, "# made otherwise", &mut read).unwrap_err().to_string();
        assert!(err.contains("was measured otherwise"), "{err}");
        let err = read_costs(&path, "# made so", &mut [unit("blk.7")]).unwrap_err().to_string();
        assert!(err.contains("has no blk.7 in Q3_0"), "{err}");
    }
}
