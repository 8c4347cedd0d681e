//! The codes of the 4-bit formats, and of Q5_0 and Q3_0, which the AVX2 tiles unpack the same
//! way: blocks of 8 rows in the paired layout of the [module docs](super), one unsigned byte
//! per code, and their exact integer products with an activation block.

use std::arch::x86_64::*;

use super::{read_i32, read_i64, Acc, ROWS};
use crate::kernels::avx2::{hsum, Dot};
use crate::{BlockQ8, QK8};

/// The activation's elements 0..16 and 16..32, each broadcast to both 128-bit lanes.
#[inline(always)]
unsafe fn activation_halves(a: &BlockQ8) -> (__m256i, __m256i) {
    // SAFETY: reads the 32 bytes of `a.qs`.
    unsafe {
        let q = a.qs.as_ptr();
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(q.cast())),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(q.add(QK8 / 2).cast())),
        )
    }
}

/// Code blocks of 8 rows in the paired layout: for pair `p`, row `p` in the low lane and
/// row `p + 4` in the high lane, split into elements 0..16 (`lo`, the low nibbles of a 4-bit
/// block) and elements 16..32 (`hi`, the high nibbles), one unsigned byte per code: 4-bit
/// codes, Q5_0's with their fifth bits, or Q3_0's 3-bit codes.
#[derive(Clone, Copy)]
pub(super) struct Nibbles {
    pub(super) lo: [__m256i; 4],
    pub(super) hi: [__m256i; 4],
}

impl Nibbles {
    /// Reads the 16 bytes of nibbles at byte `offset` of each row.
    #[inline(always)]
    pub(super) unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes at `offset` of each row.
        unsafe {
            let mask = _mm256_set1_epi8(0x0F);
            let mut lo = [_mm256_setzero_si256(); 4];
            let mut hi = [_mm256_setzero_si256(); 4];
            for p in 0..4 {
                let packed =
                    _mm256_loadu2_m128i(rows[p + 4].add(offset).cast(), rows[p].add(offset).cast());
                lo[p] = _mm256_and_si256(packed, mask);
                hi[p] = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), mask);
            }
            Self { lo, hi }
        }
    }

    /// Reads Q3_0's 8 bytes of low two bits at byte `offset` of each row (see
    /// [`BlockQ3_0`](crate::BlockQ3_0)): codes in 0..4, before [`Nibbles::add_top_bits`].
    #[inline(always)]
    pub(super) unsafe fn load_q3_low(rows: &[*const u8; ROWS], offset: usize) -> Self {
        // SAFETY: the caller guarantees 8 readable bytes at `offset` of each row.
        unsafe {
            let mask = _mm256_set1_epi8(0x03);
            // Each row's 8 bytes as a u64 in both halves of its lane; shifted right by 2k,
            // the low two bits of its bytes are elements 8k..8k + 8 in order.
            let shift_lo = _mm256_setr_epi64x(0, 2, 0, 2);
            let shift_hi = _mm256_setr_epi64x(4, 6, 4, 6);
            let mut lo = [_mm256_setzero_si256(); 4];
            let mut hi = [_mm256_setzero_si256(); 4];
            for p in 0..4 {
                // Two broadcasts (plain loads) and a blend rather than an insert, which would
                // queue on port 5 behind the shuffles: 10% faster (criterion).
                let packed = _mm256_blend_epi32::<0xF0>(
                    _mm256_set1_epi64x(read_i64(rows[p].add(offset))),
                    _mm256_set1_epi64x(read_i64(rows[p + 4].add(offset))),
                );
                lo[p] = _mm256_and_si256(_mm256_srlv_epi64(packed, shift_lo), mask);
                hi[p] = _mm256_and_si256(_mm256_srlv_epi64(packed, shift_hi), mask);
            }
            Self { lo, hi }
        }
    }

    /// Adds `BIT` to each code whose bit is set in the little-endian u32 at byte `offset` of
    /// its row, bit `j` for element `j`: Q5_0's fifth bits (`BIT` = 16) or Q3_0's third bits
    /// (`BIT` = 4), for codes below `BIT`.
    #[inline(always)]
    pub(super) unsafe fn add_top_bits<const BIT: i8>(
        &mut self,
        rows: &[*const u8; ROWS],
        offset: usize,
    ) {
        // SAFETY: the caller guarantees 4 readable bytes at `offset` of each row.
        unsafe {
            // Byte j of a lane takes bit j % 8 of byte j / 8 (low nibbles: bytes 0, 1 of qh;
            // high nibbles: bytes 2, 3).
            let spread_lo = _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0, 0x0101_0101_0101_0101);
            let spread_hi = _mm256_add_epi8(spread_lo, _mm256_set1_epi8(2));
            let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
            let top = _mm256_set1_epi8(BIT);
            for p in 0..4 {
                let qh = _mm256_set_m128i(
                    _mm_cvtsi32_si128(read_i32(rows[p + 4].add(offset))),
                    _mm_cvtsi32_si128(read_i32(rows[p].add(offset))),
                );
                for (codes, spread) in [(&mut self.lo[p], spread_lo), (&mut self.hi[p], spread_hi)]
                {
                    let b = _mm256_and_si256(_mm256_shuffle_epi8(qh, spread), bits);
                    let set = _mm256_and_si256(_mm256_cmpeq_epi8(b, bits), top);
                    *codes = _mm256_or_si256(*codes, set);
                }
            }
        }
    }

    /// Each row's exact sum of (q − `OFFSET`)·a with activation `a` (Q4_0: 8, Q3_0: 4), as
    /// i32 lanes in row order.
    #[inline(always)]
    pub(super) unsafe fn offset_row_sums<D: Dot, const OFFSET: i8>(&self, a: &BlockQ8) -> __m256i {
        // SAFETY: reads the 32 bytes of `a.qs`; the rest is register-only.
        unsafe {
            let (al, ah) = activation_halves(a);
            // Σ(q − o)·a = Σq·a − o·Σa: the −o·Σa terms start every row's sums. With codes
            // and o up to 15, a pair of products is at most 2 · 15 · 127, two of them
            // 3810 · 2: no i16 overflow.
            let offset = _mm256_set1_epi8(OFFSET);
            let zero = _mm256_setzero_si256();
            let bias = _mm256_sub_epi32(zero, D::dot8(zero, offset, al, offset, ah));
            // Per pair: row p in the low lane, row p + 4 in the high lane, as i32 partial sums.
            let mut p = [zero; 4];
            for (i, p) in p.iter_mut().enumerate() {
                *p = D::dot8(bias, self.lo[i], al, self.hi[i], ah);
            }
            // hadd works per lane: [r0 r0 r1 r1 | r4 r4 r5 r5], then [r0 r1 r2 r3 | r4 r5 r6 r7].
            _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]))
        }
    }

    /// Adds `scale · products` with activation `a` to the paired accumulators: pair `p`
    /// keeps row `p`'s lanes 0..4 | row `p + 4`'s lanes 0..4 in `lanes[2p]` and their lanes
    /// 4..8 in `lanes[2p + 1]`. `dd` holds the 8 rows' combined scales in row order; the
    /// codes count as q − `OFFSET`.
    #[inline(always)]
    pub(super) unsafe fn accumulate<D: Dot, const OFFSET: i8>(
        &self,
        a: &BlockQ8,
        dd: __m256,
        acc: &mut Acc,
    ) {
        // SAFETY: reads the 32 bytes of `a.qs`; the rest is register-only.
        unsafe {
            let (al, ah) = activation_halves(a);
            // Σ(q − o)·a over four elements is Σq·a − o·Σa, the same integers as ggml's
            // signed products; the −o·Σa sums are shared by all rows and start theirs.
            let offset = _mm256_set1_epi8(OFFSET);
            let zero = _mm256_setzero_si256();
            let bias_lo = _mm256_sub_epi32(zero, D::dot4(zero, offset, al));
            let bias_hi = _mm256_sub_epi32(zero, D::dot4(zero, offset, ah));
            for p in 0..4 {
                // Codes are below 32, so a pair of products is at most 2 · 31 · 127 in i16.
                let lo = _mm256_cvtepi32_ps(D::dot4(bias_lo, self.lo[p], al));
                let hi = _mm256_cvtepi32_ps(D::dot4(bias_hi, self.hi[p], ah));
                // [dd_p × 4 | dd_{p+4} × 4]: an in-lane broadcast of lane p.
                let d = match p {
                    0 => _mm256_shuffle_ps::<0x00>(dd, dd),
                    1 => _mm256_shuffle_ps::<0x55>(dd, dd),
                    2 => _mm256_shuffle_ps::<0xAA>(dd, dd),
                    _ => _mm256_shuffle_ps::<0xFF>(dd, dd),
                };
                acc.lanes[2 * p] = _mm256_fmadd_ps(d, lo, acc.lanes[2 * p]);
                acc.lanes[2 * p + 1] = _mm256_fmadd_ps(d, hi, acc.lanes[2 * p + 1]);
            }
        }
    }

    /// The 8 rows' horizontal sums from the paired accumulators.
    #[inline(always)]
    pub(super) unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
        // SAFETY: register-only intrinsics.
        unsafe {
            let mut sums = [0.0; ROWS];
            for p in 0..4 {
                let (lo, hi) = (acc.lanes[2 * p], acc.lanes[2 * p + 1]);
                sums[p] = hsum(_mm256_castps256_ps128(lo), _mm256_castps256_ps128(hi));
                sums[p + 4] = hsum(_mm256_extractf128_ps::<1>(lo), _mm256_extractf128_ps::<1>(hi));
            }
            sums
        }
    }
}
