//! The tensor element types of ggml, by their on-disk id, and lantern's own.
//!
//! Every type ggml defines is listed so that any GGUF file can be inspected; which of them
//! lantern can compute with is a separate question, answered by [`GgmlType::is_supported`].
//! lantern adds types of its own ([`GgmlType::Q3_0`]) with ids outside ggml's range, which
//! only `.lantern` containers hold; [`GgmlType::is_ggml`] tells them apart.

use crate::{Error, Result};

/// A ggml tensor type, or one of lantern's own: its id in GGUF files (or `.lantern`
/// containers), block size and bytes per block.
///
/// Sizes follow ggml's `type_traits` table
/// (<https://github.com/ggml-org/llama.cpp/blob/b6000/ggml/src/ggml.c>).
#[allow(non_camel_case_types, reason = "names mirror ggml's type names")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half float.
    F16,
    /// 4-bit, 32 per block, one f16 scale; value = d·(q − 8).
    Q4_0,
    /// 4-bit, 32 per block, f16 scale and min; value = d·q + m.
    Q4_1,
    /// 5-bit, 32 per block, one scale.
    Q5_0,
    /// 5-bit, 32 per block, scale and min.
    Q5_1,
    /// 8-bit, 32 per block, one f16 scale; value = d·q.
    Q8_0,
    /// 8-bit, 32 per block, scale and the block's scaled sum.
    Q8_1,
    /// 2-bit k-quant, 256 per super-block.
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 4-bit k-quant.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 6-bit k-quant.
    Q6_K,
    /// 8-bit k-quant (activations).
    Q8_K,
    /// i-quant, 2.06 bits.
    IQ2_XXS,
    /// i-quant, 2.31 bits.
    IQ2_XS,
    /// i-quant, 3.06 bits.
    IQ3_XXS,
    /// i-quant, 1.56 bits.
    IQ1_S,
    /// 4-bit non-linear, 32 per block, one f16 scale; value = d·codebook\[q\] (4.5 bits).
    IQ4_NL,
    /// i-quant, 3.44 bits.
    IQ3_S,
    /// i-quant, 2.5 bits.
    IQ2_S,
    /// 4-bit non-linear, 256 per super-block in sub-blocks of 32 with 6-bit scales;
    /// value = d·(ls − 32)·codebook\[q\] (4.25 bits).
    IQ4_XS,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// i-quant, 1.75 bits.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// ternary, 1.69 bits.
    TQ1_0,
    /// ternary, 2.06 bits.
    TQ2_0,
    /// microscaling 4-bit float.
    MXFP4,
    /// lantern's own: 3-bit, 32 per block, one f16 scale; value = d·(q − 4). ggml has no such
    /// type; its id, 1024, lies outside ggml's range, so only .lantern containers hold it.
    /// See [`BlockQ3_0`](crate::BlockQ3_0) for the layout.
    Q3_0,
}

/// (type, id, elements per block, bytes per block)
const TABLE: &[(GgmlType, u32, usize, usize)] = &[
    (GgmlType::F32, 0, 1, 4),
    (GgmlType::F16, 1, 1, 2),
    (GgmlType::Q4_0, 2, 32, 18),
    (GgmlType::Q4_1, 3, 32, 20),
    (GgmlType::Q5_0, 6, 32, 22),
    (GgmlType::Q5_1, 7, 32, 24),
    (GgmlType::Q8_0, 8, 32, 34),
    (GgmlType::Q8_1, 9, 32, 36),
    (GgmlType::Q2_K, 10, 256, 84),
    (GgmlType::Q3_K, 11, 256, 110),
    (GgmlType::Q4_K, 12, 256, 144),
    (GgmlType::Q5_K, 13, 256, 176),
    (GgmlType::Q6_K, 14, 256, 210),
    (GgmlType::Q8_K, 15, 256, 292),
    (GgmlType::IQ2_XXS, 16, 256, 66),
    (GgmlType::IQ2_XS, 17, 256, 74),
    (GgmlType::IQ3_XXS, 18, 256, 98),
    (GgmlType::IQ1_S, 19, 256, 50),
    (GgmlType::IQ4_NL, 20, 32, 18),
    (GgmlType::IQ3_S, 21, 256, 110),
    (GgmlType::IQ2_S, 22, 256, 82),
    (GgmlType::IQ4_XS, 23, 256, 136),
    (GgmlType::I8, 24, 1, 1),
    (GgmlType::I16, 25, 1, 2),
    (GgmlType::I32, 26, 1, 4),
    (GgmlType::I64, 27, 1, 8),
    (GgmlType::F64, 28, 1, 8),
    (GgmlType::IQ1_M, 29, 256, 56),
    (GgmlType::BF16, 30, 1, 2),
    (GgmlType::TQ1_0, 34, 256, 54),
    (GgmlType::TQ2_0, 35, 256, 66),
    (GgmlType::MXFP4, 39, 32, 17),
    (GgmlType::Q3_0, 1024, 32, 14),
];

impl GgmlType {
    /// The type with id `id`: its GGUF id, or for lantern's own types their id in `.lantern`
    /// containers (check [`GgmlType::is_ggml`] before accepting a type from a GGUF file).
    ///
    /// # Errors
    /// [`Error::UnknownType`] for an id neither ggml nor lantern defines (or that ggml has
    /// retired).
    pub fn from_id(id: u32) -> Result<Self> {
        TABLE.iter().find(|e| e.1 == id).map(|e| e.0).ok_or(Error::UnknownType { id })
    }

    fn entry(self) -> &'static (GgmlType, u32, usize, usize) {
        // Every variant has exactly one row; the table test below keeps it so.
        TABLE.iter().find(|e| e.0 == self).unwrap_or(&TABLE[0])
    }

    /// The id this type has in GGUF files (for lantern's own types, in `.lantern` containers
    /// only).
    pub fn id(self) -> u32 {
        self.entry().1
    }

    /// Elements per block.
    pub fn block_size(self) -> usize {
        self.entry().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.entry().3
    }

    /// Whether ggml defines this type, so that GGUF files may hold it; false only for
    /// lantern's own types ([`GgmlType::Q3_0`]).
    pub fn is_ggml(self) -> bool {
        !matches!(self, Self::Q3_0)
    }

    /// Whether lantern can dequantize this type and multiply with it.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::Q3_0
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q8_0
                | Self::Q2_K
                | Self::Q3_K
                | Self::Q4_K
                | Self::Q5_K
                | Self::Q6_K
                | Self::IQ4_NL
                | Self::IQ4_XS
        )
    }

    /// Whether rows of this type convert to f32 ([`dequantize_row`](crate::dequantize_row)) and
    /// back ([`quantize_row`](crate::quantize_row)); Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS
    /// convert to f32 only, and `quantize_row` refuses them.
    pub fn is_convertible(self) -> bool {
        matches!(
            self,
            Self::F32
                | Self::F16
                | Self::BF16
                | Self::Q3_0
                | Self::Q4_0
                | Self::Q4_1
                | Self::Q5_0
                | Self::Q8_0
                | Self::Q2_K
                | Self::Q3_K
                | Self::Q4_K
                | Self::Q5_K
                | Self::Q6_K
                | Self::IQ4_NL
                | Self::IQ4_XS
        )
    }

    /// Checks that `bytes` hold exactly `values` elements of a convertible type.
    pub(crate) fn check_conversion(
        self,
        op: &'static str,
        values: usize,
        bytes: usize,
    ) -> Result<()> {
        if !self.is_convertible() {
            return Err(Error::UnsupportedType { ty: self, op });
        }
        let expected = self.row_bytes(values)?;
        if bytes != expected {
            return Err(Error::SizeMismatch {
                ty: self,
                dims: vec![values],
                expected,
                actual: bytes,
            });
        }
        Ok(())
    }

    /// Bytes taken by a row of `len` elements.
    ///
    /// # Errors
    /// [`Error::RaggedRow`] when `len` is not a whole number of blocks.
    pub fn row_bytes(self, len: usize) -> Result<usize> {
        let block = self.block_size();
        if !len.is_multiple_of(block) {
            return Err(Error::RaggedRow { ty: self, len, block });
        }
        (len / block).checked_mul(self.type_size()).ok_or(Error::Overflow { what: "row bytes" })
    }

    /// Bytes taken by a tensor with these dimensions (innermost first).
    ///
    /// # Errors
    /// [`Error::RaggedRow`] for a ragged innermost dimension, [`Error::Overflow`] when the size
    /// does not fit `usize`.
    pub fn tensor_bytes(self, dims: &[usize]) -> Result<usize> {
        let Some((&len, outer)) = dims.split_first() else {
            return Ok(self.type_size());
        };
        outer.iter().try_fold(self.row_bytes(len)?, |acc, &d| {
            acc.checked_mul(d).ok_or(Error::Overflow { what: "tensor bytes" })
        })
    }
}

impl std::str::FromStr for GgmlType {
    type Err = Error;

    /// The type named `name`, as ggml spells it (`Q4_0`, `F16`), in any case.
    fn from_str(name: &str) -> Result<Self> {
        TABLE
            .iter()
            .map(|e| e.0)
            .find(|ty| format!("{ty:?}").eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::UnknownTypeName { name: name.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_round_trips_ids() {
        for &(ty, id, _, _) in TABLE {
            assert_eq!(GgmlType::from_id(id).unwrap(), ty);
            assert_eq!(ty.id(), id);
        }
        assert!(matches!(GgmlType::from_id(4), Err(Error::UnknownType { id: 4 })));
        assert!(matches!(GgmlType::from_id(1000), Err(Error::UnknownType { id: 1000 })));
        // Every variant has a row (the enum is small enough to list here).
        let all = [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q8_1,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
            GgmlType::Q8_K,
            GgmlType::IQ2_XXS,
            GgmlType::IQ2_XS,
            GgmlType::IQ3_XXS,
            GgmlType::IQ1_S,
            GgmlType::IQ4_NL,
            GgmlType::IQ3_S,
            GgmlType::IQ2_S,
            GgmlType::IQ4_XS,
            GgmlType::I8,
            GgmlType::I16,
            GgmlType::I32,
            GgmlType::I64,
            GgmlType::F64,
            GgmlType::IQ1_M,
            GgmlType::BF16,
            GgmlType::TQ1_0,
            GgmlType::TQ2_0,
            GgmlType::MXFP4,
            GgmlType::Q3_0,
        ];
        assert_eq!(all.len(), TABLE.len());
        for ty in all {
            assert_eq!(TABLE.iter().filter(|e| e.0 == ty).count(), 1, "{ty:?}");
        }
    }

    #[test]
    fn q3_0_is_lanterns_own() {
        let ty = GgmlType::Q3_0;
        assert_eq!(GgmlType::from_id(1024).unwrap(), ty);
        assert_eq!((ty.id(), ty.block_size(), ty.type_size()), (1024, 32, 14));
        assert!(!ty.is_ggml());
        assert!(ty.is_supported() && ty.is_convertible());
        assert!(TABLE.iter().filter(|e| e.0 != ty).all(|e| e.0.is_ggml() && e.1 < 1024));
        // The default model's rows of 576 are whole Q3_0 blocks, as they are not Q3_K ones.
        assert_eq!(ty.row_bytes(576).unwrap(), 18 * 14);
        assert!(GgmlType::Q3_K.row_bytes(576).is_err());
    }

    #[test]
    fn sizes_of_the_formats_we_run() {
        assert_eq!(GgmlType::Q4_1.row_bytes(576).unwrap(), 18 * 20);
        assert_eq!(GgmlType::Q8_0.tensor_bytes(&[576, 49152]).unwrap(), 18 * 34 * 49152);
        assert!(matches!(GgmlType::Q4_0.row_bytes(33), Err(Error::RaggedRow { .. })));
        assert!(GgmlType::F32.tensor_bytes(&[usize::MAX, 2]).is_err());
    }

    #[test]
    fn names_parse_in_any_case() {
        for &(ty, ..) in TABLE {
            assert_eq!(format!("{ty:?}").to_lowercase().parse::<GgmlType>().unwrap(), ty);
        }
        assert!(matches!("Q4_2".parse::<GgmlType>(), Err(Error::UnknownTypeName { .. })));
    }
}
