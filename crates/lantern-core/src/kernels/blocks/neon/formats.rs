//! Each 32-value block format as the NEON tiles read it ([`Format`]): where its scales sit, and
//! its 32 codes as signed bytes.

use std::arch::aarch64::*;

use super::{Format, ROWS};
use crate::kernels::neon::{widen_f16, Dot};

/// lantern `Q3_0` (14 bytes: f16 d, 8 bytes of low two bits, 4 bytes of third bits):
/// value = d·(q − 4).
pub(super) struct Q3_0;

impl Format for Q3_0 {
    const BLOCK_BYTES: usize = 14;
    const INPUTS: usize = 4;
    const ONE_LANE: bool = true;

    #[inline(always)]
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2] {
        // Shifts of the 8 low-bit bytes read as a u64: right by 2k puts elements 8k..8k + 8
        // in the low two bits of its bytes (a negative `ushl` count shifts right).
        const SHIFTS: [[i64; 2]; 2] = [[0, -2], [-4, -6]];
        // SAFETY: the caller's contract: bytes 2..10 are the low bits, 10..14 the third bits;
        // the other loads read the constant tables.
        unsafe {
            let ql = vdupq_n_u64(block.add(2).cast::<u64>().read_unaligned());
            let qh = block.add(10).cast::<u32>().read_unaligned();
            let qh = vreinterpretq_u8_u32(vdupq_n_u32(qh));
            let bits = vld1q_u8(BITS.as_ptr());
            let mask = vdupq_n_u8(0x03);
            let top = vdupq_n_u8(0xFC);
            let mut codes = [vdupq_n_s8(0); 2];
            for ((codes, shift), spread) in codes.iter_mut().zip(&SHIFTS).zip(&SPREAD) {
                let low = vshlq_u64(ql, vld1q_s64(shift.as_ptr()));
                let low = vandq_u8(vreinterpretq_u8_u64(low), mask);
                let set = vtstq_u8(vqtbl1q_u8(qh, vld1q_u8(spread.as_ptr())), bits);
                // q − 4 is the low bits themselves where the third bit is set, and
                // 0xFC | low (low − 4 as i8) where it is not.
                *codes = vreinterpretq_s8_u8(vorrq_u8(low, vbicq_u8(top, set)));
            }
            codes
        }
    }
}

/// ggml `block_q4_0` (18 bytes: f16 d, 16 bytes of nibbles): value = d·(q − 8).
pub(super) struct Q4_0;

impl Format for Q4_0 {
    const BLOCK_BYTES: usize = 18;
    const INPUTS: usize = 4;
    const ONE_LANE: bool = true;

    #[inline(always)]
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the caller's contract: bytes 2..18 are the nibbles.
        unsafe {
            let [lo, hi] = nibbles(block.add(2));
            let eight = vdupq_n_s8(8);
            [vsubq_s8(vreinterpretq_s8_u8(lo), eight), vsubq_s8(vreinterpretq_s8_u8(hi), eight)]
        }
    }
}

/// ggml `block_q4_1` (20 bytes: f16 d, f16 m, 16 bytes of nibbles): value = d·q + m.
pub(super) struct Q4_1;

impl Format for Q4_1 {
    const BLOCK_BYTES: usize = 20;
    const INPUTS: usize = 2;
    const MIN: bool = true;

    #[inline(always)]
    unsafe fn scales(rows: &[*const u8; ROWS], offset: usize) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller's contract: d and m are the block's first four bytes.
        unsafe {
            let mut dm = [0u32; ROWS];
            for (dm, row) in dm.iter_mut().zip(rows) {
                *dm = row.add(offset).cast::<u32>().read_unaligned();
            }
            // [d0 m0 d1 m1 | d2 m2 d3 m3] as f16, widened in halves, then d and m apart.
            let dm = vreinterpretq_u16_u32(vld1q_u32(dm.as_ptr()));
            let lo = widen_f16(vget_low_u16(dm));
            let hi = widen_f16(vget_high_u16(dm));
            (vuzp1q_f32(lo, hi), vuzp2q_f32(lo, hi))
        }
    }

    #[inline(always)]
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the caller's contract: bytes 4..20 are the nibbles.
        unsafe {
            let [lo, hi] = nibbles(block.add(4));
            [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
        }
    }
}

/// ggml `block_q5_0` (22 bytes: f16 d, 4 bytes of fifth bits, 16 bytes of nibbles):
/// value = d·(q − 16).
pub(super) struct Q5_0;

impl Format for Q5_0 {
    const BLOCK_BYTES: usize = 22;
    const INPUTS: usize = 2;

    #[inline(always)]
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the caller's contract: bytes 2..6 are the fifth bits, 6..22 the nibbles; the
        // other loads read the constant tables.
        unsafe {
            let qh = block.add(2).cast::<u32>().read_unaligned();
            let qh = vreinterpretq_u8_u32(vdupq_n_u32(qh));
            let bits = vld1q_u8(BITS.as_ptr());
            let top = vdupq_n_u8(0xF0);
            let mut codes = nibbles(block.add(6));
            for (codes, spread) in codes.iter_mut().zip(&SPREAD) {
                let set = vtstq_u8(vqtbl1q_u8(qh, vld1q_u8(spread.as_ptr())), bits);
                // q − 16 is the low bits themselves where the fifth bit is set, and
                // 0xF0 | low (low − 16 as i8) where it is not.
                *codes = vorrq_u8(*codes, vbicq_u8(top, set));
            }
            [vreinterpretq_s8_u8(codes[0]), vreinterpretq_s8_u8(codes[1])]
        }
    }
}

/// For a `u32` of per-element bits (Q5_0's and Q3_0's `qh`) broadcast to 16 bytes: byte `j`
/// of each half of the elements takes byte `j / 8` of the `u32` (bytes 2 and 3 for the high
/// half) and tests its bit `j % 8` with [`BITS`].
const SPREAD: [[u8; 16]; 2] = [
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
    [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
];

/// The bit each byte of [`SPREAD`] tests.
const BITS: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/// ggml `block_q8_0` (34 bytes: f16 d, 32 signed bytes): value = d·q.
pub(super) struct Q8_0;

impl Format for Q8_0 {
    const BLOCK_BYTES: usize = 34;
    const INPUTS: usize = 4;
    const ONE_LANE: bool = true;

    #[inline(always)]
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the caller's contract: bytes 2..34 are the codes.
        unsafe { [vld1q_s8(block.add(2).cast()), vld1q_s8(block.add(18).cast())] }
    }

    /// Codes reach −128, so four products may leave i16 (`dot32` on the widening path): two
    /// `dot4`s, whose pairs of products stay within it, and an add.
    #[inline(always)]
    unsafe fn block_sum<D: Dot>(
        [lo, hi]: [int8x16_t; 2],
        [a_lo, a_hi]: [int8x16_t; 2],
    ) -> int32x4_t {
        // SAFETY: the caller's contract.
        unsafe { vaddq_s32(D::dot4(lo, a_lo), D::dot4(hi, a_hi)) }
    }
}

/// The 16 bytes of nibbles at `p`, split into low nibbles (elements 0..16) and high nibbles
/// (elements 16..32), each in 0..16.
///
/// # Safety
/// 16 bytes are readable at `p`.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> [uint8x16_t; 2] {
    // SAFETY: the caller's contract; the rest is register-only.
    unsafe {
        let packed = vld1q_u8(p);
        [vandq_u8(packed, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(packed)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q3_0_codes_take_their_third_bits() {
        for qh in [0, u32::MAX, 0x8000_0001, 0x1234_5678, 0xF0F0_0F0F] {
            let mut block = [0u8; 14];
            block[10..].copy_from_slice(&qh.to_le_bytes());
            for (j, q) in block[2..10].iter_mut().enumerate() {
                *q = (j * 73 + 29) as u8;
            }
            let expect = bytemuck::cast::<[u8; 14], crate::BlockQ3_0>(block).codes();
            let mut got = [0i8; 32];
            // SAFETY: the block is 14 readable bytes; the stores cover `got`.
            unsafe {
                let [lo, hi] = Q3_0::codes(block.as_ptr());
                vst1q_s8(got.as_mut_ptr(), lo);
                vst1q_s8(got.as_mut_ptr().add(16), hi);
            }
            assert_eq!(got, expect, "{qh:#x}");
        }
    }

    #[test]
    fn q5_0_codes_take_their_fifth_bits() {
        for qh in [0, u32::MAX, 0x8000_0001, 0x1234_5678, 0xF0F0_0F0F] {
            let mut block = [0u8; 22];
            block[2..6].copy_from_slice(&qh.to_le_bytes());
            for (j, q) in block[6..].iter_mut().enumerate() {
                *q = (j * 7 % 16) as u8 | ((j * 5 % 16) as u8) << 4;
            }
            let expect = bytemuck::cast::<[u8; 22], crate::BlockQ5_0>(block).codes();
            let mut got = [0i8; 32];
            // SAFETY: the block is 22 readable bytes; the stores cover `got`.
            unsafe {
                let [lo, hi] = Q5_0::codes(block.as_ptr());
                vst1q_s8(got.as_mut_ptr(), lo);
                vst1q_s8(got.as_mut_ptr().add(16), hi);
            }
            assert_eq!(got, expect, "{qh:#x}");
        }
    }
}
