//! The eight f32 lanes of ggml's x86 K-quant kernels, in scalar form: the float order that the
//! scalar twin of Q2_K keeps, so that it gives its SIMD kernels' bits. (Q3_K's kernels form
//! the same integer lanes, and share `SCALE_SHUFFLE` on x86, but add each super-block's
//! lanes up exactly before one FMA: see `q3_k/`.)
//!
//! ggml's AVX2 kernels sum the products of each 32 values into eight i32 lanes of four
//! adjacent values (`maddubs` then `madd`), so value `i` of a super-block lands in lane
//! `(i % 32) / 4`. Per super-block each lane is converted to f32 and added to its running f32
//! lane with one FMA; after the last super-block, `hsum_float_8` adds the eight lanes in a
//! fixed tree. Integer lanes are exact, so only the FMAs and the tree round.

/// The i32 lane that value `i` of a super-block lands in.
#[inline(always)]
pub(super) fn lane(i: usize) -> usize {
    (i % 32) / 4
}

/// The eight lane sums of `Σ_i scale(i / 16)·code_i·a_i` over one super-block, for sixteen
/// sub-blocks of 16 values: exact integers.
#[inline(always)]
pub(super) fn scaled_lanes(
    scales: &[i32; 16],
    codes: impl IntoIterator<Item = i32>,
    a: &[i8; 256],
) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for (i, (q, &x)) in codes.into_iter().zip(a).enumerate() {
        lanes[lane(i)] += scales[i / 16] * q * i32::from(x);
    }
    lanes
}

/// ggml's `get_scale_shuffle_q3k(k)` for the x86 kernels: `pshufb` masks that spread eight
/// i16 sub-block scales, repeated in both 128-bit halves, so that run `k` of 32 values in them
/// gets scale `2k` on its first 16 values (the low half, lanes 0..4) and `2k + 1` on the next
/// 16 (the high half, lanes 4..8).
#[cfg(target_arch = "x86_64")]
pub(super) const SCALE_SHUFFLE: [[u8; 32]; 4] =
    [scale_shuffle(0), scale_shuffle(1), scale_shuffle(2), scale_shuffle(3)];

#[cfg(target_arch = "x86_64")]
const fn scale_shuffle(k: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        // The two bytes of i16 scale 2k (low half) or 2k + 1 (high half).
        out[i] = (4 * k + 2 * (i / 16) + i % 2) as u8;
        i += 1;
    }
    out
}

/// `acc[l] += d·lanes[l]` with one rounding per lane (`_mm256_fmadd_ps` of `d` broadcast).
#[inline(always)]
pub(super) fn fma_lanes(acc: &mut [f32; 8], d: f32, lanes: &[i32; 8]) {
    for (a, &l) in acc.iter_mut().zip(lanes) {
        *a = d.mul_add(l as f32, *a);
    }
}

/// ggml's `hsum_float_8`: ((x4 + x0) + (x6 + x2)) + ((x5 + x1) + (x7 + x3)).
#[inline(always)]
pub(super) fn hsum(x: &[f32; 8]) -> f32 {
    ((x[4] + x[0]) + (x[6] + x[2])) + ((x[5] + x[1]) + (x[7] + x[3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_take_four_adjacent_values_of_each_32() {
        assert_eq!([lane(0), lane(3), lane(4), lane(31), lane(32), lane(255)], [0, 0, 1, 7, 0, 7]);
        // Scale 1 on sub-block 0 only, every code 1 and activation 1: lanes 0..4 hold the 16
        // values of sub-block 0, four each.
        let mut scales = [0; 16];
        scales[0] = 1;
        assert_eq!(scaled_lanes(&scales, [1; 256], &[1; 256]), [4, 4, 4, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn hsum_adds_in_ggmls_tree() {
        // 1 + 2^-24 + 2^-24 rounds to 1 when added left to right, but not in this tree, where
        // the two small values meet first (lanes 0 and 4).
        let tiny = f32::EPSILON / 2.0;
        let x = [tiny, 0.0, 1.0, 0.0, tiny, 0.0, 0.0, 0.0];
        assert_eq!(hsum(&x), 1.0 + 2.0 * tiny);
    }
}
