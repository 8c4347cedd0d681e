//! The interleaved IQ4_NL kernel ([`crate::kernels::interleaved::iq4_nl`], in Q4_0's layout)
//! on the AVX2 and AVX-512 VNNI paths.
//!
//! A tile takes one group of 16 rows and up to four inputs. Per block and 4-byte chunk it
//! loads one register per half group, splits it into low and high codes and looks them up in
//! the codebook with one `pshufb` each, once for all inputs; per input it multiplies the
//! values with the chunk's activation bytes, broadcast to every lane, into one i32 sum per
//! row. Each block's sums then take one conversion and one fused multiply-add per half group,
//! with no horizontal sum anywhere. The products, as in the IQ4_XS kernel
//! ([`super::iq4_xs`]):
//! - with VNNI, `vpdpbusd` of `v + 128` into a sum that starts at `−128·Σ q_a`;
//! - on AVX2, `maddubs` of `|v|` and `q_a` with `v`'s sign (pairs at most `2·127·127`, exact
//!   for activation codes above −128), one `madd` per register and input: the low and high
//!   codes' pairs together could pass i16.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](Iq4Nlx16::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

use super::{GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::iq4_nl::{group_bytes, LAYOUT};
use crate::kernels::interleaved::offset::{GROUP_CODES, GROUP_SCALES, HALF_ROWS};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ8, IQ4NL_VALUES};

/// The kernel on the AVX2 path or, with `vnni`, the AVX-512 VNNI path. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Iq4Nlx16>(vnni)
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;

/// IQ4_NL in groups of 16 interleaved rows.
struct Iq4Nlx16;

impl PathKernel for Iq4Nlx16 {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        let n = input.n();
        let xq = input.q8_all();
        let Some(stride) = xq.len().checked_div(n) else { return };
        let row_blocks = row_bytes / LAYOUT.block_bytes();
        let e = extent(w, group_bytes(row_bytes), row_blocks, stride, n, out);
        // SAFETY: the caller's contract; `e` describes `w`'s groups in this layout.
        unsafe { super::run::<Self, D>(w, &e, xq, (n, stride), out) }
    }
}

/// One register of codes looked up, for every input's products.
#[derive(Clone, Copy)]
struct Values {
    /// `v + 128` (VNNI), or `|v|` (AVX2).
    unsigned: __m256i,
    /// `v` (AVX2 only: the signs the activation takes).
    signed: __m256i,
}

impl Values {
    /// The values of the codes `codes` (bytes below 16), for path `D`, from the codebook as
    /// [`table`] gives it.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn of<D: Dot>(table: __m256i, codes: __m256i) -> Self {
        // SAFETY: the caller's contract; register-only.
        unsafe {
            let v = _mm256_shuffle_epi8(table, codes);
            if D::FUSED_DOT4 {
                Self { unsigned: v, signed: v }
            } else {
                Self { unsigned: _mm256_sign_epi8(v, v), signed: v }
            }
        }
    }

    /// `acc` plus, in each row's lane, the products of its four values with the four signed
    /// activation codes `x`: `Σ (v + 128)·q_a` with VNNI, `Σ v·q_a` on AVX2.
    ///
    /// # Safety
    /// The features of the path are available.
    #[inline(always)]
    unsafe fn dot<D: Dot>(&self, acc: __m256i, x: __m256i) -> __m256i {
        // SAFETY: the caller's contract; register-only.
        unsafe {
            if D::FUSED_DOT4 {
                D::dot4(acc, self.unsigned, x)
            } else {
                // |v| × sign(v)·q_a: a pair reaches 2·127·127, within i16.
                D::dot4(acc, self.unsigned, _mm256_sign_epi8(x, self.signed))
            }
        }
    }
}

/// The codebook in both 128-bit lanes: `v + 128` for VNNI's unsigned operand, `v` on AVX2.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn table<D: Dot>() -> __m256i {
    let offset = if D::FUSED_DOT4 { 128 } else { 0 };
    let table: [u8; 16] = std::array::from_fn(|i| (i16::from(IQ4NL_VALUES[i]) + offset) as u8);
    // SAFETY: the caller's contract; the load reads the 16 bytes of `table`.
    unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(table.as_ptr().cast())) }
}

impl GroupTile for Iq4Nlx16 {
    type Block = BlockQ8;
    /// Sums of 4 inputs need 16 of AVX-512's 32 registers; AVX2 has 16.
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn tile<D: Dot, const T: usize>(
        group: &[u8],
        a: &[BlockQ8],
        stride: usize,
        e: &Extent,
        next: &[u8],
        sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
    ) {
        // SAFETY: the loads stay within the group's codes (`256·b + 64·c + 64 <= 256·blocks`)
        // and scales (`32·b + 32 <= 32·blocks` past their start, which `scales_at` places
        // within the group), and the activation blocks `a[t * stride + b]`; prefetches read
        // nothing; the rest is register-only.
        unsafe {
            let codes = group.as_ptr();
            let scales = codes.add(LAYOUT.scales_at(e.row_blocks));
            let (table, nibble) = (table::<D>(), _mm256_set1_epi8(0x0F));
            // An even share of the next group's cache lines per block.
            let share = next.len().div_ceil(e.blocks.max(1));
            let mut prefetched = 0;
            let mut acc = [[_mm256_setzero_ps(); HALVES]; T];
            for b in 0..e.blocks {
                let x: [&BlockQ8; T] = std::array::from_fn(|t| &a[t * stride + b]);
                let until = next.len().min(share * (b + 1));
                while prefetched < until {
                    _mm_prefetch::<_MM_HINT_T0>(next.as_ptr().add(prefetched).cast());
                    prefetched += 64;
                }
                // One input alone has too few sums to hide the products' latency, so it keeps
                // two chains per half: even and odd chunks.
                let chains = if T == 1 { 2 } else { 1 };
                let mut isum = [[[_mm256_setzero_si256(); 2]; HALVES]; T];
                if D::FUSED_DOT4 {
                    for t in 0..T {
                        let start = _mm256_set1_epi32(-128 * x[t].sum);
                        isum[t] = [[start, _mm256_setzero_si256()]; HALVES];
                    }
                }
                for c in 0..4 {
                    let mut lo = [Values { unsigned: nibble, signed: nibble }; HALVES];
                    let mut hi = lo;
                    for h in 0..HALVES {
                        let q =
                            _mm256_loadu_si256(codes.add(GROUP_CODES * b + 64 * c + 32 * h).cast());
                        lo[h] = Values::of::<D>(table, _mm256_and_si256(q, nibble));
                        let high = _mm256_and_si256(_mm256_srli_epi16::<4>(q), nibble);
                        hi[h] = Values::of::<D>(table, high);
                    }
                    for t in 0..T {
                        let q = x[t].qs.as_ptr();
                        let xl = _mm256_set1_epi32(q.add(4 * c).cast::<i32>().read_unaligned());
                        let xh =
                            _mm256_set1_epi32(q.add(16 + 4 * c).cast::<i32>().read_unaligned());
                        for h in 0..HALVES {
                            let sum = &mut isum[t][h][c % chains];
                            *sum = hi[h].dot::<D>(lo[h].dot::<D>(*sum, xl), xh);
                        }
                    }
                }
                let mut d = [_mm256_setzero_ps(); HALVES];
                for (h, d) in d.iter_mut().enumerate() {
                    let at = scales.add(GROUP_SCALES * b + 16 * h);
                    *d = _mm256_cvtph_ps(_mm_loadu_si128(at.cast()));
                }
                for t in 0..T {
                    let da = _mm256_set1_ps(x[t].d);
                    for h in 0..HALVES {
                        let dd = _mm256_mul_ps(d[h], da);
                        let sum = _mm256_add_epi32(isum[t][h][0], isum[t][h][1]);
                        acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), dd, acc[t][h]);
                    }
                }
            }
            for t in 0..T {
                for h in 0..HALVES {
                    _mm256_storeu_ps(sums[t][HALF_ROWS * h..].as_mut_ptr(), acc[t][h]);
                }
            }
        }
    }
}
