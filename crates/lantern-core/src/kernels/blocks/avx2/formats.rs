//! Each 32-value block format as the AVX2 tiles read it ([`Format`]): how its blocks of 8 rows
//! (4 for the [`Signed`] tiles) are loaded, and how their products with an activation block
//! are accumulated and summed.

use std::arch::x86_64::*;

use super::nibbles::Nibbles;
use super::{read_i16, read_i32, scales, Acc, Format, ROWS};
use crate::kernels::avx2::{hsum, Dot};
use crate::BlockQ8;

/// ggml `block_q4_0` (18 bytes: f16 d, 16 bytes of nibbles): value = d·(q − 8).
///
/// One lane per row: llama.cpp repacks Q4_0 weights on x86 and accumulates each row's exact
/// block sum with one FMA per block (`ggml_gemv_q4_0_8x8_q8_0`, `ggml_gemm_q4_0_8x8_q8_0`),
/// and so does this kernel, from the file's own layout.
pub(super) struct Q4_0;

impl Format for Q4_0 {
    const BLOCK_BYTES: usize = 18;
    const ROWS: usize = ROWS;
    const INPUTS: usize = 4;
    const WIDE_INPUTS: usize = 4;
    type Block = (Nibbles, __m256);

    #[inline(always)]
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block {
        // SAFETY: the caller's contract: the block's 18 bytes are readable.
        unsafe { (Nibbles::load(rows, offset + 2), scales(rows, offset)) }
    }

    #[inline(always)]
    unsafe fn accumulate<D: Dot>((q, d): &Self::Block, a: &BlockQ8, acc: &mut Acc) {
        // SAFETY: the caller's contract.
        unsafe { one_lane_accumulate::<D, 8>(q, *d, a, acc) }
    }

    #[inline(always)]
    unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
        // SAFETY: the caller's contract.
        unsafe { one_lane_finish(acc) }
    }
}

/// Adds each row's exact block sum of (q − `OFFSET`)·a times d_w·d_a (`d` holds the rows'
/// d_w in row order) to its lane of `acc.lanes[0]`, with one FMA: Q4_0's and Q3_0's
/// accumulation.
#[inline(always)]
unsafe fn one_lane_accumulate<D: Dot, const OFFSET: i8>(
    q: &Nibbles,
    d: __m256,
    a: &BlockQ8,
    acc: &mut Acc,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let sums = _mm256_cvtepi32_ps(q.offset_row_sums::<D, OFFSET>(a));
        acc.lanes[0] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a.d)), sums, acc.lanes[0]);
    }
}

/// The 8 rows' results of [`one_lane_accumulate`].
#[inline(always)]
unsafe fn one_lane_finish(acc: &Acc) -> [f32; ROWS] {
    let mut sums = [0.0; ROWS];
    // SAFETY: stores the 8 lanes into an array of 8.
    unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), acc.lanes[0]) };
    sums
}

/// lantern `Q3_0` (14 bytes: f16 d, 8 bytes of low two bits, 4 bytes of third bits):
/// value = d·(q − 4).
///
/// One lane per row, as [`Q4_0`]: the codes are unpacked to unsigned bytes in Q4_0's paired
/// layout, so the same `maddubs` (or `vpdpbusd`) products and the same −4·Σa bias per block
/// give each row's exact block sum, which one FMA scales.
pub(super) struct Q3_0;

impl Format for Q3_0 {
    const BLOCK_BYTES: usize = 14;
    const ROWS: usize = ROWS;
    const INPUTS: usize = 4;
    const WIDE_INPUTS: usize = 4;
    type Block = (Nibbles, __m256);

    #[inline(always)]
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block {
        // SAFETY: the caller's contract: the block's 14 bytes are readable (d at 0..2, the
        // low bits at 2..10, the third bits at 10..14).
        unsafe {
            let mut q = Nibbles::load_q3_low(rows, offset + 2);
            q.add_top_bits::<0x04>(rows, offset + 10);
            (q, scales(rows, offset))
        }
    }

    #[inline(always)]
    unsafe fn accumulate<D: Dot>((q, d): &Self::Block, a: &BlockQ8, acc: &mut Acc) {
        // SAFETY: the caller's contract.
        unsafe { one_lane_accumulate::<D, 4>(q, *d, a, acc) }
    }

    #[inline(always)]
    unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
        // SAFETY: the caller's contract.
        unsafe { one_lane_finish(acc) }
    }
}

/// ggml `block_q4_1` (20 bytes: f16 d, f16 m, 16 bytes of nibbles): value = d·q + m.
pub(super) struct Q4_1;

impl Format for Q4_1 {
    const BLOCK_BYTES: usize = 20;
    const ROWS: usize = ROWS;
    const INPUTS: usize = 2;
    const WIDE_INPUTS: usize = 2;
    type Block = (Nibbles, __m256, __m256);

    #[inline(always)]
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block {
        // SAFETY: the caller's contract: the block's 20 bytes are readable.
        unsafe {
            // (d, m) of rows 0, 1, 4, 5 and of rows 2, 3, 6, 7 as f32 pairs; the shuffles
            // gather d and m of rows 0..4 in the low lane and 4..8 in the high lane.
            let dm = |r: usize| read_i32(rows[r].add(offset));
            let a = _mm256_cvtph_ps(_mm_setr_epi32(dm(0), dm(1), dm(4), dm(5)));
            let b = _mm256_cvtph_ps(_mm_setr_epi32(dm(2), dm(3), dm(6), dm(7)));
            let d = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let m = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            (Nibbles::load(rows, offset + 4), d, m)
        }
    }

    #[inline(always)]
    unsafe fn accumulate<D: Dot>((q, d, m): &Self::Block, a: &BlockQ8, acc: &mut Acc) {
        // SAFETY: the caller's contract.
        unsafe {
            // ggml's `summs += m*s`, fused by GCC, one lane per row.
            acc.mins = _mm256_fmadd_ps(*m, _mm256_set1_ps(a.s), acc.mins);
            q.accumulate::<D, 0>(a, _mm256_mul_ps(*d, _mm256_set1_ps(a.d)), acc);
        }
    }

    #[inline(always)]
    unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
        // SAFETY: the caller's contract.
        unsafe {
            let mut sums = Nibbles::finish(acc);
            let mut mins = [0.0; ROWS];
            _mm256_storeu_ps(mins.as_mut_ptr(), acc.mins);
            for (s, m) in sums.iter_mut().zip(mins) {
                *s += m;
            }
            sums
        }
    }
}

/// ggml `block_q5_0` (22 bytes: f16 d, 4 bytes of fifth bits, 16 bytes of nibbles):
/// value = d·(q − 16).
pub(super) struct Q5_0;

impl Format for Q5_0 {
    const BLOCK_BYTES: usize = 22;
    const ROWS: usize = ROWS;
    const INPUTS: usize = 2;
    const WIDE_INPUTS: usize = 2;
    type Block = (Nibbles, __m256);

    #[inline(always)]
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block {
        // SAFETY: the caller's contract: the block's 22 bytes are readable.
        unsafe {
            let mut q = Nibbles::load(rows, offset + 6);
            q.add_top_bits::<0x10>(rows, offset + 2);
            (q, scales(rows, offset))
        }
    }

    #[inline(always)]
    unsafe fn accumulate<D: Dot>((q, d): &Self::Block, a: &BlockQ8, acc: &mut Acc) {
        // SAFETY: the caller's contract.
        unsafe { q.accumulate::<D, 16>(a, _mm256_mul_ps(*d, _mm256_set1_ps(a.d)), acc) }
    }

    #[inline(always)]
    unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
        // SAFETY: the caller's contract.
        unsafe { Nibbles::finish(acc) }
    }
}

/// Blocks of one f16 scale and 32 codes that a tile reads as signed bytes, in element order.
trait SignedCodes {
    /// Bytes per block.
    const BLOCK_BYTES: usize;
    /// Whether a row keeps one f32 lane, each block's exact sum added with one FMA (Q8_0),
    /// rather than ggml's eight (Q5_0).
    const ONE_LANE: bool;

    /// The 32 signed codes of the block at `block`.
    ///
    /// # Safety
    /// The features of the path are available, and the block's bytes are readable.
    unsafe fn codes<D: Dot>(block: *const u8) -> __m256i;
}

/// ggml `block_q8_0` (34 bytes: f16 d, 32 signed bytes): value = d·q.
pub(super) struct Q8Codes;

impl SignedCodes for Q8Codes {
    const BLOCK_BYTES: usize = 34;
    const ONE_LANE: bool = true;

    #[inline(always)]
    unsafe fn codes<D: Dot>(block: *const u8) -> __m256i {
        // SAFETY: the caller's contract: bytes 2..34 of the block are the codes.
        unsafe { _mm256_loadu_si256(block.add(2).cast()) }
    }
}

/// ggml `block_q5_0` as signed codes q − 16, in element order (low nibbles, then high).
pub(super) struct Q5Codes;

impl SignedCodes for Q5Codes {
    const BLOCK_BYTES: usize = 22;
    const ONE_LANE: bool = false;

    #[inline(always)]
    unsafe fn codes<D: Dot>(block: *const u8) -> __m256i {
        // SAFETY: the caller's contract: bytes 2..6 are the fifth bits, 6..22 the nibbles.
        unsafe {
            let packed = _mm_loadu_si128(block.add(6).cast());
            let mask = _mm_set1_epi8(0x0F);
            let low = _mm256_set_m128i(
                _mm_and_si128(_mm_srli_epi16::<4>(packed), mask),
                _mm_and_si128(packed, mask),
            );
            D::fifth_bits_signed(low, read_i32(block.add(2)) as u32)
        }
    }
}

/// Q8_0, and Q5_0 on VNNI: 4 rows by 2 inputs (4 with 32 registers), with room left to read
/// each row's codes when its turn comes. Q5_0 keeps 8 f32 lanes per row and input; Q8_0 one,
/// the 4 rows' exact block sums sharing one register (see [`SignedCodes::ONE_LANE`]). A tile
/// of 8 rows would leave room for one input only, and widening the 8 scales would then cost
/// as much as the products.
pub(super) struct Signed<C>(std::marker::PhantomData<C>);

/// ggml `block_q8_0` in [`Signed`] tiles.
pub(super) type Q8_0 = Signed<Q8Codes>;

/// ggml `block_q5_0` in [`Signed`] tiles, for batches on VNNI (see
/// [`Q5_0Tiles`](super::Q5_0Tiles)).
pub(super) type Q5_0Signed = Signed<Q5Codes>;

/// Rows per [`Signed`] tile.
const SIGNED_ROWS: usize = 4;

impl<C: SignedCodes> Format for Signed<C> {
    const BLOCK_BYTES: usize = C::BLOCK_BYTES;
    const ROWS: usize = SIGNED_ROWS;
    const INPUTS: usize = 2;
    const WIDE_INPUTS: usize = 4;
    /// Per row, where its block starts, and the scales.
    type Block = ([*const u8; SIGNED_ROWS], __m128);

    #[inline(always)]
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block {
        // SAFETY: the caller's contract: the block's bytes are readable.
        unsafe {
            let d = |r: usize| read_i16(rows[r].add(offset));
            let d = _mm_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), 0, 0, 0, 0));
            (std::array::from_fn(|r| rows[r].add(offset)), d)
        }
    }

    #[inline(always)]
    unsafe fn accumulate<D: Dot>(w: &Self::Block, a: &BlockQ8, acc: &mut Acc) {
        // SAFETY: the caller's contract.
        unsafe { Self::accumulate_inputs::<D, 1>(w, [a], std::array::from_mut(acc)) }
    }

    /// Row by row, each row's codes read once for all inputs: input by input, the compiler
    /// would keep every row's codes for the next input and run out of registers.
    #[inline(always)]
    unsafe fn accumulate_inputs<D: Dot, const T: usize>(
        (blocks, d): &Self::Block,
        a: [&BlockQ8; T],
        acc: &mut [Acc; T],
    ) {
        // SAFETY: the caller's contract: each row's block is readable.
        unsafe {
            let mut av = [_mm256_setzero_si256(); T];
            for t in 0..T {
                av[t] = D::signed_activation(_mm256_loadu_si256(a[t].qs.as_ptr().cast()));
            }
            if C::ONE_LANE {
                let mut lanes = [[_mm256_setzero_si256(); SIGNED_ROWS]; T];
                for r in 0..SIGNED_ROWS {
                    let q = D::signed_weights(C::codes::<D>(blocks[r]));
                    for t in 0..T {
                        lanes[t][r] = D::signed_dot(&q, av[t]);
                    }
                }
                for t in 0..T {
                    // d_w·d_a per row times the rows' exact block sums, in row order.
                    let sums = _mm_cvtepi32_ps(row_sums(&lanes[t]));
                    let dd = _mm_mul_ps(*d, _mm_set1_ps(a[t].d));
                    let acc = &mut acc[t].lanes[0];
                    *acc = _mm256_zextps128_ps256(_mm_fmadd_ps(
                        dd,
                        sums,
                        _mm256_castps256_ps128(*acc),
                    ));
                }
                return;
            }
            let mut dd = [[0.0f32; 4]; T];
            for t in 0..T {
                _mm_storeu_ps(dd[t].as_mut_ptr(), _mm_mul_ps(*d, _mm_set1_ps(a[t].d)));
            }
            for r in 0..SIGNED_ROWS {
                let q = D::signed_weights(C::codes::<D>(blocks[r]));
                for t in 0..T {
                    let sums = _mm256_cvtepi32_ps(D::signed_dot(&q, av[t]));
                    acc[t].lanes[r] =
                        _mm256_fmadd_ps(_mm256_set1_ps(dd[t][r]), sums, acc[t].lanes[r]);
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
        // SAFETY: register-only intrinsics, and a store of 4 lanes into an array of 8.
        unsafe {
            let mut sums = [0.0; ROWS];
            if C::ONE_LANE {
                _mm_storeu_ps(sums.as_mut_ptr(), _mm256_castps256_ps128(acc.lanes[0]));
                return sums;
            }
            for (s, &v) in sums.iter_mut().zip(&acc.lanes).take(SIGNED_ROWS) {
                *s = hsum(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            }
            sums
        }
    }
}

/// The exact sums of the eight i32 lanes of each of the 4 rows' `lanes`, in row order.
#[inline(always)]
unsafe fn row_sums(lanes: &[__m256i; SIGNED_ROWS]) -> __m128i {
    // SAFETY: register-only intrinsics; AVX2 is the caller's contract.
    unsafe {
        // Each 128-bit half ends with a partial sum of each row, in row order.
        let pairs = _mm256_hadd_epi32(
            _mm256_hadd_epi32(lanes[0], lanes[1]),
            _mm256_hadd_epi32(lanes[2], lanes[3]),
        );
        _mm_add_epi32(_mm256_castsi256_si128(pairs), _mm256_extracti128_si256::<1>(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q3_0_codes_avx2(blocks: &[[u8; 14]; ROWS]) -> [[u8; 32]; ROWS] {
        // SAFETY: the features are enabled here; each row pointer has its block's 14 bytes;
        // the stores write 32-byte arrays.
        unsafe {
            let rows = std::array::from_fn(|r| blocks[r].as_ptr());
            let (q, _) = Q3_0::load(&rows, 0);
            let mut out = [[0u8; 32]; ROWS];
            for p in 0..4 {
                let (mut lo, mut hi) = ([0u8; 32], [0u8; 32]);
                _mm256_storeu_si256(lo.as_mut_ptr().cast(), q.lo[p]);
                _mm256_storeu_si256(hi.as_mut_ptr().cast(), q.hi[p]);
                // Row p in the low 16 bytes, row p + 4 in the high 16.
                out[p][..16].copy_from_slice(&lo[..16]);
                out[p][16..].copy_from_slice(&hi[..16]);
                out[p + 4][..16].copy_from_slice(&lo[16..]);
                out[p + 4][16..].copy_from_slice(&hi[16..]);
            }
            out
        }
    }

    /// Q3_0's codes as the tiles unpack them, against [`crate::BlockQ3_0::codes`].
    #[test]
    fn q3_0_codes_unpack_in_element_order() {
        if !crate::kernels::runs(crate::kernels::Isa::Avx2, "Q3_0's codes are not unpacked") {
            return;
        }
        let blocks: [[u8; 14]; ROWS] =
            std::array::from_fn(|r| std::array::from_fn(|i| (r * 37 + i * 101 + 13) as u8));
        // SAFETY: AVX2, FMA and F16C are available.
        let got = unsafe { q3_0_codes_avx2(&blocks) };
        for (r, (block, got)) in blocks.iter().zip(got).enumerate() {
            let codes = bytemuck::cast::<[u8; 14], crate::BlockQ3_0>(*block).codes();
            assert_eq!(got, codes.map(|q| (q + 4) as u8), "row {r}");
        }
    }
}
