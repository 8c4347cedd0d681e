//! `lantern convert --budget-bytes` / `--bits-avg`: a format per block (and for the
//! embedding), and with `--prune` an FFN width per block, chosen by measured sensitivity
//! within a size budget.
//!
//! Each unit is tried alone in each candidate format, the rest of the model as it is, and
//! the KL divergence of its next-token distributions from the model's own, on chunks of the
//! calibration text, is its cost in that format. A block is also tried pruned, alone and in
//! its own format, for each share; a pruned block in another format costs the sum of the
//! two (taken as separable, as Edge-LLM does). [`lantern_quant::choose`] then picks the
//! candidates with the least summed cost that fit.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lantern::{Budget, Engine, Scored, Session, SessionConfig, Sparsity};
use lantern_core::{GgmlType, QTensor};
use lantern_io::{GgufModel, ModelFile, Replaced, Value};
use lantern_quant::{choose, Choice, Grams, Objective};

use crate::ffn_prune::PrunedFfn;
use crate::progress;
use crate::requantize::BLOCK_MATRICES;

/// Tokens per sensitivity chunk.
const CTX: usize = 512;

/// What the policy needs to know.
pub(crate) struct PolicyRequest<'a> {
    /// The model, as converted.
    pub(crate) model: &'a GgufModel,
    /// Candidate formats for every unit, besides the file's own.
    pub(crate) formats: &'a [GgmlType],
    /// Shares of each block's FFN neurons a candidate may drop (none: no pruning).
    pub(crate) prune: &'a [f64],
    /// Combined candidates (pruned, in another format) whose cost is also measured, to check
    /// the sum their cost is taken as.
    pub(crate) check_combinations: usize,
    /// How each candidate is rounded, and the calibration inputs for it.
    pub(crate) objective: Objective,
    pub(crate) grams: Option<&'a Grams>,
    /// Bytes for the whole model, or bits per weight for the units.
    pub(crate) budget: Target,
    /// Tokens the sensitivities are measured on.
    pub(crate) text: &'a crate::text::ChunkedText,
    /// A file the sensitivities are read from if it exists, and written to otherwise.
    pub(crate) sensitivities: Option<&'a Path>,
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

/// A unit in one format, perhaps pruned, and the unit's tensors so.
struct Candidate {
    ty: GgmlType,
    /// FFN neurons kept, for a pruned block.
    keep: Option<usize>,
    /// `None` for the file's own tensors.
    tensors: Option<Vec<(String, QTensor)>>,
}

impl Candidate {
    /// What the sensitivities file and the report call it: `Q3_0`, `Q3_0 keep 768`.
    fn label(&self) -> String {
        match self.keep {
            None => format!("{:?}", self.ty),
            Some(keep) => format!("{:?} keep {keep}", self.ty),
        }
    }
}

impl Unit {
    /// Whether `choice`'s cost is measured rather than summed: another format alone, or
    /// pruned in the unit's own format.
    fn measured(&self, choice: &Choice<Candidate>) -> bool {
        let c = &choice.what;
        c.tensors.is_some() && (c.keep.is_none() || c.ty == self.choices[0].what.ty)
    }

    /// Sets each combined candidate's cost: its format's alone plus its pruning's alone.
    fn sum_combined_costs(&mut self) {
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
                .sum::<lantern_io::Result<u64>>()?;
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
    let reference = match request.sensitivities {
        Some(path) if path.exists() => read_costs(path, &provenance(request), &mut units)?,
        _ => {
            let reference = measure_costs(request, &base, &mut units)?;
            if let Some(path) = request.sensitivities {
                write_costs(path, &provenance(request), reference, &units)?;
            }
            reference
        }
    };
    units.iter_mut().for_each(Unit::sum_combined_costs);
    let costs: Vec<Vec<Choice<()>>> = units
        .iter()
        .map(|u| {
            u.choices.iter().map(|c| Choice { what: (), bytes: c.bytes, cost: c.cost }).collect()
        })
        .collect();
    let chosen = choose(&costs, budget)?;

    print_report(&units, &chosen, reference, budget, start.elapsed().as_secs_f64());
    if request.check_combinations > 0 {
        check_combinations(request, &base, &units, &chosen)?;
    }
    let mut replacements = Vec::new();
    let mut record = Vec::new();
    let mut kept = Vec::new();
    for (unit, i) in units.into_iter().zip(chosen) {
        let choice = &unit.choices[i];
        record.push(format!("{}={:?}", unit.name, choice.what.ty));
        if unit.name.starts_with("blk.") {
            let width = base.tensor(&format!("{}.ffn_down.weight", unit.name))?.row_len();
            kept.push(choice.what.keep.unwrap_or(width) as u32);
        }
        let Some(tensors) = &choice.what.tensors else { continue };
        replacements.extend(tensors.iter().cloned());
    }
    let mut metadata = vec![
        ("lantern.policy.formats".to_owned(), Value::from(record.join(",").as_str())),
        ("lantern.policy.budget_bytes".to_owned(), Value::U64(budget + fixed)),
    ];
    if !request.prune.is_empty() {
        metadata.push(("lantern.policy.ffn_keep".to_owned(), Value::from(kept)));
    }
    Ok(Policy { replacements, metadata })
}

/// The model's own next-token distributions on the sensitivity chunks, which trials are
/// scored against.
struct Reference<'a> {
    base: &'a Arc<dyn ModelFile>,
    tokens: &'a [u32],
    chunks: Option<usize>,
    distributions: Vec<Distribution>,
}

impl<'a> Reference<'a> {
    /// Runs the unchanged model over the request's sensitivity chunks.
    fn new(request: &'a PolicyRequest<'_>, base: &'a Arc<dyn ModelFile>) -> Result<Self> {
        let tokens = &request.text.tokens[..request.text.chunks * CTX];
        let chunks = Some(request.text.chunks);
        let mut distributions = Vec::new();
        session(Replaced::new(base.clone(), [])?)?.score_chunks(tokens, chunks, |scored| {
            if let Scored::Row { logits, target } = scored {
                distributions.push(Distribution::of(logits, target));
            }
        })?;
        Ok(Self { base, tokens, chunks, distributions })
    }

    /// The model's own perplexity on the chunks.
    fn perplexity(&self) -> f64 {
        let n = self.distributions.len().max(1) as f64;
        (self.distributions.iter().map(|d| d.target_nll).sum::<f64>() / n).exp()
    }

    /// The mean KL divergence of the next-token distributions from the model's own, over
    /// the scored positions of the chunks, with `tensors` in place of the model's
    /// (llama.cpp's `--kl-divergence`: paired token by token, so far less noisy than a
    /// difference of perplexities).
    fn kl_with(&self, tensors: Vec<(String, QTensor)>) -> Result<f64> {
        let mut trial = session(Replaced::new(self.base.clone(), tensors)?)?;
        let (mut kl, mut rows) = (0.0, 0);
        trial.score_chunks(self.tokens, self.chunks, |scored| {
            if let Scored::Row { logits, .. } = scored {
                if let Some(d) = self.distributions.get(rows) {
                    kl += d.kl_to(logits);
                }
                rows += 1;
            }
        })?;
        Ok(kl / rows.max(1) as f64)
    }
}

/// A dense session over `file`, for scoring chunks.
fn session(file: Replaced) -> Result<Session> {
    let engine = Engine::builder_from_file(Box::new(file)).build()?;
    Ok(engine.session(SessionConfig::default().ctx_len(CTX).sparsity(Sparsity::Dense))?)
}

/// Sets the cost of each candidate measured alone ([`Unit::measured`]): its KL divergence
/// with its unit alone changed. Returns the model's own perplexity on the chunks.
fn measure_costs(
    request: &PolicyRequest<'_>,
    base: &Arc<dyn ModelFile>,
    units: &mut [Unit],
) -> Result<f64> {
    let reference = Reference::new(request, base)?;
    let trials: usize =
        units.iter().map(|u| u.choices.iter().filter(|c| u.measured(c)).count()).sum();
    let bar = progress::count(trials as u64, "measuring sensitivity", request.quiet);
    for unit in units.iter_mut() {
        for i in 0..unit.choices.len() {
            if !unit.measured(&unit.choices[i]) {
                continue;
            }
            let tensors = unit.choices[i].what.tensors.clone().unwrap_or_default();
            unit.choices[i].cost = reference.kl_with(tensors)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(reference.perplexity())
}

/// Measures the KL divergence of up to `request.check_combinations` combined candidates
/// (pruned, in another format), the chosen ones first, then each block's smallest, and
/// prints it beside the sum of its parts the policy took it for.
fn check_combinations(
    request: &PolicyRequest<'_>,
    base: &Arc<dyn ModelFile>,
    units: &[Unit],
    chosen: &[usize],
) -> Result<()> {
    let combined = |u: &Unit, c: &Choice<Candidate>| c.what.keep.is_some() && !u.measured(c);
    let mut picks: Vec<(&Unit, &Choice<Candidate>)> = units
        .iter()
        .zip(chosen)
        .map(|(u, &i)| (u, &u.choices[i]))
        .filter(|(u, c)| combined(u, c))
        .collect();
    for unit in units {
        let smallest = unit.choices.iter().filter(|c| combined(unit, c)).min_by_key(|c| c.bytes);
        if let Some(c) = smallest.filter(|c| !picks.iter().any(|(_, p)| std::ptr::eq(*p, *c))) {
            picks.push((unit, c));
        }
    }
    picks.truncate(request.check_combinations);
    let reference = Reference::new(request, base)?;
    println!("separability: KL divergence of combined candidates, predicted (sum) and measured");
    for (unit, choice) in picks {
        let measured = reference.kl_with(choice.what.tensors.clone().unwrap_or_default())?;
        println!(
            "{:<8} {:<16} predicted {:.5}  measured {measured:.5}  ({:+.1}%)",
            unit.name,
            choice.what.label(),
            choice.cost,
            100.0 * (measured / choice.cost - 1.0)
        );
    }
    Ok(())
}

/// A next-token distribution of the unmodified model, kept for KL divergences.
struct Distribution {
    /// Probabilities.
    p: Vec<f32>,
    /// Σ p·log p.
    p_log_p: f64,
    /// −log p of the token that followed.
    target_nll: f64,
}

impl Distribution {
    fn of(logits: &[f32], target: u32) -> Self {
        let lse = log_sum_exp(logits);
        let log_p = |l: f32| f64::from(l) - lse;
        let p: Vec<f32> = logits.iter().map(|&l| log_p(l).exp() as f32).collect();
        let p_log_p = logits.iter().zip(&p).map(|(&l, &p)| f64::from(p) * log_p(l)).sum();
        Self { p, p_log_p, target_nll: -log_p(logits[target as usize]) }
    }

    /// KL(self ‖ softmax(logits)) = Σ p·log p − Σ p·logits + log Σ exp(logits).
    fn kl_to(&self, logits: &[f32]) -> f64 {
        let cross: f64 = self.p.iter().zip(logits).map(|(&p, &l)| f64::from(p * l)).sum();
        self.p_log_p - cross + log_sum_exp(logits)
    }
}

/// log Σ exp(x), in f64.
fn log_sum_exp(x: &[f32]) -> f64 {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    f64::from(max) + x.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln()
}

/// The first line of a sensitivities file: what its costs were measured with.
fn provenance(request: &PolicyRequest<'_>) -> String {
    let formats: Vec<String> = request.formats.iter().map(|f| format!("{f:?}")).collect();
    let bytes: u64 = request.model.gguf().tensors().iter().map(|t| t.size as u64).sum();
    let prune = prune_provenance(request.prune);
    format!(
        "# lantern sensitivities (KL divergence): model of {bytes} tensor bytes, objective {}, \
         formats {}, {prune}\
         {} chunks of {}",
        request.objective.name(),
        formats.join(","),
        request.text.chunks,
        request.text.name
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

/// Writes the measured costs, one `unit, candidate, KL divergence` line each, after the
/// provenance and the reference perplexity.
fn write_costs(path: &Path, provenance: &str, reference: f64, units: &[Unit]) -> Result<()> {
    let mut text = format!("{provenance}\nreference\t{reference}\n");
    for unit in units {
        for c in unit.choices.iter().filter(|c| unit.measured(c)) {
            text.push_str(&format!("{}\t{}\t{}\n", unit.name, c.what.label(), c.cost));
        }
    }
    crate::atomic_file::write(path, text.as_bytes())
}

/// Reads costs [`write_costs`] wrote with the same provenance into `units`; returns the
/// reference perplexity.
fn read_costs(path: &Path, provenance: &str, units: &mut [Unit]) -> Result<f64> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {shown}"))?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    if first != provenance {
        bail!("{shown} was measured otherwise ({first:?}); remove it or name another file");
    }
    let bad = || anyhow::anyhow!("{shown} is not a sensitivities file lantern wrote");
    let reference = lines.next().and_then(|l| l.strip_prefix("reference\t")).ok_or_else(bad)?;
    let mut costs = std::collections::HashMap::new();
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
            unit.choices[i].cost = *costs
                .get(&key)
                .ok_or_else(|| anyhow::anyhow!("{shown} has no {} in {}", key.0, key.1))?;
        }
    }
    reference.parse().map_err(|_| bad())
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
            what: Candidate { ty: own_ty, keep: None, tensors: None },
            bytes: own_bytes,
            cost: 0.0,
        }];
        // Every format's tensors, for pruning in each.
        let mut formats = vec![(own_ty, tensors.iter().cloned().zip(own.clone()).collect())];
        for &ty in request.formats.iter().filter(|&&ty| ty != own_ty) {
            let mut converted = Vec::new();
            for (tensor_name, tensor) in tensors.iter().zip(&own) {
                let gram = crate::requantize::gram_for(request.grams, tensor_name);
                let objective = if gram.is_some() { request.objective } else { Objective::Nearest };
                let q = lantern_quant::requantize(tensor, ty, objective, gram.as_ref())
                    .with_context(|| format!("re-quantizing {tensor_name} to {ty:?}"))?;
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
        if let Some(layer) = name.strip_prefix("blk.").and_then(|l| l.parse().ok()) {
            choices.extend(pruned_choices(base, layer, &formats, request)?);
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

/// Block `layer` pruned by each of the request's shares, in each of `formats` (the
/// block's tensors in each format it may take).
fn pruned_choices(
    base: &dyn ModelFile,
    layer: usize,
    formats: &[(GgmlType, Vec<(String, QTensor)>)],
    request: &PolicyRequest<'_>,
) -> Result<Vec<Choice<Candidate>>> {
    let mut choices: Vec<Choice<Candidate>> = Vec::new();
    for &share in request.prune {
        let Some(pruned) = PrunedFfn::new(base, layer, share, request.grams)? else { continue };
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

fn print_report(units: &[Unit], chosen: &[usize], reference: f64, budget: u64, seconds: f64) {
    println!(
        "per-layer policy: perplexity {reference:.4} on the sensitivity chunks, {budget} bytes \
         for the layers ({seconds:.0} s)"
    );
    println!(
        "unit     format: KL divergence from the model's own, nats per token (bytes), * chosen"
    );
    for (unit, &i) in units.iter().zip(chosen) {
        let cells: Vec<String> = unit
            .choices
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mark = if k == i { "*" } else { " " };
                format!("{mark}{} {:.5} ({})", c.what.label(), c.cost, c.bytes)
            })
            .collect();
        println!("{:<8} {}", unit.name, cells.join("  "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_divergence_is_zero_to_itself_and_log_v_minus_entropy_to_uniform() {
        let logits = [2.0f32, 0.5, -1.0, 0.0];
        let d = Distribution::of(&logits, 1);
        assert!(d.kl_to(&logits).abs() < 1e-6);
        // Shifting every logit changes nothing.
        assert!(d.kl_to(&logits.map(|l| l + 3.0)).abs() < 1e-6);
        let entropy = -d.p_log_p;
        assert!((d.kl_to(&[0.0; 4]) - (4f64.ln() - entropy)).abs() < 1e-6);
        assert!((d.target_nll - (-(f64::from(d.p[1])).ln())).abs() < 1e-6);
    }

    fn unit(name: &str) -> Unit {
        let choice = |ty, tensors| Choice {
            what: Candidate { ty, keep: None, tensors },
            bytes: 1,
            cost: 0.0,
        };
        Unit {
            name: name.into(),
            tensors: Vec::new(),
            choices: vec![choice(GgmlType::Q4_1, None), choice(GgmlType::Q3_0, Some(Vec::new()))],
        }
    }

    #[test]
    fn pruned_candidates_in_other_formats_cost_the_sum_of_their_parts() {
        let c = |ty, keep, cost| Choice {
            what: Candidate { ty, keep, tensors: Some(Vec::new()) },
            bytes: 1,
            cost,
        };
        let own = Choice {
            what: Candidate { ty: GgmlType::Q4_1, keep: None, tensors: None },
            ..c(GgmlType::Q4_1, None, 0.0)
        };
        let mut u = Unit {
            name: "blk.0".into(),
            tensors: Vec::new(),
            choices: vec![
                own,
                c(GgmlType::Q3_0, None, 0.25),
                c(GgmlType::Q4_1, Some(64), 0.5),
                c(GgmlType::Q3_0, Some(64), 0.0),
            ],
        };
        let measured: Vec<bool> = u.choices.iter().map(|c| u.measured(c)).collect();
        assert_eq!(measured, [false, true, true, false]);
        u.sum_combined_costs();
        assert_eq!(u.choices[3].cost, 0.75);
        assert_eq!(u.choices[3].what.label(), "Q3_0 keep 64");

        // Only the measured costs are written, and they read back by their labels.
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
