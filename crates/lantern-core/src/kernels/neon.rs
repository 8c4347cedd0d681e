//! NEON kernels (aarch64) for Q3_0, Q4_0, Q4_1, Q5_0 and Q8_0, on every aarch64 CPU or with the
//! dot-product instructions.
//!
//! # Tiles
//! The matrix kernels walk a tile of 4 weight rows and one to four inputs over the blocks.
//! Per block, they widen the 4 rows' f16 scales at once, unpack each row's codes once for all
//! inputs and load each activation block once for all rows. Each row keeps the float
//! arithmetic of its scalar twin ([`super::scalar`]), so the results are the same bits:
//! - Q4_1, Q5_0, Q8_0: 8 f32 lanes per row (two registers), lane `k` taking, with one FMA per
//!   block, the exact integer sum of the products of elements `4k..4k + 4` times `d_w·d_a`;
//!   the result is the lanes' sum in `Lanes::sum`'s order (plus, for Q4_1, the minimums'
//!   FMA chain, one lane per row). Two inputs per tile: their 16 accumulators take half the
//!   32 vector registers.
//! - Q4_0, Q3_0: one f32 lane per row, taking each block's exact integer sum with one FMA;
//!   the 4 rows' sums share one register, so a tile takes four inputs.
//!
//! # Integer products
//! Codes are unpacked as signed bytes (`q − 4`, `q − 8`, `q − 16`, or `q` itself), so both paths
//! multiply signed by signed and form the same exact integers:
//! - [`Sdot`] (the `dotprod` extension, Cortex-A55/A76 and later): one `sdot` sums four byte
//!   products into each i32 lane, which is exactly one of the 8 lanes above.
//! - [`Widening`] (any aarch64 CPU): `smull` into i16 products, then pairwise additions.
//!
//! # Safety design
//! The kernels are `unsafe fn`s generic over [`Dot`]; those given [`Sdot`] require `dotprod`.
//! They are reached only through the safe wrappers of [`path_fn`], which
//! [`super::matmul_fn_for`] hands out for `dotprod` only after [`super::Isa::is_available`] has
//! detected it on this CPU (NEON itself is part of every aarch64 CPU). The wrappers derive every
//! row pointer and block offset from the slice lengths, so all loads stay inside the weight
//! rows and activation blocks they were given; loads are unaligned (blocks have alignment 1).
//!
//! No closures around [`Dot`] methods: a closure is compiled without the enclosing function's
//! target features, so `sdot` would become a call.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{Input, MatmulFn};
use crate::{BlockQ8, GgmlType, QK8};

/// The tile kernel for `ty`, if there is one: with `dotprod`, the `sdot` variant. Callers must
/// have detected `dotprod` before asking for it.
pub(super) fn matmul_fn(ty: GgmlType, dotprod: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::Q3_0 => path_fn::<Tiles<Q3_0>>(dotprod),
        GgmlType::Q4_0 => path_fn::<Tiles<Q4_0>>(dotprod),
        GgmlType::Q4_1 => path_fn::<Tiles<Q4_1>>(dotprod),
        GgmlType::Q5_0 => path_fn::<Tiles<Q5_0>>(dotprod),
        GgmlType::Q8_0 => path_fn::<Tiles<Q8_0>>(dotprod),
        _ => return None,
    })
}

/// A family of matrix kernels written once for both paths' integer products.
pub(super) trait PathKernel {
    /// The [`MatmulFn`] contract, with `D`'s products.
    ///
    /// # Safety
    /// The features `D` needs are available.
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]);
}

/// `K` with [`Sdot`] when `dotprod`, else with [`Widening`]. Callers must have detected
/// `dotprod` before asking for it.
pub(super) fn path_fn<K: PathKernel>(dotprod: bool) -> MatmulFn {
    if dotprod {
        on_dotprod::<K>
    } else {
        on_neon::<K>
    }
}

fn on_neon<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: `Widening` needs only NEON, which every aarch64 CPU has.
    unsafe { K::run::<Widening>(w, row_bytes, input, out) }
}

fn on_dotprod<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: handed out only after `dotprod` detection (see the module docs).
    unsafe { run_dotprod::<K>(w, row_bytes, input, out) }
}

/// `K` with `sdot`, compiled with the feature so that every `sdot` is inlined.
#[target_feature(enable = "dotprod")]
unsafe fn run_dotprod<K: PathKernel>(
    w: &[u8],
    row_bytes: usize,
    input: Input<'_>,
    out: &mut [f32],
) {
    // SAFETY: `dotprod` is enabled on this function.
    unsafe { K::run::<Sdot>(w, row_bytes, input, out) }
}

/// A path's integer products of signed bytes, into i32 lanes. Both paths give the same
/// integers.
pub(super) trait Dot {
    /// `Σ_k w[4i + k]·a[4i + k]` in each i32 lane `i`; exact when every two adjacent products
    /// sum within i16, as they do for activation codes in −127..=127 and any weight byte.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn dot4(w: int8x16_t, a: int8x16_t) -> int32x4_t;

    /// Four i32 lanes whose total is `Σ_j w[j]·a[j]` over both halves (32 products), spread
    /// over the lanes in the path's own way; exact when any four products sum within i16, as
    /// they do for weight codes of magnitude up to 63.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn dot32(w: [int8x16_t; 2], a: [int8x16_t; 2]) -> int32x4_t;
}

/// The dot-product extension: `sdot` sums four byte products into each i32 lane.
pub(super) struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot4(w: int8x16_t, a: int8x16_t) -> int32x4_t {
        // SAFETY: `dotprod` is available (the caller's contract).
        unsafe { sdot(vdupq_n_s32(0), w, a) }
    }

    #[inline(always)]
    unsafe fn dot32([w0, w1]: [int8x16_t; 2], [a0, a1]: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: `dotprod` is available (the caller's contract).
        unsafe { sdot(sdot(vdupq_n_s32(0), w0, a0), w1, a1) }
    }
}

/// `acc + Σ_k a[4i + k]·b[4i + k]` in each i32 lane `i`, exact for all bytes.
///
/// The intrinsic is not stable yet, hence the instruction itself.
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction; the caller's contract guarantees `dotprod`.
    unsafe {
        asm!(
            "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Plain Advanced SIMD: `smull` into i16 products, then pairwise additions into i32.
pub(super) struct Widening;

impl Dot for Widening {
    #[inline(always)]
    unsafe fn dot4(w: int8x16_t, a: int8x16_t) -> int32x4_t {
        // SAFETY: NEON only.
        unsafe {
            let lo = vmull_s8(vget_low_s8(w), vget_low_s8(a));
            let hi = vmull_high_s8(w, a);
            // Adjacent pairs in i16 (the caller keeps them in range), pairs of pairs in i32.
            vpaddlq_s16(vpaddq_s16(lo, hi))
        }
    }

    #[inline(always)]
    unsafe fn dot32([w0, w1]: [int8x16_t; 2], [a0, a1]: [int8x16_t; 2]) -> int32x4_t {
        // SAFETY: NEON only.
        unsafe {
            // Four products per i16 lane (the caller keeps them in range), then pairs in i32.
            let p = vmull_s8(vget_low_s8(w0), vget_low_s8(a0));
            let p = vmlal_high_s8(p, w0, a0);
            let p = vmlal_s8(p, vget_low_s8(w1), vget_low_s8(a1));
            vpaddlq_s16(vmlal_high_s8(p, w1, a1))
        }
    }
}

/// The four f16 values in `h` widened to f32, exactly (`fcvtl`, part of every aarch64 CPU;
/// the intrinsic needs the unstable `f16` type).
#[inline(always)]
pub(super) fn widen_f16(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: a register-only instruction of base Advanced SIMD.
    unsafe {
        asm!(
            "fcvtl {0:v}.4s, {1:v}.4h",
            out(vreg) out,
            in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Rows per tile.
const ROWS: usize = 4;
/// Inputs per tile at most.
const MAX_INPUTS: usize = 4;
/// Bytes per cache line (64 on the Cortex cores), the step of the prefetches.
const CACHE_LINE: usize = 64;

/// The tiles of format `F`.
struct Tiles<F>(std::marker::PhantomData<F>);

impl<F: Format> PathKernel for Tiles<F> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { tiles::<F, D>(w, row_bytes, input, out) }
    }
}

/// A 32-value weight format as the tiles see it.
trait Format {
    /// Bytes per block of 32 weights.
    const BLOCK_BYTES: usize;
    /// Inputs a tile takes at once (up to [`MAX_INPUTS`]), as many as keep the accumulators
    /// in registers.
    const INPUTS: usize;
    /// Whether a row keeps one f32 lane (Q4_0) rather than eight.
    const ONE_LANE: bool = false;
    /// Whether blocks hold a minimum `m`, whose `m_w·s_a` chain is added at the end (Q4_1).
    const MIN: bool = false;

    /// The 4 rows' scales (and minimums, with [`Format::MIN`]) of their blocks at byte
    /// `offset`, in row order. Blocks without a minimum start with their f16 scale `d`.
    ///
    /// # Safety
    /// The block's bytes are readable from each row pointer.
    #[inline(always)]
    unsafe fn scales(rows: &[*const u8; ROWS], offset: usize) -> (float32x4_t, float32x4_t) {
        // SAFETY: the caller's contract: d is the block's first two bytes.
        let d = unsafe { f16_rows(rows, offset) };
        (d, d)
    }

    /// The 32 codes of the block at `block` as signed bytes: elements 0..16 and 16..32.
    ///
    /// # Safety
    /// The block's bytes are readable.
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2];
}

/// lantern `Q3_0` (14 bytes: f16 d, 8 bytes of low two bits, 4 bytes of third bits):
/// value = d·(q − 4).
struct Q3_0;

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
struct Q4_0;

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
struct Q4_1;

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
struct Q5_0;

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
struct Q8_0;

impl Format for Q8_0 {
    const BLOCK_BYTES: usize = 34;
    const INPUTS: usize = 2;

    #[inline(always)]
    unsafe fn codes(block: *const u8) -> [int8x16_t; 2] {
        // SAFETY: the caller's contract: bytes 2..34 are the codes.
        unsafe { [vld1q_s8(block.add(2).cast()), vld1q_s8(block.add(18).cast())] }
    }
}

/// The f16 values at byte `offset` of the 4 rows, widened to f32 in row order.
///
/// # Safety
/// Two bytes are readable at `offset` of each row pointer.
#[inline(always)]
unsafe fn f16_rows(rows: &[*const u8; ROWS], offset: usize) -> float32x4_t {
    let mut bits = 0u64;
    for (r, row) in rows.iter().enumerate() {
        // SAFETY: the caller's contract.
        let d = unsafe { row.add(offset).cast::<u16>().read_unaligned() };
        bits |= u64::from(d) << (16 * r);
    }
    // SAFETY: register-only.
    widen_f16(unsafe { vcreate_u16(bits) })
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

/// The running sums of a tile for one input.
#[derive(Clone, Copy)]
struct Acc {
    /// Row `r`'s lanes 0..4 in `lanes[2r]` and 4..8 in `lanes[2r + 1]`; with
    /// [`Format::ONE_LANE`], `lanes[0]` holds one lane per row.
    lanes: [float32x4_t; 2 * ROWS],
    /// Q4_1's `Σ m_w·s_a`, one lane per row.
    mins: float32x4_t,
}

impl Acc {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: register-only.
        let zero = unsafe { vdupq_n_f32(0.0) };
        Self { lanes: [zero; 2 * ROWS], mins: zero }
    }
}

/// `out[t * rows + r] = row_r · input_t` for every whole row of `w` that `out` has room for and
/// the `n` inputs, over the blocks that the row and the input both hold.
///
/// # Safety
/// The features `D` needs are available.
#[inline(always)]
unsafe fn tiles<F: Format, D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let n = input.n();
    if row_bytes == 0 || n == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    // Every input holds the same number of blocks (see `Input`).
    let xq = input.q8_all();
    let per_input = xq.len() / n;
    let blocks = (row_bytes / F::BLOCK_BYTES).min(per_input);
    let x = |t: usize| &xq[t * per_input..t * per_input + blocks];
    for r0 in (0..rows).step_by(ROWS) {
        // A last partial tile repeats its last row; the extra results are not stored.
        let ptrs: [*const u8; ROWS] = std::array::from_fn(|i| {
            let r = (r0 + i).min(rows - 1);
            // SAFETY: r < rows, so the row lies within `w`.
            unsafe { w.as_ptr().add(r * row_bytes) }
        });
        // The next tile's rows start where no stream the hardware prefetcher follows ends.
        let next = &w[w.len().min((r0 + ROWS) * row_bytes)..];
        let next = &next[..next.len().min(ROWS * row_bytes)];
        let mut t0 = 0;
        while t0 < n {
            let inputs = F::INPUTS.min(n - t0);
            let next = if t0 == 0 { next } else { &[] };
            let mut sums = [[0.0; ROWS]; MAX_INPUTS];
            // SAFETY: each row pointer has `blocks * BLOCK_BYTES <= row_bytes` readable bytes,
            // and each input `blocks` blocks; the features are the caller's contract. Arms
            // beyond `F::INPUTS` are never taken and compile to nothing.
            unsafe {
                match inputs {
                    4 if F::INPUTS >= 4 => {
                        sums =
                            tile::<F, D, 4>(&ptrs, [x(t0), x(t0 + 1), x(t0 + 2), x(t0 + 3)], next)
                    }
                    3 if F::INPUTS >= 3 => sums[..3].copy_from_slice(&tile::<F, D, 3>(
                        &ptrs,
                        [x(t0), x(t0 + 1), x(t0 + 2)],
                        next,
                    )),
                    2 if F::INPUTS >= 2 => {
                        sums[..2].copy_from_slice(&tile::<F, D, 2>(&ptrs, [x(t0), x(t0 + 1)], next))
                    }
                    _ => sums[..1].copy_from_slice(&tile::<F, D, 1>(&ptrs, [x(t0)], next)),
                }
            }
            let valid = ROWS.min(rows - r0);
            for (t, sums) in sums.iter().take(inputs).enumerate() {
                let start = (t0 + t) * rows + r0;
                out[start..start + valid].copy_from_slice(&sums[..valid]);
            }
            t0 += inputs;
        }
    }
}

/// One tile: `ROWS` rows times `T` inputs, over as many blocks as each input holds,
/// prefetching `next` on the way. Returns row `i`'s result for input `t` at `[t][i]`.
///
/// # Safety
/// Each row pointer has `xq[t].len()` whole blocks readable, every `xq[t]` has the same
/// length, and the features `D` needs are available.
#[inline(always)]
unsafe fn tile<F: Format, D: Dot, const T: usize>(
    rows: &[*const u8; ROWS],
    xq: [&[BlockQ8]; T],
    next: &[u8],
) -> [[f32; ROWS]; T] {
    let blocks = xq[0].len();
    // Equal lengths, stated so that the indexing below needs no bounds checks.
    let xq = xq.map(|x| &x[..blocks]);
    // SAFETY: the caller's contract; the activation loads read the 32 bytes of a block's `qs`.
    unsafe {
        let mut acc = [Acc::zero(); T];
        // An even share of the next tile's cache lines per block.
        let share = next.len().div_ceil(blocks.max(1));
        let mut prefetched = 0;
        for b in 0..blocks {
            let until = next.len().min(share * (b + 1));
            while prefetched < until {
                prefetch(next.as_ptr().add(prefetched));
                prefetched += CACHE_LINE;
            }
            let offset = b * F::BLOCK_BYTES;
            let (d, m) = F::scales(rows, offset);
            let mut dd = [vdupq_n_f32(0.0); T];
            let mut a = [[vdupq_n_s8(0); 2]; T];
            for t in 0..T {
                let x = &xq[t][b];
                // d_w·d_a per row, the product the scalar twin rounds.
                dd[t] = vmulq_n_f32(d, x.d);
                a[t] = [vld1q_s8(x.qs.as_ptr()), vld1q_s8(x.qs.as_ptr().add(QK8 / 2))];
                if F::MIN {
                    // `mins = m.mul_add(s, mins)`, one lane per row.
                    acc[t].mins = vfmaq_n_f32(acc[t].mins, m, x.s);
                }
            }
            if F::ONE_LANE {
                let mut codes = [[vdupq_n_s8(0); 2]; ROWS];
                for (codes, row) in codes.iter_mut().zip(rows) {
                    *codes = F::codes(row.add(offset));
                }
                for t in 0..T {
                    let s = [
                        D::dot32(codes[0], a[t]),
                        D::dot32(codes[1], a[t]),
                        D::dot32(codes[2], a[t]),
                        D::dot32(codes[3], a[t]),
                    ];
                    // Each row's lanes added up: the rows' exact block sums, in row order.
                    let sumi = vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
                    acc[t].lanes[0] = vfmaq_f32(acc[t].lanes[0], dd[t], vcvtq_f32_s32(sumi));
                }
            } else {
                // Row by row, each row's codes serving every input.
                for (r, row) in rows.iter().enumerate() {
                    let [lo, hi] = F::codes(row.add(offset));
                    for t in 0..T {
                        let lo = vcvtq_f32_s32(D::dot4(lo, a[t][0]));
                        let hi = vcvtq_f32_s32(D::dot4(hi, a[t][1]));
                        acc[t].lanes[2 * r] = fma_lane(acc[t].lanes[2 * r], lo, dd[t], r);
                        acc[t].lanes[2 * r + 1] = fma_lane(acc[t].lanes[2 * r + 1], hi, dd[t], r);
                    }
                }
            }
        }
        let mut sums = [[0.0; ROWS]; T];
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            if F::ONE_LANE {
                vst1q_f32(sums.as_mut_ptr(), acc.lanes[0]);
                continue;
            }
            let mut mins = [0.0f32; ROWS];
            vst1q_f32(mins.as_mut_ptr(), acc.mins);
            for (r, sum) in sums.iter_mut().enumerate() {
                *sum = lanes_sum(acc.lanes[2 * r], acc.lanes[2 * r + 1]);
                if F::MIN {
                    *sum += mins[r];
                }
            }
        }
        sums
    }
}

/// `acc + x·v[lane]` in each lane, with one rounding (an FMA).
#[inline(always)]
unsafe fn fma_lane(acc: float32x4_t, x: float32x4_t, v: float32x4_t, lane: usize) -> float32x4_t {
    // SAFETY: register-only.
    unsafe {
        match lane {
            0 => vfmaq_laneq_f32::<0>(acc, x, v),
            1 => vfmaq_laneq_f32::<1>(acc, x, v),
            2 => vfmaq_laneq_f32::<2>(acc, x, v),
            _ => vfmaq_laneq_f32::<3>(acc, x, v),
        }
    }
}

/// The sum of eight lanes `a[0..4]` (`lo`) and `a[4..8]` (`hi`) in `Lanes::sum`'s order:
/// `((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3))`.
#[inline(always)]
fn lanes_sum(lo: float32x4_t, hi: float32x4_t) -> f32 {
    // SAFETY: register-only.
    unsafe {
        let r = vaddq_f32(hi, lo);
        vpadds_f32(vadd_f32(vget_low_f32(r), vget_high_f32(r)))
    }
}

/// Asks for the cache line at `p` to be loaded into L2: a whole tile ahead would not fit in
/// L1 beside the current one for long rows, and from L2 the core's own prefetcher follows
/// each row once the tile reads it.
#[inline(always)]
fn prefetch(p: *const u8) {
    // SAFETY: a prefetch is a hint; it never faults and changes no architectural state.
    unsafe { asm!("prfm pldl2keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Isa;

    #[target_feature(enable = "dotprod")]
    unsafe fn sdot_products(w: [i8; 32], a: [i8; 32]) -> ([i32; 8], i32) {
        // SAFETY: `dotprod` is enabled here; the loads and stores cover the arrays.
        unsafe { products::<Sdot>(w, a) }
    }

    /// `D::dot4` of both halves and the total of `D::dot32`.
    unsafe fn products<D: Dot>(w: [i8; 32], a: [i8; 32]) -> ([i32; 8], i32) {
        // SAFETY: the caller's contract; the loads and stores cover the arrays.
        unsafe {
            let w = [vld1q_s8(w.as_ptr()), vld1q_s8(w.as_ptr().add(16))];
            let a = [vld1q_s8(a.as_ptr()), vld1q_s8(a.as_ptr().add(16))];
            let mut lanes = [0i32; 8];
            vst1q_s32(lanes.as_mut_ptr(), D::dot4(w[0], a[0]));
            vst1q_s32(lanes.as_mut_ptr().add(4), D::dot4(w[1], a[1]));
            (lanes, vaddvq_s32(D::dot32(w, a)))
        }
    }

    #[test]
    fn paths_form_the_same_exact_integers() {
        // The largest products each method is specified for, and mixed signs.
        let cases: [([i8; 32], [i8; 32]); 4] = [
            ([-128; 32], [127; 32]),
            ([-128; 32], [-127; 32]),
            ([63; 32], [-128; 32]),
            (
                std::array::from_fn(|j| (j as i8 * 37) % 64),
                std::array::from_fn(|j| 127 - 9 * j as i8),
            ),
        ];
        for (w, a) in cases {
            let lanes: [i32; 8] = std::array::from_fn(|k| {
                (4 * k..4 * k + 4).map(|j| i32::from(w[j]) * i32::from(a[j])).sum()
            });
            let total: i32 = lanes.iter().sum();
            // SAFETY: NEON only.
            let (l, t) = unsafe { products::<Widening>(w, a) };
            assert_eq!(l, lanes, "dot4, plain");
            if w[0] != -128 {
                // dot32 is specified for codes of magnitude up to 63.
                assert_eq!(t, total, "dot32, plain");
            }
            if Isa::NeonDot.is_available() {
                // SAFETY: `dotprod` is available.
                assert_eq!(unsafe { sdot_products(w, a) }, (lanes, total), "sdot");
            }
        }
    }

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
