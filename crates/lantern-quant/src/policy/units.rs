//! The units of a per-layer policy ([`Unit`]: a block's matrices, or the embedding with the
//! output head) and each unit's candidates ([`Candidate`]: a format, perhaps pruned), with
//! the candidates' tensors re-quantized.

use lantern_core::{GgmlType, QTensor};
use lantern_io::ModelFile;
use lantern_runtime::BlockMatrix;

use super::{Choice, PolicyRequest, PolicyStep};
use crate::matrices::requantize_named;
use crate::{Error, PrunedFfn, Result, TensorClass};

/// One unit of the model: a block's matrices or the embedding (with the output head, if the
/// model has its own), and its candidates, the file's own format first.
#[derive(Debug)]
pub struct Unit {
    pub(super) name: String,
    /// The block, for a block's unit.
    pub(super) block: Option<usize>,
    /// The block's FFN width in the file, for a block's unit.
    pub(super) ffn_width: Option<usize>,
    pub(super) tensors: Vec<String>,
    pub(super) choices: Vec<Choice<Candidate>>,
}

/// A unit in one format, perhaps pruned, and the unit's tensors so.
#[derive(Debug)]
pub struct Candidate {
    pub(super) ty: GgmlType,
    /// FFN neurons kept, for a pruned block.
    pub(super) keep: Option<usize>,
    /// `None` for the file's own tensors.
    pub(super) tensors: Option<Vec<(String, QTensor)>>,
}

impl Candidate {
    /// The format of the unit's matrices.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// FFN neurons kept, for a pruned block.
    pub fn keep(&self) -> Option<usize> {
        self.keep
    }

    /// What the sensitivities file and reports call it: `Q3_0`, `Q3_0 keep 768`.
    pub fn label(&self) -> String {
        match self.keep {
            None => format!("{:?}", self.ty),
            Some(keep) => format!("{:?} keep {keep}", self.ty),
        }
    }
}

impl Unit {
    /// What the sensitivities file, the reports and the container's metadata call it:
    /// `blk.N` for a block, `embd` for the embedding.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The candidates, the file's own format first, with their bytes and costs.
    pub fn choices(&self) -> &[Choice<Candidate>] {
        &self.choices
    }

    /// Whether `choice`'s cost is measured rather than summed: another format alone, or
    /// pruned in the unit's own format.
    pub(super) fn measured(&self, choice: &Choice<Candidate>) -> bool {
        let c = &choice.what;
        c.tensors.is_some() && (c.keep.is_none() || c.ty == self.choices[0].what.ty)
    }

    /// Whether `choice` is pruned and in another format: its cost is taken as the sum of
    /// its parts'.
    pub(super) fn combined(&self, choice: &Choice<Candidate>) -> bool {
        choice.what.keep.is_some() && !self.measured(choice)
    }

    /// Sets each combined candidate's cost: its format's alone plus its pruning's alone.
    pub(super) fn sum_combined_costs(&mut self) {
        let own = self.choices[0].what.ty;
        let cost_of = |choices: &[Choice<Candidate>], ty, keep| {
            choices.iter().find(|c| c.what.ty == ty && c.what.keep == keep).map_or(0.0, |c| c.cost)
        };
        for i in 0..self.choices.len() {
            let c = &self.choices[i].what;
            if c.keep.is_some() && c.ty != own {
                let cost = cost_of(&self.choices, c.ty, None) + cost_of(&self.choices, own, c.keep);
                self.choices[i].cost = cost;
            }
        }
    }
}

/// The units of `base`: each block's matrices ([`BlockMatrix`]), then the embedding (with
/// the output head, if the model has its own), each with the file's own format first,
/// then every candidate of `request`.
pub(super) fn units(
    base: &dyn ModelFile,
    request: &PolicyRequest<'_>,
    progress: &mut dyn FnMut(PolicyStep, usize, usize),
) -> Result<Vec<Unit>> {
    let mut groups: Vec<(String, Option<usize>, Vec<String>)> = Vec::new();
    for block in 0.. {
        let names: Vec<String> = BlockMatrix::tensor_names(block)
            .into_iter()
            .filter(|name| base.has_tensor(name))
            .collect();
        if names.is_empty() {
            break;
        }
        groups.push((format!("blk.{block}"), Some(block), names));
    }
    let head: Vec<String> = [TensorClass::EMBD_NAME, TensorClass::OUTPUT_NAME]
        .into_iter()
        .filter(|name| base.has_tensor(name))
        .map(str::to_owned)
        .collect();
    groups.push(("embd".to_owned(), None, head));

    let total = groups.len();
    progress(PolicyStep::Candidates, 0, total);
    let mut units = Vec::new();
    for (done, (name, block, tensors)) in groups.into_iter().enumerate() {
        let own: Vec<QTensor> = tensors.iter().map(|t| base.tensor(t)).collect::<Result<_, _>>()?;
        let Some(own_ty) = own.first().map(QTensor::ty) else { continue };
        let own_bytes = own.iter().map(|t| t.bytes().len() as u64).sum();
        let mut choices = vec![Choice {
            what: Candidate { ty: own_ty, keep: None, tensors: None },
            bytes: own_bytes,
            cost: 0.0,
        }];
        // Every format's tensors, for pruning in each.
        let mut formats = vec![(own_ty, tensors.iter().cloned().zip(own.clone()).collect())];
        for &ty in request.formats.iter().filter(|&&ty| ty != own_ty) {
            let mut converted = Vec::new();
            for (tensor_name, tensor) in tensors.iter().zip(&own) {
                let gram = request.grams.and_then(|g| g.of_matrix(tensor_name));
                let q =
                    requantize_named(tensor_name, tensor, ty, request.objective, gram.as_ref())?;
                converted.push((tensor_name.clone(), q));
            }
            let bytes = converted.iter().map(|(_, t)| t.bytes().len() as u64).sum();
            formats.push((ty, converted.clone()));
            choices.push(Choice {
                what: Candidate { ty, keep: None, tensors: Some(converted) },
                bytes,
                cost: 0.0,
            });
        }
        let mut ffn_width = None;
        if let Some(block) = block {
            ffn_width = Some(base.tensor(&BlockMatrix::FfnDown.tensor_name(block))?.row_len());
            choices.extend(pruned_choices(base, block, &formats, request)?);
        }
        units.push(Unit { name, block, ffn_width, tensors, choices });
        progress(PolicyStep::Candidates, done + 1, total);
    }
    if units.len() < 2 {
        return Err(Error::NoBlocks);
    }
    Ok(units)
}

/// Block `block` pruned by each of the request's shares, in each of `formats` (the
/// block's tensors in each format it may take).
fn pruned_choices(
    base: &dyn ModelFile,
    block: usize,
    formats: &[(GgmlType, Vec<(String, QTensor)>)],
    request: &PolicyRequest<'_>,
) -> Result<Vec<Choice<Candidate>>> {
    let mut choices: Vec<Choice<Candidate>> = Vec::new();
    for &share in request.prune {
        let Some(pruned) = PrunedFfn::new(base, block, share, request.grams)? else { continue };
        if choices.iter().any(|c| c.what.keep == Some(pruned.keep())) {
            continue;
        }
        for (ty, tensors) in formats {
            let tensors = pruned.apply(tensors, *ty, request.objective, request.grams)?;
            let bytes = tensors.iter().map(|(_, t)| t.bytes().len() as u64).sum();
            let what = Candidate { ty: *ty, keep: Some(pruned.keep()), tensors: Some(tensors) };
            choices.push(Choice { what, bytes, cost: 0.0 });
        }
    }
    Ok(choices)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A unit of the file's Q4_1 and a Q3_0 candidate, of 1 byte each.
    pub(in crate::policy) fn unit(name: &str) -> Unit {
        let choice = |ty, tensors| Choice {
            what: Candidate { ty, keep: None, tensors },
            bytes: 1,
            cost: 0.0,
        };
        Unit {
            name: name.into(),
            block: None,
            ffn_width: None,
            tensors: Vec::new(),
            choices: vec![choice(GgmlType::Q4_1, None), choice(GgmlType::Q3_0, Some(Vec::new()))],
        }
    }

    /// A block's unit: the file's Q4_1, Q3_0, Q4_1 pruned to 64 neurons (costs 0.25 and
    /// 0.5 measured), and Q3_0 pruned, combined.
    pub(in crate::policy) fn pruned_unit() -> Unit {
        let c = |ty, keep, cost| Choice {
            what: Candidate { ty, keep, tensors: Some(Vec::new()) },
            bytes: 1,
            cost,
        };
        let own = Choice {
            what: Candidate { ty: GgmlType::Q4_1, keep: None, tensors: None },
            ..c(GgmlType::Q4_1, None, 0.0)
        };
        Unit {
            name: "blk.0".into(),
            block: Some(0),
            ffn_width: Some(96),
            tensors: Vec::new(),
            choices: vec![
                own,
                c(GgmlType::Q3_0, None, 0.25),
                c(GgmlType::Q4_1, Some(64), 0.5),
                c(GgmlType::Q3_0, Some(64), 0.0),
            ],
        }
    }

    #[test]
    fn pruned_candidates_in_other_formats_cost_the_sum_of_their_parts() {
        let mut u = pruned_unit();
        let measured: Vec<bool> = u.choices.iter().map(|c| u.measured(c)).collect();
        assert_eq!(measured, [false, true, true, false]);
        let combined: Vec<bool> = u.choices.iter().map(|c| u.combined(c)).collect();
        assert_eq!(combined, [false, false, false, true]);
        u.sum_combined_costs();
        assert_eq!(u.choices[3].cost, 0.75);
        assert_eq!(u.choices[3].what.label(), "Q3_0 keep 64");
    }
}
