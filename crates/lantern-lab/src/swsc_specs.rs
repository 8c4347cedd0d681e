//! `--swsc SPEC`: which block matrices `lantern-lab convert` stores as SWSC factors (shared
//! weights for similar channels plus a low-rank residual), parsed into a
//! [`SwscSpec`]; lantern-quant checks them against the model and factors.

use anyhow::{anyhow, bail, Result};
use lantern_quant::{Clusters, SwscSpec, TensorClass};
use lantern_runtime::BlockMatrix;

use crate::weight_types::classes_named;

/// One `--swsc` value: `[CLASS:]k=K,r=R`, K a count or `in/D` (a D-th of the input
/// channels), R the residual's rank (0 for none, the default); no class means every block
/// matrix.
///
/// # Errors
/// For an unknown class, one outside the blocks, and a malformed or missing parameter.
pub(crate) fn parse_swsc_spec(spec: &str) -> Result<SwscSpec> {
    let (classes, params) = match spec.split_once(':') {
        Some((class, params)) => (classes_named(class.trim())?, params),
        None => (BlockMatrix::ALL.map(TensorClass::Block).to_vec(), spec),
    };
    let mut matrices = Vec::new();
    for class in classes {
        let TensorClass::Block(matrix) = class else {
            bail!(
                "in {spec:?}: --swsc applies to block matrices (q, k, v, o, gate, up, down), not \
                 {class}: the embedding is read a row at a time and the output head is not factored"
            );
        };
        matrices.push(matrix);
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
    Ok(SwscSpec { matrices, clusters, rank })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_name_classes_counts_and_ranks() {
        let spec = parse_swsc_spec("ffn:k=768,r=32").unwrap();
        assert_eq!(spec.matrices, BlockMatrix::FFN);
        assert_eq!((spec.clusters, spec.rank), (Clusters::Count(768), 32));
        let all = parse_swsc_spec("k=in/4").unwrap();
        assert_eq!(all.matrices, BlockMatrix::ALL);
        assert_eq!((all.clusters.of(576), all.rank), (144, 0));
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| parse_swsc_spec(s).unwrap_err().to_string();
        assert!(err("embd:k=8").contains("block matrices"));
        assert!(err("output:k=8,r=2").contains("not output"));
        assert!(err("ffn:r=2").contains("k=K is required"));
        assert!(err("ffn:k=0").contains("at least 1"));
        assert!(err("ffn:k=8,s=2").contains("is not k=K"));
        assert!(err("mlp:k=8").contains("unknown tensor class"));
    }
}
