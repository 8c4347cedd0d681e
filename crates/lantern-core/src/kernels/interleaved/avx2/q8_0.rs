//! The interleaved Q8_0 kernel ([`crate::kernels::interleaved::q8_0`]) on the AVX2 and AVX-512
//! VNNI paths.
//!
//! A tile takes one group of 16 rows and up to eight inputs (four on AVX2). Per block and
//! 4-byte chunk it loads one register of codes per half group and adds their products with
//! the chunk's activation bytes, broadcast to every lane, into one i32 sum per row and input.
//! Each block's sums then take one conversion and one fused multiply-add per half group,
//! with no horizontal sum anywhere.
//!
//! How a path multiplies the stored codes `u = q + 128` by the signed activation codes:
//! - with VNNI, `vpdpbusd(u, q_a)`, exact in i32, into a sum that starts at `−128·Σ q_a`: one
//!   instruction per register and input;
//! - on AVX2, `maddubs` would saturate `u·q_a` pairs, so it takes ggml's `mul_sum_i8_pairs`
//!   form: `q = u ^ 0x80` and `|q|` once per register for all inputs, then per input
//!   `|q|·(q_a with q's sign)` (pairs at most `2·128·127`), `madd` and an add.
//!
//! With VNNI the stored `q + 128` beat the two other exact forms in the same tiles (criterion,
//! three alternating runs on a loaded 2-core Xeon): a batch of 64 inputs on the gate/up shape
//! (1536 × 576) took 0.85–0.93 ms, against 1.37–1.51 ms for ggml's sign form (a sign
//! operation per register and input) and 1.09–1.25 ms for `(q_a + 128)·q − 128·Σ q` (an `xor`
//! per broadcast and a `vpdpbusd` per register for `Σ q`); one input took 24–26 µs against
//! 35–37 and 35–40.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](Q8_0x16::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

use super::{GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::q8_0::{
    group_bytes, scales_at, BLOCK_BYTES, CHUNKS, CODE_OFFSET, GROUP_CODES, GROUP_SCALES, HALF_ROWS,
};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::BlockQ8;

/// The kernel on the AVX2 path or, with `vnni`, the AVX-512 VNNI path. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Q8_0x16>(vnni)
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;

/// Q8_0 in groups of 16 interleaved rows.
struct Q8_0x16;

impl PathKernel for Q8_0x16 {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        let n = input.n();
        let xq = input.q8_all();
        let Some(stride) = xq.len().checked_div(n) else { return };
        let e = extent(w, group_bytes(row_bytes), row_bytes / BLOCK_BYTES, stride, n, out);
        // SAFETY: the caller's contract; `e` describes `w`'s groups in this layout.
        unsafe { super::run::<Self, D>(w, &e, xq, (n, stride), out) }
    }
}

/// One register of codes, prepared for every input's products.
#[derive(Clone, Copy)]
struct Codes {
    /// The stored codes `q + 128` (VNNI), or `|q|` (AVX2).
    unsigned: __m256i,
    /// The signed codes `q` (AVX2 only: the signs the activation takes).
    signed: __m256i,
}

impl Codes {
    /// The register of stored codes at `p`, for path `D`.
    ///
    /// # Safety
    /// The features of the path are available; `p` points to 32 readable bytes.
    #[inline(always)]
    unsafe fn load<D: Dot>(p: *const u8) -> Self {
        // SAFETY: the caller's contract; the load reads the 32 bytes at `p`.
        unsafe {
            let unsigned = _mm256_loadu_si256(p.cast());
            if D::FUSED_DOT4 {
                Self { unsigned, signed: unsigned }
            } else {
                let signed = _mm256_xor_si256(unsigned, _mm256_set1_epi8(0x80u8 as i8));
                Self { unsigned: _mm256_sign_epi8(signed, signed), signed }
            }
        }
    }

    /// `acc` plus, in each row's lane, the products of its four codes with the four signed
    /// activation codes `x` (the same in every lane): `Σ (q + 128)·q_a` with VNNI, whose
    /// sums start at `−128·Σ q_a`, and `Σ q·q_a` on AVX2.
    ///
    /// # Safety
    /// The features of the path are available.
    #[inline(always)]
    unsafe fn dot<D: Dot>(&self, acc: __m256i, x: __m256i) -> __m256i {
        // SAFETY: the caller's contract; register-only.
        unsafe {
            if D::FUSED_DOT4 {
                // `vpdpbusd` adds its four products into i32 with no intermediate to saturate.
                D::dot4(acc, self.unsigned, x)
            } else {
                // |q| times q_a with q's sign: pairs at most 2 · 128 · 127 = 32512, an i16.
                D::dot4(acc, self.unsigned, _mm256_sign_epi8(x, self.signed))
            }
        }
    }
}

impl GroupTile for Q8_0x16 {
    type Block = BlockQ8;
    /// Eight inputs (four on AVX2), though their sums and running totals outnumber the
    /// registers: against four (two), batches of 64 on the gate/up and down shapes ran as fast
    /// or up to 10% faster with VNNI and 20–30% faster on AVX2 (criterion).
    const INPUTS: usize = MAX_INPUTS;

    #[inline(always)]
    unsafe fn tile<D: Dot, const T: usize>(
        group: &[u8],
        a: &[BlockQ8],
        stride: usize,
        e: &Extent,
        next: &[u8],
        sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
    ) {
        // SAFETY: the loads stay within the group's codes (`512·b + 64·c + 64 <= 512·blocks`)
        // and scales (`32·b + 32 <= 32·blocks` past their start, which `scales_at` places
        // within the group), and the activation blocks `a[t * stride + b]`; prefetches read
        // nothing; the rest is register-only.
        unsafe {
            let codes = group.as_ptr();
            let scales = codes.add(scales_at(e.row_blocks));
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
                        let start = _mm256_set1_epi32(-CODE_OFFSET * x[t].sum);
                        isum[t] = [[start, _mm256_setzero_si256()]; HALVES];
                    }
                }
                for c in 0..CHUNKS {
                    let chunk = codes.add(GROUP_CODES * b + 64 * c);
                    let q = [Codes::load::<D>(chunk), Codes::load::<D>(chunk.add(32))];
                    for t in 0..T {
                        let chunk = x[t].qs.as_ptr().add(4 * c).cast::<i32>().read_unaligned();
                        let xc = _mm256_set1_epi32(chunk);
                        for h in 0..HALVES {
                            let sum = &mut isum[t][h][c % chains];
                            *sum = q[h].dot::<D>(*sum, xc);
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
