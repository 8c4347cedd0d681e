//! AVX2 + FMA + F16C kernels (x86-64), and their AVX-512 VNNI variant, chosen at run time.
//!
//! # Tiles
//! The quantized kernels walk a tile of weight rows (8, or 4 for Q8_0) and one to four inputs
//! over the blocks. Per block, they unpack the rows' codes and widen their f16 scales once for
//! all inputs, and load each activation block once for all rows. Each row keeps the lanes of llama.cpp's
//! kernel for its format, so results match llama.cpp's AVX2 build bit for bit:
//! - Q4_1, Q5_0, Q8_0: 8 f32 lanes per row, lane `k` taking, with one FMA per block, the
//!   exact integer sum of the products of elements `4k..4k + 4`; the result is the lanes'
//!   horizontal sum (plus, for Q4_1, the minimums' FMA chain), as `ggml_vec_dot_q4_1_q8_1`,
//!   `ggml_vec_dot_q5_0_q8_0`, `ggml_vec_dot_q8_0_q8_0` and `hsum_float_8` compute it:
//!   <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>
//! - Q4_0: one lane per row, taking each block's exact integer sum with one FMA, as the
//!   repacked `ggml_gemv_q4_0_8x8_q8_0` that llama.cpp uses for Q4_0 on AVX2 CPUs.
//! - Q3_0 (lantern's own, which llama.cpp lacks): as Q4_0, one lane per row.
//!
//! The 4-bit formats (and Q5_0 and Q3_0, whose codes are unpacked the same way) hold two rows
//! per register, row `p` in the low 128 bits and row `p + 4` in the high: one `maddubs` then
//! serves two rows, and their accumulators stay in that interleaved layout until the final
//! sums.
//!
//! # VNNI
//! On CPUs with AVX-512 VNNI (Ice Lake, Zen 4 and later) the same tiles run with `vpdpbusd`,
//! which sums four byte products into each i32 lane in one instruction where AVX2 needs
//! `maddubs` and `madd`, and with the 32 vector registers of AVX-512VL. The integer sums are
//! the same, so the results are too (llama.cpp also uses `vpdpbusd` there, in the same lanes).
//!
//! # Safety design
//! The `unsafe fn`s here require AVX2, FMA and F16C, and those given [`Vnni`] also AVX-512
//! F, BW, VL and VNNI. They are reached only through the private safe wrappers below, which
//! [`super::matmul_fn_for`] and [`super::quantize`] hand out only after
//! [`super::Isa::is_available`] has confirmed those features on this CPU.
//! The wrappers derive every row pointer and block offset from the slice lengths, so all
//! loads stay inside the weight rows and activation blocks they were given.
//!
//! No closures around intrinsics: a closure is compiled without the enclosing function's
//! target features, and if it is not inlined each intrinsic becomes a call (20× slower).

use std::arch::x86_64::*;

use super::{Input, MatmulFn};
use crate::{BlockQ8, GgmlType, QK8};

/// The tile kernel for `ty`, if there is one: with `vnni`, the AVX-512 VNNI variant. Callers
/// must have detected the features of the path (see the module docs).
pub(super) fn matmul_fn(ty: GgmlType, vnni: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::Q3_0 => path_fn::<Tiles<Q3_0>>(vnni),
        GgmlType::Q4_0 => path_fn::<Tiles<Q4_0>>(vnni),
        GgmlType::Q4_1 => path_fn::<Tiles<Q4_1>>(vnni),
        GgmlType::Q5_0 => path_fn::<Q5_0Tiles>(vnni),
        GgmlType::Q8_0 => path_fn::<Tiles<Q8_0>>(vnni),
        _ => return None,
    })
}

/// A family of matrix kernels written once for every path's integer products.
pub(super) trait PathKernel {
    /// The [`MatmulFn`] contract, with `D`'s products.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]);
}

/// `K` on the AVX2 path or, with `vnni`, on the AVX-512 VNNI path. Callers must have detected
/// the features of the path (see the module docs).
pub(super) fn path_fn<K: PathKernel>(vnni: bool) -> MatmulFn {
    if vnni {
        on_vnni::<K>
    } else {
        on_avx2::<K>
    }
}

fn on_avx2<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs).
    unsafe { run_avx2::<K>(w, row_bytes, input, out) }
}

fn on_vnni<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: handed out only after AVX2/FMA/F16C and AVX-512 F/BW/VL/VNNI detection.
    unsafe { run_vnni::<K>(w, row_bytes, input, out) }
}

/// `K` with `maddubs` and `madd`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: the features `K` needs with `Maddubs` are enabled here.
    unsafe { K::run::<Maddubs>(w, row_bytes, input, out) }
}

/// `K` with `vpdpbusd` and `vpdpwssd`, and 32 registers.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run_vnni<K: PathKernel>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    // SAFETY: the features `K` needs with `Vnni` are enabled here.
    unsafe { K::run::<Vnni>(w, row_bytes, input, out) }
}

/// The tiles of format `F`.
struct Tiles<F>(std::marker::PhantomData<F>);

impl<F: Format> PathKernel for Tiles<F> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { tiles::<F, D>(w, row_bytes, input.q8_all(), input.n(), out) }
    }
}

/// Q5_0: one input in the 8-row [`Q5_0`] tiles; a batch on VNNI in the [`Signed`] tiles,
/// which share each row's codes among four inputs. Each was the faster there (criterion);
/// both give the same bits.
struct Q5_0Tiles;

impl PathKernel for Q5_0Tiles {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe {
            if D::WIDE && input.n() > 1 {
                Tiles::<Q5_0Signed>::run::<D>(w, row_bytes, input, out)
            } else {
                Tiles::<Q5_0>::run::<D>(w, row_bytes, input, out)
            }
        }
    }
}

/// A path's integer products: sums of byte products into i32 lanes, the way its instructions
/// form them. Every method gives the same integers on every path.
pub(super) trait Dot {
    /// `acc + Σ_k u[4i + k]·s[4i + k]` in each i32 lane `i`, for unsigned bytes `u` and signed
    /// bytes `s`; exact when each pair `u[2j]·s[2j] + u[2j + 1]·s[2j + 1]` fits in i16.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn dot4(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;

    /// Whether the path has 32 vector registers rather than 16.
    const WIDE: bool;

    /// Whether [`Dot::dot4`] is one instruction (`vpdpbusd`). Otherwise it is `maddubs`,
    /// `madd` and an add, and a kernel that scales its sums per lane does better to scale the
    /// i16 pairs of `maddubs` with [`Dot::madd_add`] than to sum them first.
    const FUSED_DOT4: bool;

    /// A block of signed weight codes, prepared for [`Dot::signed_dot`].
    type Signed: Copy;

    /// Prepares signed weight codes `q`.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn signed_weights(q: __m256i) -> Self::Signed;

    /// Prepares signed activation codes `a`.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn signed_activation(a: __m256i) -> __m256i;

    /// `Σ_k q[4i + k]·a[4i + k]` in each i32 lane `i`, exact for activation codes above −128.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn signed_dot(q: &Self::Signed, a: __m256i) -> __m256i;

    /// `acc + Σ_k a[2i + k]·b[2i + k]` for i16 `a` and `b`, in each i32 lane `i`.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn madd_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;

    /// Q5_0's signed codes `q − 16` from their low four bits `low` (bytes below 16) and their
    /// fifth bits, bit `j` of `high` for byte `j`.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn fifth_bits_signed(low: __m256i, high: u32) -> __m256i;

    /// `codes` with bit 4 set in each byte `j` whose bit `j` of `bits` is set (a Q5_0 code's
    /// fifth bit, for codes below 16).
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn set_fifth_bits(codes: __m256i, bits: u32) -> __m256i;

    /// `dot4(dot4(acc, u1, s1), u2, s2)`, exact when the sum of both pairs at each position
    /// fits in i16.
    ///
    /// # Safety
    /// The features of the path are available.
    #[inline(always)]
    unsafe fn dot8(acc: __m256i, u1: __m256i, s1: __m256i, u2: __m256i, s2: __m256i) -> __m256i {
        // SAFETY: the caller's contract.
        unsafe { Self::dot4(Self::dot4(acc, u1, s1), u2, s2) }
    }
}

/// AVX2: `maddubs` into i16 pairs, then `madd` into i32.
pub(super) struct Maddubs;

impl Dot for Maddubs {
    const WIDE: bool = false;
    const FUSED_DOT4: bool = false;
    /// The codes and their absolute values.
    type Signed = (__m256i, __m256i);

    #[inline(always)]
    unsafe fn signed_weights(q: __m256i) -> Self::Signed {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe { (q, _mm256_sign_epi8(q, q)) }
    }

    #[inline(always)]
    unsafe fn signed_activation(a: __m256i) -> __m256i {
        a
    }

    #[inline(always)]
    unsafe fn signed_dot(&(q, abs): &Self::Signed, a: __m256i) -> __m256i {
        // |q| × sign(q)·a: maddubs needs an unsigned operand. Pairs reach at most
        // 2 · 128 · 127 = 32512.
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe { Self::dot4(_mm256_setzero_si256(), abs, _mm256_sign_epi8(a, q)) }
    }

    #[inline(always)]
    unsafe fn madd_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
    }

    #[inline(always)]
    unsafe fn fifth_bits_signed(low: __m256i, high: u32) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            let clear = _mm256_andnot_si256(byte_mask(high), _mm256_set1_epi8(16));
            _mm256_sub_epi8(low, clear)
        }
    }

    #[inline(always)]
    unsafe fn set_fifth_bits(codes: __m256i, bits: u32) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe { _mm256_or_si256(codes, _mm256_and_si256(byte_mask(bits), _mm256_set1_epi8(16))) }
    }

    #[inline(always)]
    unsafe fn dot4(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            let pairs = _mm256_maddubs_epi16(u, s);
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn dot8(acc: __m256i, u1: __m256i, s1: __m256i, u2: __m256i, s2: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe {
            // One `madd` for both: the caller guarantees the i16 sums do not saturate.
            let pairs =
                _mm256_add_epi16(_mm256_maddubs_epi16(u1, s1), _mm256_maddubs_epi16(u2, s2));
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }
}

/// All ones in each byte `j` whose bit `j` of `bits` is set, zeros elsewhere: a mask over
/// the bytes of a register, as AVX-512 reads a `u32` without this.
#[inline(always)]
unsafe fn byte_mask(bits: u32) -> __m256i {
    // SAFETY: AVX2 is available (the caller's contract).
    unsafe {
        // Byte j takes byte j / 8 of `bits`, then tests its bit j % 8; shuffles stay within
        // 128-bit lanes, so the high lane reads bytes 2 and 3.
        let spread = _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        );
        let mask = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), spread);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, mask), mask)
    }
}

/// AVX-512 VNNI (256-bit form): one `vpdpbusd`, exact for all bytes.
pub(super) struct Vnni;

impl Dot for Vnni {
    const WIDE: bool = true;
    const FUSED_DOT4: bool = true;
    /// The codes, and −128·Σq over each four of them.
    type Signed = (__m256i, __m256i);

    #[inline(always)]
    unsafe fn signed_weights(q: __m256i) -> Self::Signed {
        // SAFETY: AVX-512 VL and VNNI are available (the caller's contract).
        unsafe {
            let zero = _mm256_setzero_si256();
            let sums = _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(-128), q);
            (q, _mm256_sub_epi32(zero, sums))
        }
    }

    /// `a + 128` as unsigned bytes: Σ(a + 128)·q − 128·Σq = Σa·q, with no sign operation per
    /// product, exact for every code.
    #[inline(always)]
    unsafe fn signed_activation(a: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (the caller's contract).
        unsafe { _mm256_xor_si256(a, _mm256_set1_epi8(-128)) }
    }

    #[inline(always)]
    unsafe fn signed_dot(&(q, bias): &Self::Signed, a: __m256i) -> __m256i {
        // SAFETY: AVX-512 VL and VNNI are available (the caller's contract).
        unsafe { _mm256_dpbusd_epi32(bias, a, q) }
    }

    #[inline(always)]
    unsafe fn madd_add(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: AVX-512 VL and VNNI are available (the caller's contract).
        unsafe { _mm256_dpwssd_epi32(acc, a, b) }
    }

    /// One masked subtraction: AVX-512 BW reads the fifth bits as a mask.
    #[inline(always)]
    unsafe fn fifth_bits_signed(low: __m256i, high: u32) -> __m256i {
        // SAFETY: AVX-512 BW and VL are available (the caller's contract).
        unsafe { _mm256_mask_sub_epi8(low, !high, low, _mm256_set1_epi8(16)) }
    }

    /// One masked add: AVX-512 BW reads the bits as a mask.
    #[inline(always)]
    unsafe fn set_fifth_bits(codes: __m256i, bits: u32) -> __m256i {
        // SAFETY: AVX-512 BW and VL are available (the caller's contract).
        unsafe { _mm256_mask_add_epi8(codes, bits, codes, _mm256_set1_epi8(0x10)) }
    }

    #[inline(always)]
    unsafe fn dot4(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: AVX-512 VL and VNNI are available (the caller's contract).
        unsafe { _mm256_dpbusd_epi32(acc, u, s) }
    }
}

/// Rows per tile at most.
const ROWS: usize = 8;
/// Inputs per tile at most.
const MAX_INPUTS: usize = 4;

/// The running sums of a tile: 8 lanes per row, and one lane per row for a second term.
#[derive(Clone, Copy)]
struct Acc {
    /// Per row, or per pair of rows in the 4-bit layout (see the module docs).
    lanes: [__m256; ROWS],
    /// Q4_1's Σ m_w·s_a, one lane per row.
    mins: __m256,
}

/// A weight format as the tile driver sees it.
trait Format {
    /// Bytes per block of 32 weights.
    const BLOCK_BYTES: usize;
    /// Rows a tile takes (up to [`ROWS`]); the row pointers and sums beyond are unused.
    const ROWS: usize;
    /// Inputs a tile takes at once with 32 vector registers (AVX-512), up to [`MAX_INPUTS`].
    const WIDE_INPUTS: usize;
    /// Inputs a tile takes at once (up to [`MAX_INPUTS`]): more share the unpacking of each
    /// block, as long as their accumulators fit in registers.
    const INPUTS: usize;
    /// One block of 8 rows, unpacked for the integer products.
    type Block: Copy;

    /// Unpacks the block at byte `offset` of each of the 8 rows.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and `offset + BLOCK_BYTES` bytes are readable from
    /// each row pointer.
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self::Block;

    /// Adds the block's products with activation block `a` to `acc`.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    unsafe fn accumulate<D: Dot>(w: &Self::Block, a: &BlockQ8, acc: &mut Acc);

    /// Adds the block's products with activation blocks `a` to their sums `acc`: input by
    /// input, unless a format orders the work otherwise.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    #[inline(always)]
    unsafe fn accumulate_inputs<D: Dot, const T: usize>(
        w: &Self::Block,
        a: [&BlockQ8; T],
        acc: &mut [Acc; T],
    ) {
        for (a, acc) in a.into_iter().zip(acc) {
            // SAFETY: the caller's contract.
            unsafe { Self::accumulate::<D>(w, a, acc) }
        }
    }

    /// The 8 rows' results.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available.
    unsafe fn finish(acc: &Acc) -> [f32; ROWS];
}

/// `out[t * rows + r] = row_r · input_t` for every whole row of `w` and the `n` inputs of `xq`
/// (`xq.len() / n` blocks each, as [`Input`] holds them), over the blocks that the row and the
/// input both hold. Outputs beyond `out` are skipped.
///
/// # Safety
/// AVX2, FMA and F16C are available, and the features `D` needs.
#[inline(always)]
unsafe fn tiles<F: Format, D: Dot>(
    w: &[u8],
    row_bytes: usize,
    xq: &[BlockQ8],
    n: usize,
    out: &mut [f32],
) {
    if n == 0 {
        return;
    }
    let stride = xq.len() / n;
    let blocks = (row_bytes / F::BLOCK_BYTES).min(stride);
    if blocks == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    for r0 in (0..rows).step_by(F::ROWS) {
        // A last partial tile repeats its last row; the extra results are not stored.
        let ptrs: [*const u8; ROWS] = std::array::from_fn(|i| {
            let r = (r0 + i).min(rows - 1);
            // SAFETY: r < rows, so the row lies within `w`.
            unsafe { w.as_ptr().add(r * row_bytes) }
        });
        // The next tile, which the hardware prefetcher does not foresee: a tile reads its
        // rows side by side, not as one stream.
        let next = &w[w.len().min((r0 + F::ROWS) * row_bytes)..];
        let next = &next[..next.len().min(F::ROWS * row_bytes)];
        let mut t0 = 0;
        while t0 < n {
            let inputs = if D::WIDE { F::WIDE_INPUTS } else { F::INPUTS }.min(n - t0);
            let xq = &xq[t0 * stride..(t0 + inputs) * stride];
            let next = if t0 == 0 { next } else { &[] };
            let mut sums = [[0.0; ROWS]; MAX_INPUTS];
            // SAFETY: each row pointer has `blocks * BLOCK_BYTES <= row_bytes` readable bytes,
            // and `xq` holds `inputs` inputs of `stride >= blocks` blocks.
            unsafe {
                match inputs {
                    1 => tile::<F, D, 1>(&ptrs, xq, (blocks, stride), next, &mut sums),
                    2 => tile::<F, D, 2>(&ptrs, xq, (blocks, stride), next, &mut sums),
                    3 => tile::<F, D, 3>(&ptrs, xq, (blocks, stride), next, &mut sums),
                    _ => tile::<F, D, MAX_INPUTS>(&ptrs, xq, (blocks, stride), next, &mut sums),
                }
            }
            let valid = F::ROWS.min(rows - r0);
            for (t, sums) in sums.iter().take(inputs).enumerate() {
                let start = (t0 + t) * rows + r0;
                out[start..start + valid].copy_from_slice(&sums[..valid]);
            }
            t0 += inputs;
        }
    }
}

/// One tile: `F::ROWS` rows times `T` inputs (input `t`'s blocks start at `t * stride`) over
/// `blocks` blocks, prefetching `next` on the way; row `i`'s result for input `t` goes to
/// `sums[t][i]`.
#[inline(always)]
unsafe fn tile<F: Format, D: Dot, const T: usize>(
    rows: &[*const u8; ROWS],
    xq: &[BlockQ8],
    (blocks, stride): (usize, usize),
    next: &[u8],
    sums: &mut [[f32; ROWS]; MAX_INPUTS],
) {
    // SAFETY: the caller's contract (see `matmul`).
    unsafe {
        let zero = Acc { lanes: [_mm256_setzero_ps(); ROWS], mins: _mm256_setzero_ps() };
        let mut acc = [zero; T];
        // An even share of the next tile's cache lines per block.
        let share = next.len().div_ceil(blocks);
        let mut prefetched = 0;
        for b in 0..blocks {
            let until = next.len().min(share * (b + 1));
            while prefetched < until {
                _mm_prefetch::<_MM_HINT_T0>(next.as_ptr().add(prefetched).cast());
                prefetched += 64;
            }
            let w = F::load(rows, b * F::BLOCK_BYTES);
            F::accumulate_inputs::<D, T>(
                &w,
                std::array::from_fn(|t| &xq[t * stride + b]),
                &mut acc,
            );
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            *sums = F::finish(acc);
        }
    }
}

/// Reads 4 unaligned bytes.
#[inline(always)]
unsafe fn read_i32(p: *const u8) -> i32 {
    // SAFETY: the caller guarantees 4 readable bytes.
    unsafe { p.cast::<i32>().read_unaligned() }
}

/// Reads 8 unaligned bytes.
#[inline(always)]
unsafe fn read_i64(p: *const u8) -> i64 {
    // SAFETY: the caller guarantees 8 readable bytes.
    unsafe { p.cast::<i64>().read_unaligned() }
}

/// Reads 2 unaligned bytes.
#[inline(always)]
unsafe fn read_i16(p: *const u8) -> i16 {
    // SAFETY: the caller guarantees 2 readable bytes.
    unsafe { p.cast::<i16>().read_unaligned() }
}

/// The f16 scales at byte `offset` of the 8 rows, widened to f32 in row order.
#[inline(always)]
unsafe fn scales(rows: &[*const u8; ROWS], offset: usize) -> __m256 {
    // SAFETY: the caller guarantees 2 readable bytes at `offset` of each row.
    unsafe {
        let d = |r: usize| read_i16(rows[r].add(offset));
        _mm256_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), d(4), d(5), d(6), d(7)))
    }
}

/// Horizontal sum of eight lanes, given as two halves, in ggml's `hsum_float_8` order.
#[inline(always)]
pub(super) unsafe fn hsum(lo: __m128, hi: __m128) -> f32 {
    // SAFETY: register-only intrinsics.
    unsafe {
        let r = _mm_add_ps(hi, lo);
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
    }
}

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
struct Nibbles {
    lo: [__m256i; 4],
    hi: [__m256i; 4],
}

impl Nibbles {
    /// Reads the 16 bytes of nibbles at byte `offset` of each row.
    #[inline(always)]
    unsafe fn load(rows: &[*const u8; ROWS], offset: usize) -> Self {
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
    unsafe fn load_q3_low(rows: &[*const u8; ROWS], offset: usize) -> Self {
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
    unsafe fn add_top_bits<const BIT: i8>(&mut self, rows: &[*const u8; ROWS], offset: usize) {
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
    unsafe fn offset_row_sums<D: Dot, const OFFSET: i8>(&self, a: &BlockQ8) -> __m256i {
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
    unsafe fn accumulate<D: Dot, const OFFSET: i8>(&self, a: &BlockQ8, dd: __m256, acc: &mut Acc) {
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
    unsafe fn finish(acc: &Acc) -> [f32; ROWS] {
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

/// ggml `block_q4_0` (18 bytes: f16 d, 16 bytes of nibbles): value = d·(q − 8).
///
/// One lane per row: llama.cpp repacks Q4_0 weights on x86 and accumulates each row's exact
/// block sum with one FMA per block (`ggml_gemv_q4_0_8x8_q8_0`, `ggml_gemm_q4_0_8x8_q8_0`),
/// and so does this kernel, from the file's own layout.
struct Q4_0;

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
struct Q3_0;

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
struct Q4_1;

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
struct Q5_0;

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

    /// The 32 signed codes of the block at `block`.
    ///
    /// # Safety
    /// The features of the path are available, and the block's bytes are readable.
    unsafe fn codes<D: Dot>(block: *const u8) -> __m256i;
}

/// ggml `block_q8_0` (34 bytes: f16 d, 32 signed bytes): value = d·q.
struct Q8Codes;

impl SignedCodes for Q8Codes {
    const BLOCK_BYTES: usize = 34;

    #[inline(always)]
    unsafe fn codes<D: Dot>(block: *const u8) -> __m256i {
        // SAFETY: the caller's contract: bytes 2..34 of the block are the codes.
        unsafe { _mm256_loadu_si256(block.add(2).cast()) }
    }
}

/// ggml `block_q5_0` as signed codes q − 16, in element order (low nibbles, then high).
struct Q5Codes;

impl SignedCodes for Q5Codes {
    const BLOCK_BYTES: usize = 22;

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

/// Q8_0, and Q5_0 on VNNI: 4 rows by 2 inputs (4 with 32 registers), 8 f32 lanes per row
/// and input, with room left to read each row's codes when its turn comes. A tile of 8 rows
/// would leave room for one input only, and widening the 8 scales would then cost as much as
/// the products.
struct Signed<C>(std::marker::PhantomData<C>);

/// ggml `block_q8_0` in [`Signed`] tiles.
type Q8_0 = Signed<Q8Codes>;

/// ggml `block_q5_0` in [`Signed`] tiles, for batches on VNNI (see [`Q5_0Tiles`]).
type Q5_0Signed = Signed<Q5Codes>;

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
            let mut dd = [[0.0f32; 4]; T];
            let mut av = [_mm256_setzero_si256(); T];
            for t in 0..T {
                _mm_storeu_ps(dd[t].as_mut_ptr(), _mm_mul_ps(*d, _mm_set1_ps(a[t].d)));
                av[t] = D::signed_activation(_mm256_loadu_si256(a[t].qs.as_ptr().cast()));
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
        // SAFETY: register-only intrinsics.
        unsafe {
            let mut sums = [0.0; ROWS];
            for (s, &v) in sums.iter_mut().zip(&acc.lanes).take(SIGNED_ROWS) {
                *s = hsum(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            }
            sums
        }
    }
}

/// Horizontal sum of eight i32 lanes (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn hsum_i32(a: __m256i) -> i32 {
    let r = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
    let r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    let r = _mm_add_epi32(r, _mm_shuffle_epi32::<0b1011_0001>(r));
    _mm_cvtsi128_si32(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fifth_bits_avx2(low: [u8; 32], high: u32) -> [i8; 32] {
        // SAFETY: the features are enabled here; 32-byte unaligned load and store.
        unsafe {
            let v = Maddubs::fifth_bits_signed(_mm256_loadu_si256(low.as_ptr().cast()), high);
            let mut out = [0i8; 32];
            _mm256_storeu_si256(out.as_mut_ptr().cast(), v);
            out
        }
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn fifth_bits_vnni(low: [u8; 32], high: u32) -> [i8; 32] {
        // SAFETY: as in `fifth_bits_avx2`.
        unsafe {
            let v = Vnni::fifth_bits_signed(_mm256_loadu_si256(low.as_ptr().cast()), high);
            let mut out = [0i8; 32];
            _mm256_storeu_si256(out.as_mut_ptr().cast(), v);
            out
        }
    }

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
        if !super::super::Isa::Avx2.is_available() {
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

    /// Q5_0's signed codes from low nibbles and fifth bits, on both paths (only VNNI tiles
    /// read them, so the AVX2 twin is checked here).
    #[test]
    fn fifth_bits_make_signed_codes() {
        if !super::super::Isa::Avx2.is_available() {
            return;
        }
        let low: [u8; 32] = std::array::from_fn(|j| (j * 7 % 16) as u8);
        for high in [0, u32::MAX, 0x8000_0001, 0x1234_5678, 0xF0F0_0F0F] {
            let expect: [i8; 32] =
                std::array::from_fn(|j| low[j] as i8 + 16 * ((high >> j) & 1) as i8 - 16);
            // SAFETY: AVX2, FMA and F16C are available.
            assert_eq!(unsafe { fifth_bits_avx2(low, high) }, expect, "avx2 {high:#x}");
            if super::super::Isa::Avx512Vnni.is_available() {
                // SAFETY: the VNNI path's features are available.
                assert_eq!(unsafe { fifth_bits_vnni(low, high) }, expect, "vnni {high:#x}");
            }
        }
    }
}
