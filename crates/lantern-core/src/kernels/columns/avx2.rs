//! The column kernels ([`super`]) on the AVX2 path, which the AVX-512 VNNI path shares.
//!
//! Up to sixteen tiles of 64 rows are computed together, block by block, so that each active
//! column is read as one run of bytes. The active columns go in pairs: per tile, each
//! column's 32 bytes unpack into its 64 codes, the two columns' codes are interleaved byte
//! by byte, and one `maddubs` per 16 rows multiplies them by the pair's two activation codes
//! and adds the products. The i16 sums take eight pairs (at most 8 · 2 · 15 · 127 = 30480)
//! before they are widened into i32; each block then takes one conversion and one fused
//! multiply-add per 8 rows, as the scalar twin does.
//!
//! Safety design as in [`crate::kernels::avx2`]: the `unsafe fn`s require AVX2, FMA and F16C
//! and are reached only through [`column_fn`], which [`super::column_fn_for`] hands out after
//! feature detection; every pointer comes from the extent of the slices given. No closures
//! around intrinsics.

use std::arch::x86_64::*;

use super::{codes_at, ColumnFn, Extent, Format, TILE_ROWS};
use crate::BlockQ8;

/// The kernel for `format`. Callers must have detected AVX2, FMA and F16C.
pub(super) fn column_fn(format: Format, _vnni: bool) -> ColumnFn {
    match format {
        Format::Q4_0 => on_avx2::<{ Format::Q4_0 as u8 }>,
        Format::Q4_1 => on_avx2::<{ Format::Q4_1 as u8 }>,
    }
}

fn on_avx2<const F: u8>(
    w: &[u8],
    padded: usize,
    x: &[BlockQ8],
    first_tile: usize,
    out: &mut [f32],
) {
    // SAFETY: handed out only after AVX2/FMA/F16C detection.
    unsafe { run::<F>(w, padded, x, first_tile, out) }
}

/// Pairs of columns an i16 sum takes before it is widened.
const PAIRS_PER_WIDENING: usize = 8;
/// Tiles computed together: each active column is read as one run of up to 512 bytes (half
/// a Llama-3.2-1B down column, one thread's share; 2–3% faster decode there than 9 tiles).
const CHUNK_TILES: usize = 16;
/// Active columns prefetched ahead of the ones computing.
const PREFETCH_COLUMNS: usize = 16;
/// Prefetch into L2: into L1, the many requests of a block queue behind each other.
const HINT: i32 = _MM_HINT_T1;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<const F: u8>(
    w: &[u8],
    padded: usize,
    x: &[BlockQ8],
    first_tile: usize,
    out: &mut [f32],
) {
    let format = Format::from_u8(F);
    let e = Extent::new(format, w, padded, x, first_tile, out);
    for (c, out) in out[..e.rows].chunks_mut(CHUNK_TILES * TILE_ROWS).enumerate() {
        let tiles = first_tile + c * CHUNK_TILES
            ..first_tile + c * CHUNK_TILES + out.len().div_ceil(TILE_ROWS);
        let mut sums = [0.0f32; CHUNK_TILES * TILE_ROWS];
        // SAFETY: `tiles` are whole tiles of the padded rows (`e.rows` ends within them), and
        // `e.blocks` blocks lie within `w` and `x`.
        unsafe { chunk_sums(format, w, padded, &x[..e.blocks], e.block_bytes, tiles, &mut sums) };
        out.copy_from_slice(&sums[..out.len()]);
    }
}

/// Rows of `tiles` (at most [`CHUNK_TILES`]) of the blocks of `w` times `x`, into `sums`.
///
/// # Safety
/// AVX2, FMA and F16C; `64·tiles.end <= padded`; `w` holds `x.len()` blocks of
/// `block_bytes` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn chunk_sums(
    format: Format,
    w: &[u8],
    padded: usize,
    x: &[BlockQ8],
    block_bytes: usize,
    tiles: std::ops::Range<usize>,
    sums: &mut [f32; CHUNK_TILES * TILE_ROWS],
) {
    // SAFETY: every load is within block `b` of `w`: codes at `codes_at(j) + 32·t + 32 <=
    // codes_at(j) + padded / 2` for `t < tiles.end`, scales at `2·(s·padded + 64·t + 8g) + 16
    // <= 2·(s + 1)·padded` for the scale arrays the format has; activations within `x[b]`;
    // the sums within their arrays (`tiles.len() <= CHUNK_TILES`).
    unsafe {
        let nibble = _mm256_set1_epi8(0x0F);
        let n = tiles.len();
        let mut acc = [_mm256_setzero_ps(); CHUNK_TILES * 8];
        let mut mins = [_mm256_setzero_ps(); CHUNK_TILES * 8];
        let mut scale = [_mm256_setzero_ps(); CHUNK_TILES * 8];
        let mut wide = [_mm256_setzero_si256(); CHUNK_TILES * 8];
        let mut narrow = [_mm256_setzero_si256(); CHUNK_TILES * 4];
        let row0 = tiles.start * TILE_ROWS;
        let mut ahead = Prefetcher::new(format, w.as_ptr(), block_bytes, padded, &tiles, x);
        ahead.advance(PREFETCH_COLUMNS);
        for (b, a) in x.iter().enumerate() {
            let mut active = active_columns(a);
            if active == 0 {
                continue;
            }
            let block = w.as_ptr().add(b * block_bytes);
            let first_code = codes_at(format, padded, 0) + tiles.start * TILE_ROWS / 2;
            let column_bytes = padded / 2;
            // The scales first, so that the block is read front to back.
            let da = _mm256_set1_ps(a.d);
            let scales = block.cast::<u16>().add(row0);
            for (g, scale) in scale[..8 * n].iter_mut().enumerate() {
                let d = _mm256_cvtph_ps(_mm_loadu_si128(scales.add(8 * g).cast()));
                *scale = _mm256_mul_ps(d, da);
            }
            if format == Format::Q4_1 {
                let sa = _mm256_set1_ps(a.s);
                let m = scales.add(padded);
                for (g, mins) in mins[..8 * n].iter_mut().enumerate() {
                    let m = _mm256_cvtph_ps(_mm_loadu_si128(m.add(8 * g).cast()));
                    *mins = _mm256_fmadd_ps(m, sa, *mins);
                }
            }
            wide[..8 * n].fill(_mm256_setzero_si256());
            let mut pairs = 0;
            while active != 0 {
                let j = active.trailing_zeros() as usize;
                active &= active - 1;
                // An odd column out pairs with itself, times a zero code.
                let (k, qk) = if active == 0 {
                    (j, 0)
                } else {
                    let k = active.trailing_zeros() as usize;
                    active &= active - 1;
                    (k, a.qs[k])
                };
                let cj = block.add(first_code + j * column_bytes);
                let ck = block.add(first_code + k * column_bytes);
                let pair = _mm256_set1_epi16(i16::from_le_bytes([a.qs[j] as u8, qk as u8]));
                for t in 0..n {
                    let vj = _mm256_loadu_si256(cj.add(32 * t).cast());
                    let vk = _mm256_loadu_si256(ck.add(32 * t).cast());
                    let (lj, hj) = (_mm256_and_si256(vj, nibble), nibbles_high(vj, nibble));
                    let (lk, hk) = (_mm256_and_si256(vk, nibble), nibbles_high(vk, nibble));
                    // Rows 0–7 and 16–23, 8–15 and 24–31, then the same 32 rows on.
                    let interleaved = [
                        _mm256_unpacklo_epi8(lj, lk),
                        _mm256_unpackhi_epi8(lj, lk),
                        _mm256_unpacklo_epi8(hj, hk),
                        _mm256_unpackhi_epi8(hj, hk),
                    ];
                    for (s, codes) in narrow[4 * t..4 * t + 4].iter_mut().zip(interleaved) {
                        *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(codes, pair));
                    }
                }
                ahead.advance(2);
                pairs += 1;
                if pairs == PAIRS_PER_WIDENING {
                    widen_into(&mut wide[..8 * n], &mut narrow[..4 * n]);
                    pairs = 0;
                }
            }
            if pairs > 0 {
                widen_into(&mut wide[..8 * n], &mut narrow[..4 * n]);
            }
            let offset = _mm256_set1_epi32(format.offset() * a.sum);
            for g in 0..8 * n {
                let sumi = _mm256_cvtepi32_ps(_mm256_sub_epi32(wide[g], offset));
                acc[g] = _mm256_fmadd_ps(scale[g], sumi, acc[g]);
            }
        }
        for g in 0..8 * n {
            let sum = if format == Format::Q4_1 { _mm256_add_ps(acc[g], mins[g]) } else { acc[g] };
            _mm256_storeu_ps(sums[8 * g..].as_mut_ptr(), sum);
        }
    }
}

/// Prefetches the active columns a fixed number of columns ahead of the ones computing,
/// block after block, with each block's scales as it comes to it: a column is a run of a
/// few cache lines between gaps, which the hardware's stream prefetcher does not follow.
struct Prefetcher<'a> {
    format: Format,
    w: *const u8,
    block_bytes: usize,
    padded: usize,
    /// The chunk's rows.
    rows: std::ops::Range<usize>,
    x: &'a [BlockQ8],
    /// The block it is in, the columns of it still to prefetch, and the next block.
    block: usize,
    active: u32,
    next_block: usize,
}

impl<'a> Prefetcher<'a> {
    fn new(
        format: Format,
        w: *const u8,
        block_bytes: usize,
        padded: usize,
        tiles: &std::ops::Range<usize>,
        x: &'a [BlockQ8],
    ) -> Self {
        let rows = tiles.start * TILE_ROWS..tiles.end * TILE_ROWS;
        Self { format, w, block_bytes, padded, rows, x, block: 0, active: 0, next_block: 0 }
    }

    /// Prefetches the next `columns` active columns.
    ///
    /// # Safety
    /// AVX2; `w` holds `x.len()` blocks of `block_bytes` bytes over `padded` rows, which
    /// include `rows`.
    #[inline(always)]
    unsafe fn advance(&mut self, columns: usize) {
        // SAFETY: prefetches never fault, and every address computed lies within block
        // `self.block < x.len()` of `w`, as the caller guarantees.
        unsafe {
            for _ in 0..columns {
                while self.active == 0 {
                    let Some(a) = self.x.get(self.next_block) else { return };
                    self.block = self.next_block;
                    self.next_block += 1;
                    self.active = active_columns(a);
                    if self.active != 0 {
                        self.prefetch_scales();
                    }
                }
                let j = self.active.trailing_zeros() as usize;
                self.active &= self.active - 1;
                let block = self.w.add(self.block * self.block_bytes);
                let codes = block.add(codes_at(self.format, self.padded, j) + self.rows.start / 2);
                for at in (0..self.rows.len() / 2).step_by(64) {
                    _mm_prefetch::<HINT>(codes.add(at).cast());
                }
            }
        }
    }

    /// Prefetches the current block's scales of the chunk's rows.
    #[inline(always)]
    unsafe fn prefetch_scales(&self) {
        // SAFETY: as in `advance`.
        unsafe {
            let block = self.w.add(self.block * self.block_bytes);
            for s in 0..self.format.scale_bytes() / 2 {
                let scales = block.add(2 * (s * self.padded + self.rows.start));
                for at in (0..2 * self.rows.len()).step_by(64) {
                    _mm_prefetch::<HINT>(scales.add(at).cast());
                }
            }
        }
    }
}

/// The columns of `a` whose code is not zero, as bits.
#[inline(always)]
unsafe fn active_columns(a: &BlockQ8) -> u32 {
    // SAFETY: one 32-byte load of `a.qs`; the caller has AVX2.
    unsafe {
        let q = _mm256_loadu_si256(a.qs.as_ptr().cast());
        let zero = _mm256_cmpeq_epi8(q, _mm256_setzero_si256());
        !(_mm256_movemask_epi8(zero) as u32)
    }
}

/// The high nibbles of `v`'s bytes.
#[inline(always)]
unsafe fn nibbles_high(v: __m256i, nibble: __m256i) -> __m256i {
    // SAFETY: register-only; the caller has AVX2.
    unsafe { _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble) }
}

/// Adds the i16 sums `narrow` (four per tile, rows in the order [`chunk_sums`] interleaves
/// them) into the i32 sums `wide` (eight per tile, 8 rows each, in row order), and clears
/// them.
#[inline(always)]
unsafe fn widen_into(wide: &mut [__m256i], narrow: &mut [__m256i]) {
    // SAFETY: register and slice accesses only; the caller has AVX2.
    unsafe {
        for (wide, narrow) in wide.chunks_exact_mut(8).zip(narrow.chunks_exact_mut(4)) {
            // narrow[i] holds rows 32·(i / 2) + 8·(i % 2) + {0..8} in its low half, + 16 in
            // its high.
            for (i, sum) in narrow.iter_mut().enumerate() {
                let first = 4 * (i / 2) + i % 2;
                let low = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(*sum));
                let high = _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(*sum));
                wide[first] = _mm256_add_epi32(wide[first], low);
                wide[first + 2] = _mm256_add_epi32(wide[first + 2], high);
                *sum = _mm256_setzero_si256();
            }
        }
    }
}
