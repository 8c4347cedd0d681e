//! `--quantize SPEC`: which weight matrices `lantern-lab convert` re-quantizes, and to
//! what, parsed into a [`WeightTypes`]; and the class names the specs share.

use anyhow::{anyhow, bail, Result};
use lantern_core::GgmlType;
use lantern_quant::{TensorClass, WeightTypes};
use lantern_runtime::BlockMatrix;

/// The classes a spec's name stands for: one ([`TensorClass::name`]), or a group (`attn`:
/// q, k, v, o; `ffn`: gate, up, down).
///
/// # Errors
/// For a name that is none of them.
pub(crate) fn classes_named(name: &str) -> Result<Vec<TensorClass>> {
    Ok(match name {
        "attn" => BlockMatrix::ATTENTION.map(TensorClass::Block).to_vec(),
        "ffn" => BlockMatrix::FFN.map(TensorClass::Block).to_vec(),
        _ => match TensorClass::named(name) {
            Some(class) => vec![class],
            None => bail!(
                "unknown tensor class {name:?}: expected q, k, v, o, gate, up, down, embd, \
                 output, attn or ffn"
            ),
        },
    })
}

/// `TYPE` for every weight matrix, or `CLASS=TYPE`, comma-separated, later ones winning:
/// `Q4_0,embd=Q8_0`.
///
/// # Errors
/// For an unknown class or type, or a type lantern cannot run.
pub(crate) fn parse_weight_types(spec: &str) -> Result<WeightTypes> {
    let mut types = WeightTypes::default();
    for part in spec.split(',').map(str::trim) {
        let (classes, ty) = match part.split_once('=') {
            Some((class, ty)) => (classes_named(class.trim())?, ty.trim()),
            None => (TensorClass::ALL.to_vec(), part),
        };
        let ty: GgmlType = ty.parse().map_err(|e| anyhow!("in {part:?}: {e}"))?;
        if !ty.is_supported() {
            bail!("in {part:?}: lantern cannot run weights of type {ty:?}");
        }
        types.set(classes, ty);
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_win_and_groups_expand() {
        let types = parse_weight_types("Q4_0, ffn=Q8_0, down=Q5_0").unwrap();
        assert_eq!(types.of("blk.3.attn_q.weight"), Some(GgmlType::Q4_0));
        assert_eq!(types.of("blk.3.ffn_up.weight"), Some(GgmlType::Q8_0));
        assert_eq!(types.of("blk.3.ffn_down.weight"), Some(GgmlType::Q5_0));
        assert_eq!(types.of("token_embd.weight"), Some(GgmlType::Q4_0));
        assert_eq!(types.of("blk.3.attn_norm.weight"), None);
        let embd = parse_weight_types("embd=q8_0").unwrap();
        assert_eq!(embd.of("blk.0.attn_q.weight"), None);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| parse_weight_types(s).unwrap_err().to_string();
        assert!(err("Q4_2").contains("unknown tensor type"));
        assert!(err("mlp=Q4_0").contains("unknown tensor class \"mlp\""));
        assert!(err("Q4_0,down=I32").contains("cannot run weights of type I32"));
    }
}
