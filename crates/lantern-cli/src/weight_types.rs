//! `--quantize SPEC`: which weight matrices `lantern convert` re-quantizes, and to what.

use std::str::FromStr;

use anyhow::{anyhow, bail, Error, Result};
use lantern_core::GgmlType;

/// The kinds of weight matrix a spec can name, by the tensor-name table's parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TensorClass {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
    Embd,
    Output,
}

impl TensorClass {
    /// Every class, with the name a spec gives it and the tensor name's part.
    const ALL: [(Self, &'static str, &'static str); 9] = [
        (Self::Q, "q", "attn_q.weight"),
        (Self::K, "k", "attn_k.weight"),
        (Self::V, "v", "attn_v.weight"),
        (Self::O, "o", "attn_output.weight"),
        (Self::Gate, "gate", "ffn_gate.weight"),
        (Self::Up, "up", "ffn_up.weight"),
        (Self::Down, "down", "ffn_down.weight"),
        (Self::Embd, "embd", "token_embd.weight"),
        (Self::Output, "output", "output.weight"),
    ];

    /// The classes of a block's matrices.
    pub(crate) const BLOCK: [Self; 7] =
        [Self::Q, Self::K, Self::V, Self::O, Self::Gate, Self::Up, Self::Down];

    /// The name a spec gives the class.
    pub(crate) fn name(self) -> &'static str {
        Self::ALL.iter().find(|(c, ..)| *c == self).map_or("", |(_, name, _)| name)
    }

    /// The class of the tensor named `name`, if it is a weight matrix.
    pub(crate) fn of(name: &str) -> Option<Self> {
        let part = name
            .strip_prefix("blk.")
            .map_or(name, |rest| rest.split_once('.').map_or(rest, |(_, part)| part));
        Self::ALL.iter().find(|(_, _, p)| *p == part).map(|(class, ..)| *class)
    }

    /// The classes a spec's name stands for: one, or a group.
    pub(crate) fn named(name: &str) -> Result<Vec<Self>> {
        use TensorClass::*;
        Ok(match name {
            "attn" => vec![Q, K, V, O],
            "ffn" => vec![Gate, Up, Down],
            _ => match Self::ALL.iter().find(|(_, n, _)| *n == name) {
                Some((class, ..)) => vec![*class],
                None => bail!(
                    "unknown tensor class {name:?}: expected q, k, v, o, gate, up, down, \
                     embd, output, attn or ffn"
                ),
            },
        })
    }
}

/// A type per class of weight matrix, as `--quantize` gives them; classes it does not name
/// keep the model's type.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct WeightTypes {
    /// (class, type), later entries winning.
    entries: Vec<(TensorClass, GgmlType)>,
}

impl WeightTypes {
    /// The type the tensor named `name` should have, if the spec names its class.
    pub(crate) fn of(&self, name: &str) -> Option<GgmlType> {
        let class = TensorClass::of(name)?;
        self.entries.iter().rev().find(|(c, _)| *c == class).map(|(_, ty)| *ty)
    }
}

impl FromStr for WeightTypes {
    type Err = Error;

    /// `TYPE` for every weight matrix, or `CLASS=TYPE`, comma-separated, later ones winning:
    /// `Q4_0,embd=Q8_0`.
    fn from_str(spec: &str) -> Result<Self> {
        let mut entries = Vec::new();
        for part in spec.split(',').map(str::trim) {
            let (classes, ty) = match part.split_once('=') {
                Some((class, ty)) => (TensorClass::named(class.trim())?, ty.trim()),
                None => (TensorClass::ALL.iter().map(|(c, ..)| *c).collect(), part),
            };
            let ty: GgmlType = ty.parse().map_err(|e| anyhow!("in {part:?}: {e}"))?;
            if !ty.is_supported() {
                bail!("in {part:?}: lantern cannot run weights of type {ty:?}");
            }
            entries.extend(classes.into_iter().map(|c| (c, ty)));
        }
        Ok(Self { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_entries_win_and_groups_expand() {
        let types: WeightTypes = "Q4_0, ffn=Q8_0, down=Q5_0".parse().unwrap();
        assert_eq!(types.of("blk.3.attn_q.weight"), Some(GgmlType::Q4_0));
        assert_eq!(types.of("blk.3.ffn_up.weight"), Some(GgmlType::Q8_0));
        assert_eq!(types.of("blk.3.ffn_down.weight"), Some(GgmlType::Q5_0));
        assert_eq!(types.of("token_embd.weight"), Some(GgmlType::Q4_0));
        assert_eq!(types.of("blk.3.attn_norm.weight"), None);
        let embd: WeightTypes = "embd=q8_0".parse().unwrap();
        assert_eq!(embd.of("blk.0.attn_q.weight"), None);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let err = |s: &str| s.parse::<WeightTypes>().unwrap_err().to_string();
        assert!(err("Q4_2").contains("unknown tensor type"));
        assert!(err("mlp=Q4_0").contains("unknown tensor class \"mlp\""));
        assert!(err("Q4_0,down=I32").contains("cannot run weights of type I32"));
    }
}
