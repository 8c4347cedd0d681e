//! `lantern convert --budget-bytes` / `--bits-avg`: a format per block (and for the
//! embedding) chosen by measured sensitivity within a size budget.
//!
//! Each unit is tried alone in each candidate format, the rest of the model as it is, and
//! the perplexity it adds on chunks of the calibration text is its cost in that format;
//! [`lantern_quant::choose`] then picks the formats with the least summed cost that fit.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lantern::core::{GgmlType, QTensor};
use lantern::io::{GgufModel, ModelFile, Replaced, Value};
use lantern::{Budget, Engine, SessionConfig, Sparsity};
use lantern_quant::{choose, Choice, Grams, Objective};

use crate::progress;

/// Tokens per sensitivity chunk.
const CTX: usize = 512;

/// A block's matrices, by their part of the tensor name.
const BLOCK_MATRICES: [&str; 7] =
    ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// What the policy needs to know.
pub(crate) struct PolicyRequest<'a> {
    /// The model, as converted.
    pub(crate) model: &'a GgufModel,
    /// Candidate formats for every unit, besides the file's own.
    pub(crate) formats: &'a [GgmlType],
    /// How each candidate is rounded, and the calibration inputs for it.
    pub(crate) objective: Objective,
    pub(crate) grams: Option<&'a Grams>,
    /// Bytes for the whole model, or bits per weight for the units.
    pub(crate) budget: Target,
    /// Tokens the sensitivities are measured on.
    pub(crate) text: &'a crate::text::ChunkedText,
    pub(crate) quiet: bool,
}

/// The size the policy must fit.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// The whole model's tensor bytes (or a share of what they are now).
    Bytes(Budget),
    /// Bits per weight of the units' matrices, scales included.
    BitsPerWeight(f64),
}

/// One unit: a block's matrices or the embedding, with its candidates.
struct Unit {
    name: String,
    tensors: Vec<String>,
    choices: Vec<Choice<Candidate>>,
}

/// A unit in one format: its tensors, and the format's name.
struct Candidate {
    ty: GgmlType,
    /// `None` for the file's own tensors.
    tensors: Option<Vec<(String, QTensor)>>,
}

/// A chosen policy: the tensors it replaces, and the metadata that records it.
pub(crate) struct Policy {
    pub(crate) replacements: Vec<(String, QTensor)>,
    pub(crate) metadata: Vec<(String, Value)>,
}

/// Measures every unit's sensitivity to every candidate format and chooses the policy.
pub(crate) fn choose_policy(request: &PolicyRequest<'_>) -> Result<Policy> {
    let start = Instant::now();
    let base: Arc<dyn ModelFile> = Arc::new(request.model.clone());
    let mut units = units(base.as_ref(), request)?;
    // Bytes no unit holds: the norms.
    let all: u64 = request.model.gguf().tensors().iter().map(|t| t.size as u64).sum();
    let fixed = all - units.iter().map(|u| u.choices[0].bytes).sum::<u64>();
    let budget = match request.budget {
        Target::Bytes(budget) => budget.bytes(all).saturating_sub(fixed),
        Target::BitsPerWeight(bits) => {
            let weights: u64 = units
                .iter()
                .flat_map(|u| &u.tensors)
                .map(|name| base.tensor(name).map(|t| (t.row_len() * t.n_rows()) as u64))
                .sum::<lantern::io::Result<u64>>()?;
            (bits * weights as f64 / 8.0) as u64
        }
    };
    let least: u64 = units.iter().filter_map(|u| u.choices.iter().map(|c| c.bytes).min()).sum();
    if least > budget {
        bail!(
            "a budget of {} bytes is too small: the smallest formats take {} bytes",
            budget + fixed,
            least + fixed
        );
    }
    let tokens = &request.text.tokens[..request.text.chunks * CTX];
    let chunks = Some(request.text.chunks);

    let perplexity = |file: Box<dyn ModelFile>| -> Result<f64> {
        let engine = Engine::builder_from_file(file).build()?;
        let config = SessionConfig::default().ctx_len(CTX).sparsity(Sparsity::Dense);
        Ok(engine.session(config)?.perplexity(tokens, chunks, |_| {})?.ppl)
    };
    let reference = perplexity(Box::new(Replaced::new(base.clone(), [])?))?;
    let trials = units.iter().map(|u| u.choices.len() - 1).sum::<usize>();
    let bar = progress::count(trials as u64, "measuring sensitivity", request.quiet);
    for unit in &mut units {
        for choice in &mut unit.choices {
            let Some(tensors) = &choice.what.tensors else { continue };
            let ppl = perplexity(Box::new(Replaced::new(base.clone(), tensors.clone())?))?;
            choice.cost = ppl - reference;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let costs: Vec<Vec<Choice<()>>> = units
        .iter()
        .map(|u| {
            u.choices.iter().map(|c| Choice { what: (), bytes: c.bytes, cost: c.cost }).collect()
        })
        .collect();
    let chosen = choose(&costs, budget)?;

    print_report(&units, &chosen, reference, budget, start.elapsed().as_secs_f64());
    let mut replacements = Vec::new();
    let mut record = Vec::new();
    for (unit, i) in units.into_iter().zip(chosen) {
        let choice = &unit.choices[i];
        record.push(format!("{}={:?}", unit.name, choice.what.ty));
        let Some(tensors) = &choice.what.tensors else { continue };
        replacements.extend(tensors.iter().cloned());
    }
    let metadata = vec![
        ("lantern.policy.formats".to_owned(), Value::from(record.join(",").as_str())),
        ("lantern.policy.budget_bytes".to_owned(), Value::U64(budget + fixed)),
    ];
    Ok(Policy { replacements, metadata })
}

/// The units of `base`: each block's matrices, then the embedding (with the output head,
/// if the model has its own), each with the file's own format first, then every candidate.
fn units(base: &dyn ModelFile, request: &PolicyRequest<'_>) -> Result<Vec<Unit>> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for layer in 0.. {
        let prefix = format!("blk.{layer}.");
        let names: Vec<String> = BLOCK_MATRICES
            .iter()
            .map(|part| format!("{prefix}{part}.weight"))
            .filter(|name| base.has_tensor(name))
            .collect();
        if names.is_empty() {
            break;
        }
        groups.push((format!("blk.{layer}"), names));
    }
    let head: Vec<String> = ["token_embd.weight", "output.weight"]
        .iter()
        .filter(|name| base.has_tensor(name))
        .map(|name| name.to_string())
        .collect();
    groups.push(("embd".to_owned(), head));

    let bar = progress::count(groups.len() as u64, "re-quantizing candidates", request.quiet);
    let mut units = Vec::new();
    for (name, tensors) in groups {
        let own: Vec<QTensor> = tensors.iter().map(|t| base.tensor(t)).collect::<Result<_, _>>()?;
        let own_ty = own[0].ty();
        let own_bytes = own.iter().map(|t| t.bytes().len() as u64).sum();
        let mut choices = vec![Choice {
            what: Candidate { ty: own_ty, tensors: None },
            bytes: own_bytes,
            cost: 0.0,
        }];
        for &ty in request.formats.iter().filter(|&&ty| ty != own_ty) {
            let mut converted = Vec::new();
            for (tensor_name, tensor) in tensors.iter().zip(&own) {
                let gram = crate::convert::gram_for(request.grams, tensor_name);
                let objective = if gram.is_some() { request.objective } else { Objective::Nearest };
                let q = lantern_quant::requantize(tensor, ty, objective, gram.as_ref())
                    .with_context(|| format!("re-quantizing {tensor_name} to {ty:?}"))?;
                converted.push((tensor_name.clone(), q));
            }
            let bytes = converted.iter().map(|(_, t)| t.bytes().len() as u64).sum();
            choices.push(Choice {
                what: Candidate { ty, tensors: Some(converted) },
                bytes,
                cost: 0.0,
            });
        }
        units.push(Unit { name, tensors, choices });
        bar.inc(1);
    }
    bar.finish_and_clear();
    if units.len() < 2 {
        bail!("the model has no blocks named blk.N");
    }
    Ok(units)
}

fn print_report(units: &[Unit], chosen: &[usize], reference: f64, budget: u64, seconds: f64) {
    println!("per-layer policy: reference perplexity {reference:.4}, {budget} bytes for the layers ({seconds:.0} s)");
    println!("unit     format: added perplexity (bytes), * chosen");
    for (unit, &i) in units.iter().zip(chosen) {
        let cells: Vec<String> = unit
            .choices
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mark = if k == i { "*" } else { " " };
                format!("{mark}{:?} {:+.3} ({})", c.what.ty, c.cost, c.bytes)
            })
            .collect();
        println!("{:<8} {}", unit.name, cells.join("  "));
    }
}
