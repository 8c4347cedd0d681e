//! Quantization blocks: ggml's on-disk layouts and lantern's in-memory activation block.
//!
//! # Layout contract
//! The on-disk blocks ([`BlockQ4_0`], [`BlockQ4_1`], [`BlockQ8_0`]) are `#[repr(C)]` with
//! alignment 1 and no padding: every f16 field is stored as `[u8; 2]` little-endian, exactly
//! as ggml writes it. Any `&[u8]` whose length is a multiple of the block size can therefore
//! be viewed as `&[Block]` with [`bytemuck::try_cast_slice`] wherever it sits in memory (a
//! memory map at an odd offset included); only the length can make the cast fail.
//!
//! Each block holds [`QK8`] = 32 values. The 4-bit formats pack element `j` in the low nibble
//! of `qs[j]` and element `j + 16` in its high nibble (not `2j` and `2j + 1`).
//!
//! [`BlockQ8`] is not an on-disk format: it is the activation side of every quantized dot
//! product, holding f32 scales so that kernels need no f16 conversion in their inner loop.
//! The numbers it holds are exactly those of ggml's `block_q8_1` (see
//! [`quantize_activation`](crate::quantize_activation)).

use std::mem::size_of;

use half::f16;

/// Values per block in every 32-element format (ggml's `QK4_0`, `QK4_1`, `QK8_0`, `QK8_1`).
pub const QK8: usize = 32;

/// Reads a little-endian f16 stored as two bytes.
#[inline(always)]
fn f16_le(bytes: [u8; 2]) -> f32 {
    f16::from_le_bytes(bytes).to_f32()
}

/// ggml `block_q4_0`: 32 weights, value = d·(q − 8) with q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Nibbles: element `j` in the low half of `qs[j]`, element `j + 16` in the high half.
    pub qs: [u8; QK8 / 2],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::align_of::<BlockQ4_0>() == 1);

impl BlockQ4_0 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }
}

/// ggml `block_q4_1`: 32 weights, value = d·q + m with q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Minimum (offset), f16 little-endian.
    pub m: [u8; 2],
    /// Nibbles: element `j` in the low half of `qs[j]`, element `j + 16` in the high half.
    pub qs: [u8; QK8 / 2],
}

const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::align_of::<BlockQ4_1>() == 1);

impl BlockQ4_1 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The minimum as f32.
    #[inline(always)]
    pub fn m(&self) -> f32 {
        f16_le(self.m)
    }
}

/// ggml `block_q8_0`: 32 weights, value = d·q with q an `i8`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// The quantized values, in order.
    pub qs: [i8; QK8],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::align_of::<BlockQ8_0>() == 1);

impl BlockQ8_0 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }
}

/// 32 activation values quantized to 8 bits: value ≈ d·q.
///
/// Built by [`quantize_activation`](crate::quantize_activation). `d` and `s` are f16 values
/// widened to f32, so they equal what ggml's `block_q8_1` stores bit for bit; `s` = d·Σq
/// lets Q4_1 kernels apply the weight minimum without touching the 32 values again.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ8 {
    /// Scale (an f16 value held as f32).
    pub d: f32,
    /// The scaled sum d·Σqs, computed with the unrounded scale, then rounded through f16.
    pub s: f32,
    /// The quantized values, each in −127..=127.
    pub qs: [i8; QK8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_offset_casts() {
        // Blocks have alignment 1, so a slice starting at an odd address still casts.
        let bytes = [0u8; 1 + 2 * 20];
        let blocks: &[BlockQ4_1] = bytemuck::try_cast_slice(&bytes[1..]).unwrap();
        assert_eq!(blocks.len(), 2);
        assert!(bytemuck::try_cast_slice::<u8, BlockQ4_1>(&bytes[1..40]).is_err());
    }

    #[test]
    fn accessors_read_little_endian_f16() {
        // 0x3C00 is 1.0 and 0xC000 is -2.0 in IEEE half precision.
        let b = BlockQ4_1 { d: [0x00, 0x3C], m: [0x00, 0xC0], qs: [0; 16] };
        assert_eq!(b.d(), 1.0);
        assert_eq!(b.m(), -2.0);
        let b = BlockQ8_0 { d: [0x00, 0x38], qs: [0; 32] };
        assert_eq!(b.d(), 0.5);
        let b = BlockQ4_0 { d: [0x00, 0x40], qs: [0; 16] };
        assert_eq!(b.d(), 2.0);
    }
}
