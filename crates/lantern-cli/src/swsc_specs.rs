//! `--swsc SPEC`: which block matrices `lantern convert` stores as SWSC factors (shared
//! weights for similar channels plus a low-rank residual), and the factoring itself.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Error, Result};
use lantern_core::QTensor;
use lantern_io::GgufModel;
use lantern_quant::{Grams, Swsc};

use crate::progress;
use crate::requantize::gram_for;
use crate::weight_types::TensorClass;

/// A matrix's name and the tensors stored in its place.
type Substitute = (String, Vec<(String, QTensor)>);

/// A cluster count: a number, or a share of the matrix's input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clusters {
    /// `k=K`.
    Count(usize),
    /// `k=in/D`.
    InputsOver(usize),
}

impl Clusters {
    fn of(self, inputs: usize) -> usize {
        match self {
            Self::Count(k) => k,
            Self::InputsOver(d) => inputs / d,
        }
    }
}

/// One `--swsc` value: `[CLASS:]k=K,r=R`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SwscSpec {
    classes: Vec<TensorClass>,
    clusters: Clusters,
    rank: usize,
}

impl FromStr for SwscSpec {
    type Err = Error;

    /// `[CLASS:]k=K,r=R`: K a count or `in/D` (a D-th of the input channels), R the
    /// residual's rank (0 for none, the default); no class means every block matrix.
    fn from_str(spec: &str) -> Result<Self> {
        let (classes, params) = match spec.split_once(':') {
            Some((class, params)) => (TensorClass::named(class.trim())?, params),
            None => (TensorClass::BLOCK.to_vec(), spec),
        };
        if let Some(c) = classes.iter().find(|c| !TensorClass::BLOCK.contains(c)) {
            bail!(
                "in {spec:?}: --swsc applies to block matrices (q, k, v, o, gate, up, down), not \
                 {}: the embedding is read a row at a time and the output head is not factored",
                c.name()
            );
        }
        let (mut clusters, mut rank) = (None, 0);
        for param in params.split(',').map(str::trim) {
            let bad = || anyhow!("in {spec:?}: {param:?} is not k=K, k=in/D or r=R");
            let (key, value) = param.split_once('=').ok_or_else(bad)?;
            match key.trim() {
                "k" => {
                    let value = value.trim();
                    let k = match value.strip_prefix("in/") {
                        Some(d) => Clusters::InputsOver(d.parse().map_err(|_| bad())?),
                        None => Clusters::Count(value.parse().map_err(|_| bad())?),
                    };
                    if matches!(k, Clusters::Count(0) | Clusters::InputsOver(0)) {
                        bail!("in {spec:?}: k must be at least 1");
                    }
                    clusters = Some(k);
                }
                "r" => rank = value.trim().parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        let clusters = clusters.ok_or_else(|| anyhow!("in {spec:?}: k=K is required"))?;
        Ok(Self { classes, clusters, rank })
    }
}

/// The matrices the specs name (later specs winning), with their cluster count and rank,
/// each checked to fit its matrix: 1 <= k <= inputs, r <= min(inputs, outputs).
fn chosen(model: &GgufModel, specs: &[SwscSpec]) -> Result<Vec<(String, usize, usize)>> {
    let mut out = Vec::new();
    for info in model.gguf().tensors() {
        let Some(class) = TensorClass::of(&info.name) else { continue };
        let Some(spec) = specs.iter().rev().find(|s| s.classes.contains(&class)) else {
            continue;
        };
        let (inputs, outputs) = match info.dims[..] {
            [inputs, outputs] => (inputs, outputs),
            _ => bail!("{} is not a matrix: dims {:?}", info.name, info.dims),
        };
        let (k, r) = (spec.clusters.of(inputs), spec.rank);
        if k == 0 || k > inputs.min(1 << 16) {
            bail!("--swsc: k = {k} does not fit {} ({inputs} input channels)", info.name);
        }
        if r > inputs.min(outputs) {
            bail!("--swsc: r = {r} exceeds the rank of {} ({outputs}×{inputs})", info.name);
        }
        out.push((info.name.clone(), k, r));
    }
    Ok(out)
}

/// The names of the matrices `specs` factor.
///
/// # Errors
/// When a spec's cluster count or rank does not fit a matrix it names.
pub(crate) fn factored_names(model: &GgufModel, specs: &[SwscSpec]) -> Result<HashSet<String>> {
    Ok(chosen(model, specs)?.into_iter().map(|(name, ..)| name).collect())
}

/// Each matrix `specs` name, factored with its clustering weighted by the channel
/// energies of its inputs (the diagonal of their Gram matrix in `grams`), as the tensors
/// that stand for it in a container.
pub(crate) fn factored(
    model: &GgufModel,
    specs: &[SwscSpec],
    grams: &Grams,
    quiet: bool,
) -> Result<Vec<Substitute>> {
    let start = Instant::now();
    let matrices = chosen(model, specs)?;
    let bar = progress::count(matrices.len() as u64, "factoring (SWSC)", quiet);
    let (mut bytes, mut dense_bytes) = (0, 0);
    let mut out = Vec::with_capacity(matrices.len());
    for (name, k, r) in matrices {
        let tensor = model.tensor(&name)?;
        let energies = gram_for(Some(grams), &name)
            .ok_or_else(|| anyhow!("no calibration inputs for {name}"))?
            .diagonal();
        let swsc = Swsc::builder(k, r)
            .channel_energies(energies)
            .factor_tensor(&tensor)
            .with_context(|| format!("factoring {name} with k = {k}, r = {r}"))?;
        bytes += swsc.bytes();
        dense_bytes += tensor.bytes().len();
        out.push((name.clone(), swsc.tensors(&name)?));
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "factored {} matrices (SWSC) in {:.1} s: {bytes} bytes of factors for {dense_bytes} \
         bytes of matrices",
        out.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_classes_counts_and_ranks() {
        let spec: SwscSpec = "ffn:k=768,r=32".parse().unwrap();
        assert_eq!(spec.classes, [TensorClass::Gate, TensorClass::Up, TensorClass::Down]);
        assert_eq!((spec.clusters, spec.rank), (Clusters::Count(768), 32));
        let all: SwscSpec = "k=in/4".parse().unwrap();
        assert_eq!(all.classes, TensorClass::BLOCK);
        assert_eq!((all.clusters.of(576), all.rank), (144, 0));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| s.parse::<SwscSpec>().unwrap_err().to_string();
        assert!(err("embd:k=8").contains("block matrices"));
        assert!(err("output:k=8,r=2").contains("not output"));
        assert!(err("ffn:r=2").contains("k=K is required"));
        assert!(err("ffn:k=0").contains("at least 1"));
        assert!(err("ffn:k=8,s=2").contains("is not k=K"));
        assert!(err("mlp:k=8").contains("unknown tensor class"));
    }
}
