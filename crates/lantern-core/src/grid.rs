//! Block grids: the values a 32-value block type can hold for a given scale, and rows
//! quantized onto scales the caller chose. Re-quantizers that search for scales, or that
//! decide codes one column at a time with error feedback, pick the scales and the values;
//! [`quantize_row_on`] then stores exactly the codes they picked.

use half::f16;

use crate::blocks::nibbles;

use crate::{BlockQ3_0, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, Error, GgmlType, Result, QK8};

/// A block's scale and offset: value = d·(q − zero) + m.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockScale {
    /// Step between codes.
    pub d: f32,
    /// Offset (the minimum, for types that store one; 0 otherwise).
    pub m: f32,
}

/// The grid of a 32-value block type: codes `0..=max_code`, value = d·(q − zero) + m.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    ty: GgmlType,
    max_code: u8,
    zero: u8,
    has_min: bool,
}

impl Grid {
    /// The grid of `ty`, for the block types whose codes are one step apart: Q3_0, Q4_0,
    /// Q4_1, Q5_0 and Q8_0 (whose `i8` codes are `q − 127` here).
    pub fn of(ty: GgmlType) -> Option<Self> {
        let (max_code, zero, has_min) = match ty {
            GgmlType::Q3_0 => (7, 4, false),
            GgmlType::Q4_0 => (15, 8, false),
            GgmlType::Q4_1 => (15, 0, true),
            GgmlType::Q5_0 => (31, 16, false),
            GgmlType::Q8_0 => (254, 127, false),
            _ => return None,
        };
        Some(Self { ty, max_code, zero, has_min })
    }

    /// The block type.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Whether blocks store an offset `m` besides the scale.
    pub fn has_min(&self) -> bool {
        self.has_min
    }

    /// The largest code.
    pub fn max_code(&self) -> u8 {
        self.max_code
    }

    /// `scale` as a block stores it: each part rounded to f16 (and `m` 0 without an offset).
    pub fn stored(&self, scale: BlockScale) -> BlockScale {
        let m = if self.has_min { f16::from_f32(scale.m).to_f32() } else { 0.0 };
        BlockScale { d: f16::from_f32(scale.d).to_f32(), m }
    }

    /// The scale rounding to nearest picks for `x`, as stored: the value of largest
    /// magnitude on the most negative code (the range's ends, with an offset), as ggml's
    /// reference quantizers choose. `x` may be shorter than a block.
    pub fn fit(&self, x: &[f32]) -> BlockScale {
        let scale = if self.has_min {
            let (lo, hi) = x.iter().fold((f32::MAX, -f32::MAX), |(l, h), &v| (l.min(v), h.max(v)));
            let lo = if x.is_empty() { 0.0 } else { lo };
            BlockScale { d: (hi.max(lo) - lo) / f32::from(self.max_code), m: lo }
        } else {
            let max = crate::quantize::largest_magnitude(x);
            // Q8_0's grid is symmetric: its largest magnitude takes ±127 either way.
            let d = if self.ty == GgmlType::Q8_0 {
                max.abs() / 127.0
            } else {
                max / -f32::from(self.zero)
            };
            BlockScale { d, m: 0.0 }
        };
        self.stored(scale)
    }

    /// The code nearest `x` on `scale`'s grid (halves round up).
    #[inline]
    pub fn code(&self, x: f32, scale: BlockScale) -> u8 {
        let id = if scale.d != 0.0 { 1.0 / scale.d } else { 0.0 };
        let q = ((x - scale.m) * id + f32::from(self.zero) + 0.5).floor();
        q.clamp(0.0, f32::from(self.max_code)) as u8
    }

    /// The value of code `q` on `scale`'s grid.
    #[inline]
    pub fn value(&self, q: u8, scale: BlockScale) -> f32 {
        scale.d * (f32::from(q) - f32::from(self.zero)) + scale.m
    }
}

/// Quantizes `src` into `dst` (blocks of `ty`) onto the caller's scales, one per block:
/// each scale as the block stores it ([`Grid::stored`]), each value to its nearest code
/// ([`Grid::code`]).
///
/// # Errors
/// [`Error::UnsupportedType`] for a type without a [`Grid`]; [`Error::SizeMismatch`] when
/// `dst` or `scales` do not fit `src`.
pub fn quantize_row_on(
    ty: GgmlType,
    src: &[f32],
    scales: &[BlockScale],
    dst: &mut [u8],
) -> Result<()> {
    let grid = Grid::of(ty).ok_or(Error::UnsupportedType { ty, op: "quantize onto scales" })?;
    ty.check_conversion("quantize", src.len(), dst.len())?;
    let blocks = src.len() / QK8;
    if scales.len() != blocks {
        return Err(Error::SizeMismatch {
            ty,
            dims: vec![src.len()],
            expected: blocks,
            actual: scales.len(),
        });
    }
    let block_bytes = ty.type_size();
    for ((x, &scale), out) in
        src.chunks_exact(QK8).zip(scales).zip(dst.chunks_exact_mut(block_bytes))
    {
        let scale = grid.stored(scale);
        let mut q = [0u8; QK8];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = grid.code(v, scale);
        }
        pack(ty, &q, scale, out);
    }
    Ok(())
}

/// Writes one block of `ty` with codes `q` (on [`Grid`]'s 0-based scale) and `scale`.
fn pack(ty: GgmlType, q: &[u8; QK8], scale: BlockScale, out: &mut [u8]) {
    let d = f16::from_f32(scale.d).to_le_bytes();
    match ty {
        GgmlType::Q3_0 => out.copy_from_slice(bytemuck::bytes_of(&BlockQ3_0::from_codes(d, q))),
        GgmlType::Q4_0 => out.copy_from_slice(bytemuck::bytes_of(&BlockQ4_0 { d, qs: nibbles(q) })),
        GgmlType::Q4_1 => {
            let m = f16::from_f32(scale.m).to_le_bytes();
            out.copy_from_slice(bytemuck::bytes_of(&BlockQ4_1 { d, m, qs: nibbles(q) }));
        }
        GgmlType::Q5_0 => out.copy_from_slice(bytemuck::bytes_of(&BlockQ5_0::from_codes(d, q))),
        GgmlType::Q8_0 => {
            let qs = q.map(|q| (i16::from(q) - 127) as i8);
            out.copy_from_slice(bytemuck::bytes_of(&BlockQ8_0 { d, qs }));
        }
        _ => unreachable!("pack is only called for types with a grid"),
    }
}
