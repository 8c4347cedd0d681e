//! What the AVX2 kernel families share (x86-64): [`path_fn`], which runs a [`PathKernel`] with
//! AVX2, FMA and F16C or with AVX-512 VNNI as well, each path's integer products ([`Dot`]:
//! [`Maddubs`], [`Vnni`]), and horizontal sums.
//!
//! # VNNI
//! On CPUs with AVX-512 VNNI (Ice Lake, Zen 4 and later) the same tiles run with `vpdpbusd`,
//! which sums four byte products into each i32 lane in one instruction where AVX2 needs
//! `maddubs` and `madd`, and with the 32 vector registers of AVX-512VL. The integer sums are
//! the same, so the results are too (llama.cpp also uses `vpdpbusd` there, in the same lanes).
//!
//! # Safety design
//! The `unsafe fn`s of the AVX2 kernels require AVX2, FMA and F16C, and those given [`Vnni`]
//! also AVX-512 F, BW, VL and VNNI. They are reached only through private safe wrappers (those
//! of [`path_fn`], and the quantizers'), which [`super::matmul_fn_for`] and the
//! [quantizers' dispatch](super::quantize) hand out only after [`super::Isa::is_available`] has
//! confirmed those features on this CPU. The kernels derive every row pointer and block offset
//! from the slice lengths, so all loads stay inside the weight rows and activation blocks they
//! were given.
//!
//! No closures around intrinsics: a closure is compiled without the enclosing function's
//! target features, and if it is not inlined each intrinsic becomes a call (20× slower).

use std::arch::x86_64::*;

use super::{GatherFn, Input, MatmulFn};
use crate::BlockQ8;

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

/// A family of kernels that multiply listed rows, written once for every path's products.
pub(super) trait GatherKernel {
    /// The [`GatherFn`] contract, with `D`'s products.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    unsafe fn gather<D: Dot>(
        w: &[u8],
        row_bytes: usize,
        rows: &[u32],
        x: &[BlockQ8],
        out: &mut [f32],
    );
}

/// `K`'s gather on the AVX2 path or, with `vnni`, on the AVX-512 VNNI path. Callers must have
/// detected the features of the path (see the module docs).
pub(super) fn gather_path_fn<K: GatherKernel>(vnni: bool) -> GatherFn {
    if vnni {
        gather_on_vnni::<K>
    } else {
        gather_on_avx2::<K>
    }
}

fn gather_on_avx2<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs).
    unsafe { gather_avx2::<K>(w, row_bytes, rows, x, out) }
}

fn gather_on_vnni<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: handed out only after AVX2/FMA/F16C and AVX-512 F/BW/VL/VNNI detection.
    unsafe { gather_vnni::<K>(w, row_bytes, rows, x, out) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gather_avx2<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: the features `K` needs with `Maddubs` are enabled here.
    unsafe { K::gather::<Maddubs>(w, row_bytes, rows, x, out) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn gather_vnni<K: GatherKernel>(
    w: &[u8],
    row_bytes: usize,
    rows: &[u32],
    x: &[BlockQ8],
    out: &mut [f32],
) {
    // SAFETY: the features `K` needs with `Vnni` are enabled here.
    unsafe { K::gather::<Vnni>(w, row_bytes, rows, x, out) }
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
    use crate::kernels::Isa;

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

    /// Q5_0's signed codes from low nibbles and fifth bits, on both paths (only VNNI tiles
    /// read them, so the AVX2 twin is checked here).
    #[test]
    fn fifth_bits_make_signed_codes() {
        if !crate::kernels::runs(Isa::Avx2, "Q5_0's fifth bits are not unpacked") {
            return;
        }
        let low: [u8; 32] = std::array::from_fn(|j| (j * 7 % 16) as u8);
        for high in [0, u32::MAX, 0x8000_0001, 0x1234_5678, 0xF0F0_0F0F] {
            let expect: [i8; 32] =
                std::array::from_fn(|j| low[j] as i8 + 16 * ((high >> j) & 1) as i8 - 16);
            // SAFETY: AVX2, FMA and F16C are available.
            assert_eq!(unsafe { fifth_bits_avx2(low, high) }, expect, "avx2 {high:#x}");
            if crate::kernels::runs(Isa::Avx512Vnni, "Q5_0's fifth bits are not unpacked") {
                // SAFETY: the VNNI path's features are available.
                assert_eq!(unsafe { fifth_bits_vnni(low, high) }, expect, "vnni {high:#x}");
            }
        }
    }
}
