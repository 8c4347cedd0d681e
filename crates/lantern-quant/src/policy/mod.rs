//! A per-layer compression policy (Edge-LLM's layer-wise unified compression): each unit of
//! the model (a block's matrices, or the embedding) takes one of several formats, and with
//! pruning one of several FFN widths, chosen so that the measured loss of quality, summed
//! over the units, is least within a byte budget.
//!
//! [`LayerPolicy::choose`] tries each unit alone in each candidate format, the rest of the
//! model as it is (through [`Replaced`](lantern_io::Replaced), nothing written), and takes
//! the KL divergence of its next-token distributions from the model's own, on calibration
//! chunks, as its cost in that format. A block is also tried pruned ([`PrunedFfn`]), alone
//! and in its own format, for each share; a pruned block in another format costs the sum of
//! the two (taken as separable, as Edge-LLM does; [`LayerPolicy::check_combinations`]
//! measures how far that holds). [`choose`] then picks the candidates with the least summed
//! cost that fit. The costs can be kept in a sensitivities file, so that several budgets
//! measure once.
//!
//! [`PrunedFfn`]: crate::PrunedFfn

mod choose;
mod kl;
mod sensitivities;
mod units;

use std::path::Path;
use std::sync::Arc;

use lantern_core::{GgmlType, QTensor};
use lantern_io::{GgufModel, ModelFile, Value};
use lantern_runtime::Budget;

use crate::{Error, Grams, Objective, Result};

pub use choose::{choose, fits, Choice};
pub use units::{Candidate, Unit};

use kl::Reference;

/// The size a policy must fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SizeTarget {
    /// The whole model's tensor bytes (or a share of what they are now).
    Bytes(Budget),
    /// Bits per weight of the units' matrices, scales included.
    BitsPerWeight(f64),
}

/// What a policy is chosen from.
#[derive(Clone, Copy, Debug)]
pub struct PolicyRequest<'a> {
    /// The model, as converted.
    pub model: &'a GgufModel,
    /// Candidate formats for every unit, besides the file's own.
    pub formats: &'a [GgmlType],
    /// Shares of each block's FFN neurons a candidate may drop (none: no pruning).
    pub prune: &'a [f64],
    /// How each candidate is rounded.
    pub objective: Objective,
    /// The calibration inputs the objective rounds on (nearest rounding without them).
    pub grams: Option<&'a Grams>,
    /// The size to fit.
    pub size: SizeTarget,
    /// Chunks of calibration tokens the costs are measured on, each a context long.
    pub chunks: &'a [&'a [u32]],
    /// The token each chunk starts with in place of its first, if the model adds one.
    pub bos: Option<u32>,
    /// Worker threads of the trial runs.
    pub threads: usize,
    /// The calibration text's name, for the sensitivities file's provenance.
    pub text_name: &'a str,
    /// A file the costs are read from if it exists, and written to otherwise.
    pub sensitivities: Option<&'a Path>,
}

/// A long step of [`LayerPolicy::choose`], for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyStep {
    /// Re-quantizing each unit into every candidate: one count per unit.
    Candidates,
    /// Measuring the candidates' costs: one count per trial run.
    Sensitivity,
}

/// A combined candidate's cost as the policy took it (the sum of its parts') and as
/// measured ([`LayerPolicy::check_combinations`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Separability {
    /// The unit's name.
    pub unit: String,
    /// The candidate's label ([`Candidate::label`]).
    pub candidate: String,
    /// The sum of its format's and its pruning's costs.
    pub predicted: f64,
    /// Its own cost, measured.
    pub measured: f64,
}

/// A chosen policy: every unit with its candidates and their costs, and the choice.
#[derive(Debug)]
pub struct LayerPolicy {
    base: Arc<dyn ModelFile>,
    units: Vec<Unit>,
    chosen: Vec<usize>,
    reference: f64,
    /// Bytes for the units.
    budget: u64,
    /// Bytes outside the units: the norms.
    fixed: u64,
    pruned: bool,
}

impl LayerPolicy {
    /// Measures (or reads from the request's sensitivities file) every unit's cost in
    /// every candidate and chooses the policy. `progress(step, done, total)` hears of each
    /// unit re-quantized and each trial run.
    ///
    /// # Errors
    /// [`Error::Budget`] (counting the bytes outside the units) before anything is measured
    /// when even the smallest candidates do not fit; [`Error::NoBlocks`] for a model
    /// without `blk.N` blocks; [`Error::Calibration`] for no chunks; the sensitivities
    /// file's errors ([`Error::SensitivitiesMeasuredOtherwise`], …); and those of
    /// re-quantizing, pruning and running the trial models.
    pub fn choose(
        request: &PolicyRequest<'_>,
        mut progress: impl FnMut(PolicyStep, usize, usize),
    ) -> Result<Self> {
        if request.chunks.is_empty() {
            return Err(Error::Calibration("no chunks to measure sensitivities on".into()));
        }
        let base: Arc<dyn ModelFile> = Arc::new(request.model.clone());
        let mut units = units::units(base.as_ref(), request, &mut progress)?;
        let all: u64 = request.model.gguf().tensors().iter().map(|t| t.size as u64).sum();
        let fixed = all - units.iter().map(|u| u.choices[0].bytes).sum::<u64>();
        let budget = match request.size {
            SizeTarget::Bytes(budget) => budget.bytes(all).saturating_sub(fixed),
            SizeTarget::BitsPerWeight(bits) => {
                let weights: u64 = units
                    .iter()
                    .flat_map(|u| &u.tensors)
                    .map(|name| base.tensor(name).map(|t| (t.row_len() * t.n_rows()) as u64))
                    .sum::<lantern_io::Result<u64>>()?;
                (bits * weights as f64 / 8.0) as u64
            }
        };
        let with_fixed = |e| match e {
            Error::Budget { budget, least } => {
                Error::Budget { budget: budget + fixed, least: least.saturating_add(fixed) }
            }
            e => e,
        };
        fits(&plain(&units), budget).map_err(with_fixed)?;
        let reference = match request.sensitivities {
            Some(path) if path.exists() => {
                sensitivities::read_costs(path, &sensitivities::provenance(request), &mut units)?
            }
            _ => {
                let reference = measure_costs(request, &base, &mut units, &mut progress)?;
                if let Some(path) = request.sensitivities {
                    let provenance = sensitivities::provenance(request);
                    sensitivities::write_costs(path, &provenance, reference, &units)?;
                }
                reference
            }
        };
        units.iter_mut().for_each(Unit::sum_combined_costs);
        let chosen = choose(&plain(&units), budget).map_err(with_fixed)?;
        let pruned = !request.prune.is_empty();
        Ok(Self { base, units, chosen, reference, budget, fixed, pruned })
    }

    /// The units, in the model's order, with their candidates and costs.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The index of each unit's chosen candidate.
    pub fn chosen(&self) -> &[usize] {
        &self.chosen
    }

    /// The unchanged model's perplexity on the calibration chunks.
    pub fn reference_perplexity(&self) -> f64 {
        self.reference
    }

    /// Bytes the units' candidates were chosen within.
    pub fn unit_budget(&self) -> u64 {
        self.budget
    }

    /// The chosen candidates' tensors, in place of the model's own of the same name.
    pub fn replacements(&self) -> Vec<(String, QTensor)> {
        let chosen = self.units.iter().zip(&self.chosen).map(|(u, &i)| &u.choices[i].what);
        chosen.filter_map(|c| c.tensors.as_ref()).flatten().cloned().collect()
    }

    /// Container metadata that records the policy: `lantern.policy.formats` (each unit's
    /// format, `blk.0=Q4_0,…,embd=Q8_0`), `lantern.policy.budget_bytes` and, when blocks
    /// could be pruned, `lantern.policy.ffn_keep` (each block's FFN width).
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let mut record = Vec::new();
        let mut kept = Vec::new();
        for (unit, &i) in self.units.iter().zip(&self.chosen) {
            let choice = &unit.choices[i].what;
            record.push(format!("{}={:?}", unit.name, choice.ty));
            if let (Some(_), Some(width)) = (unit.block, unit.ffn_width) {
                kept.push(choice.keep.unwrap_or(width) as u32);
            }
        }
        let mut metadata = vec![
            ("lantern.policy.formats".to_owned(), Value::from(record.join(",").as_str())),
            ("lantern.policy.budget_bytes".to_owned(), Value::U64(self.budget + self.fixed)),
        ];
        if self.pruned {
            metadata.push(("lantern.policy.ffn_keep".to_owned(), Value::from(kept)));
        }
        metadata
    }

    /// Measures the cost of up to `n` combined candidates (pruned, in another format), the
    /// chosen ones first, then each block's smallest, beside the sum of its parts the
    /// policy took it for. `request` is the one the policy was chosen from.
    ///
    /// # Errors
    /// Those of running the trial models.
    pub fn check_combinations(
        &self,
        request: &PolicyRequest<'_>,
        n: usize,
    ) -> Result<Vec<Separability>> {
        let mut picks: Vec<(&Unit, &Choice<Candidate>)> = self
            .units
            .iter()
            .zip(&self.chosen)
            .map(|(u, &i)| (u, &u.choices[i]))
            .filter(|(u, c)| u.combined(c))
            .collect();
        for unit in &self.units {
            let smallest = unit.choices.iter().filter(|c| unit.combined(c)).min_by_key(|c| c.bytes);
            if let Some(c) = smallest.filter(|c| !picks.iter().any(|(_, p)| std::ptr::eq(*p, *c))) {
                picks.push((unit, c));
            }
        }
        picks.truncate(n);
        let reference = Reference::new(&self.base, request.chunks, request.bos, request.threads)?;
        picks
            .into_iter()
            .map(|(unit, choice)| {
                let tensors = choice.what.tensors.clone().unwrap_or_default();
                Ok(Separability {
                    unit: unit.name.clone(),
                    candidate: choice.what.label(),
                    predicted: choice.cost,
                    measured: reference.kl_with(tensors)?,
                })
            })
            .collect()
    }
}

/// The units' candidates as [`choose`] takes them: bytes and costs.
fn plain(units: &[Unit]) -> Vec<Vec<Choice<()>>> {
    let plain = |c: &Choice<Candidate>| Choice { what: (), bytes: c.bytes, cost: c.cost };
    units.iter().map(|u| u.choices.iter().map(plain).collect()).collect()
}

/// Sets the cost of each candidate measured alone ([`Unit::measured`]): its KL divergence
/// with its unit alone changed. Returns the model's own perplexity on the chunks.
fn measure_costs(
    request: &PolicyRequest<'_>,
    base: &Arc<dyn ModelFile>,
    units: &mut [Unit],
    progress: &mut dyn FnMut(PolicyStep, usize, usize),
) -> Result<f64> {
    let reference = Reference::new(base, request.chunks, request.bos, request.threads)?;
    let trials: usize =
        units.iter().map(|u| u.choices.iter().filter(|c| u.measured(c)).count()).sum();
    let mut done = 0;
    progress(PolicyStep::Sensitivity, done, trials);
    for unit in units.iter_mut() {
        for i in 0..unit.choices.len() {
            if !unit.measured(&unit.choices[i]) {
                continue;
            }
            let tensors = unit.choices[i].what.tensors.clone().unwrap_or_default();
            unit.choices[i].cost = reference.kl_with(tensors)?;
            done += 1;
            progress(PolicyStep::Sensitivity, done, trials);
        }
    }
    Ok(reference.perplexity())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_records_each_units_choice_and_width() {
        let mut block = units::tests::pruned_unit();
        block.sum_combined_costs();
        let embd = units::tests::unit("embd");
        let base: Arc<dyn ModelFile> = Arc::new(
            GgufModel::open(lantern_io::ModelSource::from_vec(
                lantern_io::GgufWriter::new().to_bytes().unwrap(),
            ))
            .unwrap(),
        );
        let policy = LayerPolicy {
            base,
            units: vec![block, embd],
            chosen: vec![3, 1],
            reference: 9.0,
            budget: 100,
            fixed: 20,
            pruned: true,
        };
        let metadata = policy.metadata();
        let value = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(value("lantern.policy.formats"), Some(Value::from("blk.0=Q3_0,embd=Q3_0")));
        assert_eq!(value("lantern.policy.budget_bytes"), Some(Value::U64(120)));
        assert_eq!(value("lantern.policy.ffn_keep"), Some(Value::from(vec![64u32])));
        assert_eq!(policy.replacements().len(), 0);
    }
}
