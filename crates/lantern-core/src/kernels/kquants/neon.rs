//! NEON twins of the Q4_K, Q5_K and Q6_K kernels (aarch64), on every aarch64 CPU or with the
//! dot-product instructions.
//!
//! Each gives the bits of its scalar twin ([`super::scalar`]): the same exact integers,
//! combined with the same float operations in the same order, one or two fused multiply-adds
//! per super-block.
//! - Q4_K, per super-block: for each sub-block of 32 values, the products of codes and
//!   activation codes summed into i32 lanes ([`Dot::dot32`]: two `sdot`s, or `smull` and
//!   `smlal` into i16 and a pairwise add) and multiplied by the sub-block's scale, all into one
//!   exact integer; the minimums: `bsums` added in pairs and multiplied by the eight minimums,
//!   also one integer. Each is added with one FMA (by d_w·d_a and dmin_w·d_a), and the result
//!   is their difference.
//! - Q5_K: as Q4_K, with the codes' integer formed as Q6_K's below (codes below 32 with their
//!   fifth bit from `qh`, no offset, and the sub-block scale of each 32 values).
//! - Q6_K, per super-block: eight i32 lanes by element index mod 8. `sdot` sums four adjacent
//!   elements, which fall in four different lanes, so both paths run the same kernel: `smull`
//!   and `smlal2` put the products of elements `l` and `l + 8` of each 16 in i16 lane `l`, and
//!   `smlal` by the sub-block's scale adds them to the i32 lanes. The lanes are then summed
//!   into one exact integer, added with one FMA by d_w·d_a.
//!
//! A row takes up to four inputs per pass, each super-block unpacked once for all of them.
//!
//! # Safety design
//! The `unsafe fn`s here require the features of their [`Dot`] path (`dotprod` for `Sdot`,
//! nothing beyond NEON for `Widening`). They are reached only through the safe wrappers of
//! [`path_fn`], which [`super::matmul_fn`] hands out for `dotprod` only after
//! `Isa::is_available` has detected it on this CPU. All loads are unaligned and stay within one
//! block struct.

use std::arch::aarch64::*;

use super::{rows, RowDot};
use crate::kernels::neon::{path_fn, widen_f16, Dot, PathKernel};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, GgmlType};

/// The matrix kernel for Q4_K, Q5_K or Q6_K rows: with `dotprod`, the `sdot` variant. Callers must
/// have detected `dotprod` before asking for it.
pub(super) fn matmul_fn(ty: GgmlType, dotprod: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::Q4_K => path_fn::<Rows<Q4K>>(dotprod),
        // No `sdot` in Q5_K and Q6_K (see the module docs): one kernel serves both paths.
        GgmlType::Q5_K => path_fn::<Rows<Q5K>>(false),
        GgmlType::Q6_K => path_fn::<Rows<Q6K>>(false),
        _ => return None,
    })
}

/// The kernel for K-quant rows of type `ty` as a one-row, one-input dot product. Callers must
/// have detected `dotprod` before asking for it.
#[cfg(test)]
pub(super) fn k_dot_fn(ty: GgmlType, dotprod: bool) -> Option<super::DotQ8KFn> {
    let dot: super::DotQ8KFn = match (ty, dotprod) {
        (GgmlType::Q4_K, false) => |row, xq| one_row(path_fn::<Rows<Q4K>>(false), row, xq),
        (GgmlType::Q4_K, true) => |row, xq| one_row(path_fn::<Rows<Q4K>>(true), row, xq),
        (GgmlType::Q5_K, _) => |row, xq| one_row(path_fn::<Rows<Q5K>>(false), row, xq),
        (GgmlType::Q6_K, _) => |row, xq| one_row(path_fn::<Rows<Q6K>>(false), row, xq),
        _ => return None,
    };
    Some(dot)
}

/// `row · xq` through `matmul`, the row's length taken as its size.
#[cfg(test)]
fn one_row(matmul: MatmulFn, row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut out = [0.0];
    matmul(row, row.len(), Input::new(&[], &[], 1).with_q8k(xq), &mut out);
    out[0]
}

/// The rows of K-quant format `F`.
struct Rows<F>(std::marker::PhantomData<F>);

impl<F: KFormat> PathKernel for Rows<F> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<On<F, D>>(w, row_bytes, input, out) }
    }
}

/// Format `F` with path `D`'s products, as the shared row driver takes them.
struct On<F, D>(std::marker::PhantomData<(F, D)>);

impl<F: KFormat, D: Dot> RowDot for On<F, D> {
    type Block = F::Block;
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[F::Block], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // SAFETY: the caller's contract.
        unsafe { F::dot::<D, T>(w, a) }
    }
}

/// A K-quant format as the row driver sees it.
trait KFormat {
    /// The format's super-block.
    type Block: bytemuck::Pod;

    /// The dot products of row `w` with the activations `a`, each at least as long as `w`.
    ///
    /// # Safety
    /// The features `D` needs are available.
    unsafe fn dot<D: Dot, const T: usize>(w: &[Self::Block], a: [&[BlockQ8K]; T]) -> [f32; T];
}

/// [`BlockQ4K::scales_and_mins`] on 32-bit words, four sub-blocks at a time, as
/// `ggml_vec_dot_q4_K_q8_K` unpacks them: the eight scales, then the eight minimums.
/// <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/arm/quants.c>
#[inline(always)]
fn scales_and_mins(q: &[u8; 12]) -> uint8x16_t {
    const LOW6: u32 = 0x3F3F_3F3F;
    const LOW4: u32 = 0x0F0F_0F0F;
    const TOP2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    // Sub-blocks 0..4 keep scale and minimum in the low six bits of bytes 0..4 and 4..8;
    // sub-blocks 4..8 keep their low four bits in the nibbles of bytes 8..12 and their top
    // two bits in the top bits of bytes 0..4 (scales) and 4..8 (minimums). The masks keep
    // the shifts from carrying bits across bytes.
    let scales_lo = w0 & LOW6;
    let scales_hi = (w2 & LOW4) | (((w0 >> 6) & TOP2) << 4);
    let mins_lo = w1 & LOW6;
    let mins_hi = ((w2 >> 4) & LOW4) | (((w1 >> 6) & TOP2) << 4);
    let pair = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    // SAFETY: register-only.
    unsafe {
        vcombine_u8(vcreate_u8(pair(scales_lo, scales_hi)), vcreate_u8(pair(mins_lo, mins_hi)))
    }
}

/// `acc + x·v[lane]` in each i32 lane.
#[inline(always)]
unsafe fn mla_lane(acc: int32x4_t, x: int32x4_t, v: int32x4_t, lane: usize) -> int32x4_t {
    // SAFETY: register-only.
    unsafe {
        match lane {
            0 => vmlaq_laneq_s32::<0>(acc, x, v),
            1 => vmlaq_laneq_s32::<1>(acc, x, v),
            2 => vmlaq_laneq_s32::<2>(acc, x, v),
            _ => vmlaq_laneq_s32::<3>(acc, x, v),
        }
    }
}

/// Σ_s m_s · (Σ of `a`'s codes in sub-block s): the eight sub-block minimums `mins` against
/// the activation's sixteen 16-value sums, paired; an exact integer.
#[inline(always)]
unsafe fn minimums_sum(mins: int16x8_t, a: &BlockQ8K) -> i32 {
    // SAFETY: the loads read the 16 values of `bsums` at 0 and 8; the rest is register-only.
    unsafe {
        let bsums = [vld1q_s16(a.bsums.as_ptr()), vld1q_s16(a.bsums.as_ptr().add(8))];
        // A sub-block's activation sum is two 16-value sums (at most 2·16·128).
        let pairs = vpaddq_s16(bsums[0], bsums[1]);
        let summ = vmull_s16(vget_low_s16(pairs), vget_low_s16(mins));
        vaddvq_s32(vmlal_high_s16(summ, pairs, mins))
    }
}

/// ggml `block_q4_K`.
struct Q4K;

impl KFormat for Q4K {
    type Block = BlockQ4K;

    #[inline(always)]
    unsafe fn dot<D: Dot, const T: usize>(w: &[BlockQ4K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: the caller's contract; every load reads 16 bytes of one array field of one
        // block: `qs` at 16-byte steps below 128 (weights) or 256 (activations).
        unsafe {
            let low_mask = vdupq_n_u8(0x0F);
            let (mut acc, mut acc_min) = ([0.0f32; T], [0.0f32; T]);
            for (b, w) in w.iter().enumerate() {
                let d = u32::from_le_bytes([w.d[0], w.d[1], w.dmin[0], w.dmin[1]]);
                let d = widen_f16(vcreate_u16(u64::from(d)));
                let (dw, dminw) = (vgetq_lane_f32::<0>(d), vgetq_lane_f32::<1>(d));
                let sm = scales_and_mins(&w.scales);
                let scales16 = vmovl_u8(vget_low_u8(sm));
                let scales = [
                    vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(scales16))),
                    vreinterpretq_s32_u32(vmovl_high_u16(scales16)),
                ];
                let mins = vreinterpretq_s16_u16(vmovl_high_u8(sm));
                let mut sumi = [vdupq_n_s32(0); T];
                // 32 bytes of codes per 64 values: sub-block 2j in the low nibbles, 2j + 1 in
                // the high nibbles.
                for j in 0..4 {
                    let q = w.qs.as_ptr().add(32 * j);
                    let bits = [vld1q_u8(q), vld1q_u8(q.add(16))];
                    let low = [
                        vreinterpretq_s8_u8(vandq_u8(bits[0], low_mask)),
                        vreinterpretq_s8_u8(vandq_u8(bits[1], low_mask)),
                    ];
                    let high = [
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(bits[0])),
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(bits[1])),
                    ];
                    let (s_low, s_high) = (2 * j, 2 * j + 1);
                    for (sumi, a) in sumi.iter_mut().zip(&a) {
                        let q8 = a[b].qs.as_ptr().add(64 * j);
                        let a_low = [vld1q_s8(q8), vld1q_s8(q8.add(16))];
                        let a_high = [vld1q_s8(q8.add(32)), vld1q_s8(q8.add(48))];
                        // Codes below 16: four products per i16 lane reach 4·15·128.
                        let p = D::dot32(low, a_low);
                        *sumi = mla_lane(*sumi, p, scales[s_low / 4], s_low % 4);
                        let p = D::dot32(high, a_high);
                        *sumi = mla_lane(*sumi, p, scales[s_high / 4], s_high % 4);
                    }
                }
                for t in 0..T {
                    let a = &a[t][b];
                    acc[t] = (vaddvq_s32(sumi[t]) as f32).mul_add(dw * a.d, acc[t]);
                    acc_min[t] = (minimums_sum(mins, a) as f32).mul_add(dminw * a.d, acc_min[t]);
                }
            }
            std::array::from_fn(|t| acc[t] - acc_min[t])
        }
    }
}

/// The signed codes (q − 32) of elements `l`, `l + 32`, `l + 64` and `l + 96` of a Q6_K half,
/// for 16 consecutive `l`: `ql_a` holds `ql[l]`, `ql_b` holds `ql[l + 32]` and `qh` holds
/// `qh[l]` (see [`BlockQ6K`]).
#[inline(always)]
unsafe fn q6_codes(ql_a: uint8x16_t, ql_b: uint8x16_t, qh: uint8x16_t) -> [int8x16_t; 4] {
    // SAFETY: register-only.
    unsafe {
        let low6 = vdupq_n_u8(0x3F);
        let bits45 = vdupq_n_u8(0x30);
        let qh2 = vshrq_n_u8::<2>(qh);
        // `sli` keeps the low nibble of `ql` and puts qh above it; the mask keeps two bits.
        let codes = [
            vandq_u8(vsliq_n_u8::<4>(ql_a, qh), low6),
            vandq_u8(vsliq_n_u8::<4>(ql_b, qh2), low6),
            vorrq_u8(vshrq_n_u8::<4>(ql_a), vandq_u8(qh, bits45)),
            vorrq_u8(vshrq_n_u8::<4>(ql_b), vandq_u8(qh2, bits45)),
        ];
        let offset = vdupq_n_s8(32);
        [
            vsubq_s8(vreinterpretq_s8_u8(codes[0]), offset),
            vsubq_s8(vreinterpretq_s8_u8(codes[1]), offset),
            vsubq_s8(vreinterpretq_s8_u8(codes[2]), offset),
            vsubq_s8(vreinterpretq_s8_u8(codes[3]), offset),
        ]
    }
}

/// `acc + p·v[lane]`, widened to i32: `acc[0]` takes lanes 0..4 of `p`, `acc[1]` lanes 4..8.
#[inline(always)]
unsafe fn mlal_lane(
    acc: [int32x4_t; 2],
    p: int16x8_t,
    v: int16x8_t,
    lane: usize,
) -> [int32x4_t; 2] {
    /// The match arm for each constant lane.
    macro_rules! by_lane {
        ($($l:literal)*) => {
            match lane {
                $($l => [
                    vmlal_laneq_s16::<$l>(acc[0], vget_low_s16(p), v),
                    vmlal_high_laneq_s16::<$l>(acc[1], p, v),
                ],)*
                _ => [
                    vmlal_laneq_s16::<7>(acc[0], vget_low_s16(p), v),
                    vmlal_high_laneq_s16::<7>(acc[1], p, v),
                ],
            }
        };
    }
    // SAFETY: register-only.
    unsafe { by_lane!(0 1 2 3 4 5 6) }
}

/// ggml `block_q5_K`.
struct Q5K;

impl KFormat for Q5K {
    type Block = BlockQ5K;

    #[inline(always)]
    unsafe fn dot<D: Dot, const T: usize>(w: &[BlockQ5K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: every load reads 16 bytes of one array field of one block: `qs` at 16-byte
        // steps below 128, `qh` at 0 and 16, activation `qs` below 256.
        unsafe {
            let zero = vdupq_n_s32(0);
            let (low_mask, one) = (vdupq_n_u8(0x0F), vdupq_n_u8(1));
            let (mut acc, mut acc_min) = ([0.0f32; T], [0.0f32; T]);
            for (b, w) in w.iter().enumerate() {
                let d = u32::from_le_bytes([w.d[0], w.d[1], w.dmin[0], w.dmin[1]]);
                let d = widen_f16(vcreate_u16(u64::from(d)));
                let (dw, dminw) = (vgetq_lane_f32::<0>(d), vgetq_lane_f32::<1>(d));
                let sm = vld1q_u8(w.scales_and_mins().as_ptr());
                let scales = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(sm)));
                let mins = vreinterpretq_s16_u16(vmovl_high_u8(sm));
                let mut lanes = [[zero; 2]; T];
                // 16 values of l at a time (c), then the runs of 64 (j): sub-block 2j in the
                // low nibbles with bit 2j of qh, 2j + 1 in the high nibbles with bit 2j + 1.
                for c in 0..2 {
                    let mut h = vld1q_u8(w.qh.as_ptr().add(16 * c));
                    for j in 0..4 {
                        let bits = vld1q_u8(w.qs.as_ptr().add(32 * j + 16 * c));
                        let low =
                            vorrq_u8(vandq_u8(bits, low_mask), vshlq_n_u8::<4>(vandq_u8(h, one)));
                        h = vshrq_n_u8::<1>(h);
                        let high =
                            vorrq_u8(vshrq_n_u8::<4>(bits), vshlq_n_u8::<4>(vandq_u8(h, one)));
                        h = vshrq_n_u8::<1>(h);
                        for (k, codes) in [low, high].into_iter().enumerate() {
                            let codes = vreinterpretq_s8_u8(codes);
                            let s = 2 * j + k;
                            let first = 32 * s + 16 * c;
                            for (lanes, a) in lanes.iter_mut().zip(&a) {
                                let x = vld1q_s8(a[b].qs.as_ptr().add(first));
                                // Elements l and l + 8 share lane l mod 8 (`first` is a
                                // multiple of 16): two products, at most 2·31·128 in i16.
                                let p = vmull_s8(vget_low_s8(codes), vget_low_s8(x));
                                let p = vmlal_high_s8(p, codes, x);
                                *lanes = mlal_lane(*lanes, p, scales, s);
                            }
                        }
                    }
                }
                for t in 0..T {
                    let a = &a[t][b];
                    let sumi = vaddvq_s32(vaddq_s32(lanes[t][0], lanes[t][1]));
                    acc[t] = (sumi as f32).mul_add(dw * a.d, acc[t]);
                    acc_min[t] = (minimums_sum(mins, a) as f32).mul_add(dminw * a.d, acc_min[t]);
                }
            }
            std::array::from_fn(|t| acc[t] - acc_min[t])
        }
    }
}

/// ggml `block_q6_K`.
struct Q6K;

impl KFormat for Q6K {
    type Block = BlockQ6K;

    #[inline(always)]
    unsafe fn dot<D: Dot, const T: usize>(w: &[BlockQ6K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: every load reads 16 bytes of one array field of one block: `ql` at
        // 16-byte steps below 128, `qh` below 64, `scales` at 0, activation `qs` below 256.
        unsafe {
            let zero = vdupq_n_s32(0);
            let mut acc = [0.0f32; T];
            for (b, w) in w.iter().enumerate() {
                let dw =
                    vgetq_lane_f32::<0>(widen_f16(vcreate_u16(u64::from(u16::from_le_bytes(w.d)))));
                let scales = vld1q_s8(w.scales.as_ptr());
                let scales = [vmovl_s8(vget_low_s8(scales)), vmovl_high_s8(scales)];
                let mut lanes = [[zero; 2]; T];
                // Half h, then 16 values of l at a time (c), then the four runs of 32 (k).
                for h in 0..2 {
                    for c in 0..2 {
                        let ql = w.ql.as_ptr().add(64 * h + 16 * c);
                        let qh = vld1q_u8(w.qh.as_ptr().add(32 * h + 16 * c));
                        let codes = q6_codes(vld1q_u8(ql), vld1q_u8(ql.add(32)), qh);
                        for (k, &codes) in codes.iter().enumerate() {
                            let first = 128 * h + 32 * k + 16 * c;
                            let s = first / 16;
                            for (lanes, a) in lanes.iter_mut().zip(&a) {
                                let x = vld1q_s8(a[b].qs.as_ptr().add(first));
                                // Elements l and l + 8 share lane l mod 8 (`first` is a
                                // multiple of 16): two products, at most 2·32·128 in i16.
                                let p = vmull_s8(vget_low_s8(codes), vget_low_s8(x));
                                let p = vmlal_high_s8(p, codes, x);
                                *lanes = mlal_lane(*lanes, p, scales[s / 8], s % 8);
                            }
                        }
                    }
                }
                for t in 0..T {
                    let sumi = vaddvq_s32(vaddq_s32(lanes[t][0], lanes[t][1]));
                    acc[t] = (sumi as f32).mul_add(dw * a[t][b].d, acc[t]);
                }
            }
            acc
        }
    }
}

#[cfg(test)]
mod tests {
    //! The NEON kernels against their scalar twins, bit for bit, on both paths.

    use rand::Rng;

    use super::*;
    use crate::kernels::kquants::scalar::{dot_q4_k, dot_q5_k, dot_q6_k};
    use crate::kernels::kquants::tests::{activations, quantize_q8k, random_row, rng};
    use crate::kernels::kquants::DotQ8KFn;
    use crate::kernels::Isa;
    use crate::QK_K;

    const KERNELS: [(GgmlType, DotQ8KFn); 3] =
        [(GgmlType::Q4_K, dot_q4_k), (GgmlType::Q5_K, dot_q5_k), (GgmlType::Q6_K, dot_q6_k)];

    /// The paths this CPU has: plain NEON, and `dotprod` if detected.
    fn paths() -> Vec<bool> {
        let dot = crate::kernels::runs(Isa::NeonDot, "only the plain NEON path is checked");
        [false, true].into_iter().filter(|&d| !d || dot).collect()
    }

    #[test]
    fn scales_and_mins_unpack_as_the_block_does() {
        let mut rng = rng(41);
        let mut block: BlockQ4K = bytemuck::Zeroable::zeroed();
        for _ in 0..1000 {
            rng.fill(&mut block.scales);
            let mut got = [0u8; 16];
            // SAFETY: the store writes the 16 bytes of `got`.
            unsafe { vst1q_u8(got.as_mut_ptr(), scales_and_mins(&block.scales)) };
            assert_eq!(got, block.scales_and_mins(), "{:?}", block.scales);
        }
    }

    #[test]
    fn one_row_matches_scalar_bit_for_bit() {
        let mut rng = rng(42);
        for dotprod in paths() {
            for (ty, scalar) in KERNELS {
                let dot = k_dot_fn(ty, dotprod).unwrap();
                for blocks in [1, 2, 3, 6, 17] {
                    let n = blocks * QK_K;
                    for _ in 0..4 {
                        let row = random_row(ty, n, &mut rng);
                        let xq = quantize_q8k(&activations(n, &mut rng));
                        let (y, expect) = (dot(&row, &xq), scalar(&row, &xq));
                        assert_eq!(y.to_bits(), expect.to_bits(), "{ty:?} dotprod={dotprod} n={n}");
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_codes_match_scalar() {
        // The largest codes and scales the blocks can hold (Q4_K: codes 15, Q5_K: codes 31,
        // scales and minimums 63; Q6_K: codes −32 and 31, scales −128 and 127) against activation codes
        // of ±127.
        let qs: [i8; QK_K] = std::array::from_fn(|i| if i % 3 == 0 { -127 } else { 127 });
        let bsums: [i16; 16] =
            std::array::from_fn(|j| qs[16 * j..16 * j + 16].iter().map(|&q| i16::from(q)).sum());
        let xq = [BlockQ8K { d: 0.5, qs, bsums }; 2];
        let one = half::f16::ONE.to_le_bytes();
        let q4k: Vec<u8> = [&one[..], &one[..], &[0xFF; 12], &[0xFF; 128]].concat().repeat(2);
        let q5k: Vec<u8> =
            [&one[..], &one[..], &[0xFF; 12], &[0xFF; 32], &[0xFF; 128]].concat().repeat(2);
        let (scale_lo, scale_hi) = ([0x80u8; 8], [0x7Fu8; 8]);
        let q6k_max = [&[0xFF; 128][..], &[0xFF; 64], &scale_lo, &scale_hi, &one].concat();
        let q6k_min = [&[0x00; 128][..], &[0x00; 64], &scale_hi, &scale_lo, &one].concat();
        for dotprod in paths() {
            for (ty, scalar) in KERNELS {
                let dot = k_dot_fn(ty, dotprod).unwrap();
                let rows = match ty {
                    GgmlType::Q4_K => vec![q4k.clone()],
                    GgmlType::Q5_K => vec![q5k.clone()],
                    _ => vec![[&q6k_max[..], &q6k_min].concat(), [&q6k_min[..], &q6k_max].concat()],
                };
                for row in rows {
                    let (y, expect) = (dot(&row, &xq), scalar(&row, &xq));
                    assert_eq!(y.to_bits(), expect.to_bits(), "{ty:?} dotprod={dotprod}");
                }
            }
        }
    }

    #[test]
    fn batches_match_scalar_bit_for_bit() {
        let mut rng = rng(43);
        let (rows, len) = (3, 2 * QK_K);
        for dotprod in paths() {
            for (ty, scalar) in KERNELS {
                let matmul = matmul_fn(ty, dotprod).unwrap();
                for n in [1, 2, 3, 4, 5, 9] {
                    let x: Vec<f32> = (0..n).flat_map(|_| activations(len, &mut rng)).collect();
                    let xqk = quantize_q8k(&x);
                    let w: Vec<u8> =
                        (0..rows).flat_map(|_| random_row(ty, len, &mut rng)).collect();
                    let row_bytes = w.len() / rows;
                    let mut out = vec![f32::NAN; rows * n];
                    matmul(&w, row_bytes, Input::new(&x, &[], n).with_q8k(&xqk), &mut out);
                    for (t, out) in out.chunks_exact(rows).enumerate() {
                        let xq = &xqk[t * len / QK_K..(t + 1) * len / QK_K];
                        for (r, (&y, row)) in out.iter().zip(w.chunks_exact(row_bytes)).enumerate()
                        {
                            let expect = scalar(row, xq);
                            let at = format!("{ty:?} dotprod={dotprod} n={n} row {r} input {t}");
                            assert_eq!(y.to_bits(), expect.to_bits(), "{at}");
                        }
                    }
                }
            }
        }
    }
}
