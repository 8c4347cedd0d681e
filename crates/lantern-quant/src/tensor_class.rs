//! Which weight matrices a re-quantization touches: [`TensorClass`] names the kinds of
//! matrix a model has (the seven [`BlockMatrix`] kinds, the embedding and the output
//! head), and [`WeightTypes`] gives some of them a type.
//!
//! The block matrices' names come from [`BlockMatrix`], the one table of them; this adds
//! only the two matrices outside the blocks.

use std::collections::BTreeSet;

use lantern_core::GgmlType;
use lantern_io::GgufModel;
use lantern_runtime::BlockMatrix;

/// A kind of weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorClass {
    /// One of each block's matrices.
    Block(BlockMatrix),
    /// The token embedding, `token_embd.weight`.
    Embd,
    /// The output head, `output.weight` (absent when tied to the embedding).
    Output,
}

impl TensorClass {
    /// Every class: the block matrices in the order a token meets them, then the embedding
    /// and the output head.
    pub const ALL: [Self; 9] = [
        Self::Block(BlockMatrix::AttnQ),
        Self::Block(BlockMatrix::AttnK),
        Self::Block(BlockMatrix::AttnV),
        Self::Block(BlockMatrix::AttnOutput),
        Self::Block(BlockMatrix::FfnGate),
        Self::Block(BlockMatrix::FfnUp),
        Self::Block(BlockMatrix::FfnDown),
        Self::Embd,
        Self::Output,
    ];

    /// The embedding's tensor name.
    pub const EMBD_NAME: &'static str = "token_embd.weight";

    /// The output head's tensor name.
    pub const OUTPUT_NAME: &'static str = "output.weight";

    /// The short name command lines and reports give it: a block matrix's
    /// [`short_name`](BlockMatrix::short_name) (`q`, …, `down`), `embd` or `output`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Block(m) => m.short_name(),
            Self::Embd => "embd",
            Self::Output => "output",
        }
    }

    /// The class whose [`name`](Self::name) is `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The class of the tensor named `name`, if it is a weight matrix.
    ///
    /// ```
    /// use lantern_quant::TensorClass;
    /// use lantern_runtime::BlockMatrix;
    /// assert_eq!(TensorClass::of("blk.3.ffn_up.weight"), Some(TensorClass::Block(BlockMatrix::FfnUp)));
    /// assert_eq!(TensorClass::of("token_embd.weight"), Some(TensorClass::Embd));
    /// assert_eq!(TensorClass::of("blk.3.attn_norm.weight"), None);
    /// ```
    pub fn of(name: &str) -> Option<Self> {
        match name {
            Self::EMBD_NAME => Some(Self::Embd),
            Self::OUTPUT_NAME => Some(Self::Output),
            _ => BlockMatrix::parse(name).map(|(_, m)| Self::Block(m)),
        }
    }

    /// Whether the class is one of the blocks' matrices.
    pub fn is_block(self) -> bool {
        matches!(self, Self::Block(_))
    }
}

impl std::fmt::Display for TensorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A type per class of weight matrix; classes it does not name keep the model's type.
///
/// ```
/// use lantern_core::GgmlType;
/// use lantern_quant::{TensorClass, WeightTypes};
///
/// let mut types = WeightTypes::default();
/// types.set(TensorClass::ALL, GgmlType::Q4_0);
/// types.set([TensorClass::Embd], GgmlType::Q8_0);
/// assert_eq!(types.of("blk.0.attn_q.weight"), Some(GgmlType::Q4_0));
/// assert_eq!(types.of("token_embd.weight"), Some(GgmlType::Q8_0));
/// assert_eq!(types.of("output_norm.weight"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightTypes {
    /// (class, type), later entries winning.
    entries: Vec<(TensorClass, GgmlType)>,
}

impl WeightTypes {
    /// Gives `classes` the type `ty`, over what earlier calls gave them.
    pub fn set(&mut self, classes: impl IntoIterator<Item = TensorClass>, ty: GgmlType) {
        self.entries.extend(classes.into_iter().map(|c| (c, ty)));
    }

    /// The type the tensor named `name` should have, if its class has one.
    pub fn of(&self, name: &str) -> Option<GgmlType> {
        let class = TensorClass::of(name)?;
        self.entries.iter().rev().find(|(c, _)| *c == class).map(|(_, ty)| *ty)
    }

    /// The one type every block matrix of `model` gets, as training scales through the
    /// blocks ([`reconstruct`](crate::reconstruct)) needs; `None` when they get several, or
    /// some keep their own.
    pub fn block_type(&self, model: &GgufModel) -> Option<GgmlType> {
        let types: BTreeSet<_> = model
            .gguf()
            .tensors()
            .iter()
            .filter(|info| BlockMatrix::parse(&info.name).is_some())
            .map(|info| self.of(&info.name))
            .collect();
        match Vec::from_iter(types)[..] {
            [Some(ty)] => Some(ty),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_name_every_weight_matrix_once() {
        for class in TensorClass::ALL {
            assert_eq!(TensorClass::named(class.name()), Some(class));
        }
        let names: BTreeSet<_> = TensorClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), TensorClass::ALL.len());
        assert_eq!(TensorClass::of("output.weight"), Some(TensorClass::Output));
        assert_eq!(TensorClass::of("blk.2.attn_output.weight").map(|c| c.name()), Some("o"));
        assert_eq!(TensorClass::of("output_norm.weight"), None);
    }

    #[test]
    fn later_entries_win() {
        let mut types = WeightTypes::default();
        types.set(TensorClass::ALL, GgmlType::Q4_0);
        types.set(BlockMatrix::FFN.map(TensorClass::Block), GgmlType::Q8_0);
        types.set([TensorClass::Block(BlockMatrix::FfnDown)], GgmlType::Q5_0);
        assert_eq!(types.of("blk.3.attn_q.weight"), Some(GgmlType::Q4_0));
        assert_eq!(types.of("blk.3.ffn_up.weight"), Some(GgmlType::Q8_0));
        assert_eq!(types.of("blk.3.ffn_down.weight"), Some(GgmlType::Q5_0));
        assert_eq!(types.of("token_embd.weight"), Some(GgmlType::Q4_0));
        assert_eq!(types.of("blk.3.attn_norm.weight"), None);
        let mut embd = WeightTypes::default();
        embd.set([TensorClass::Embd], GgmlType::Q8_0);
        assert_eq!(embd.of("blk.0.attn_q.weight"), None);
    }
}
