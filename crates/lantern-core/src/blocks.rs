//! Quantization blocks: ggml's on-disk layouts, lantern's own 3-bit one, and lantern's
//! in-memory activation blocks.
//!
//! # Layout contract
//! The on-disk blocks ([`BlockQ3_0`], [`BlockQ4_0`], [`BlockQ4_1`], [`BlockQ5_0`],
//! [`BlockQ8_0`], [`BlockQ2K`], [`BlockQ3K`], [`BlockQ4K`], [`BlockQ5K`], [`BlockQ6K`], [`BlockIQ4NL`],
//! [`BlockIQ4XS`]) are `#[repr(C)]` with alignment 1 and no
//! padding: every f16 field is stored as `[u8; 2]` little-endian, exactly as ggml writes it. Any `&[u8]` whose
//! length is a multiple of the block size can therefore be viewed as `&[Block]` with
//! [`bytemuck::try_cast_slice`] wherever it sits in memory (a memory map at an odd offset
//! included); only the length can make the cast fail.
//!
//! The 32-value formats hold [`QK8`] = 32 values per block. The 4- and 5-bit ones pack element
//! `j` in the low nibble of `qs[j]` and element `j + 16` in its high nibble (not `2j` and
//! `2j + 1`); Q5_0 keeps the fifth bit of element `j` in bit `j` of the little-endian `u32`
//! `qh`.
//!
//! [`BlockQ3_0`] is lantern's own (ggml has no 3-bit format with 32-value blocks; its Q3_K
//! needs rows of 256): it packs the low two bits of elements `j`, `j + 8`, `j + 16` and
//! `j + 24` in one byte, so that shifts of one 64-bit word unpack all four runs, and keeps the
//! third bit of element `j` in bit `j` of a little-endian `u32`, as Q5_0 does.
//!
//! The k-quants ([`BlockQ2K`], [`BlockQ3K`], [`BlockQ4K`], [`BlockQ5K`], [`BlockQ6K`]) hold
//! [`QK_K`] = 256 values per super-block, split into sub-blocks (8 of 32 for Q4_K and Q5_K, 16
//! of 16 for Q2_K, Q3_K and Q6_K) that each have a small integer scale (and, for Q2_K, Q4_K
//! and Q5_K, a minimum) relative to the super-block's f16 `d` (and `dmin`). Their codes
//! are laid out in runs of 32 bytes; the doc of each block says which byte and bit hold which
//! element.
//!
//! The non-linear 4-bit formats ([`BlockIQ4NL`], 32 values, and [`BlockIQ4XS`], 256 values in
//! sub-blocks of 32 with 6-bit scales) store indices into the fixed codebook
//! [`IQ4NL_VALUES`] rather than the values' offsets from a minimum; their nibbles are laid out
//! as Q4_0's, one run of 16 bytes per 32 values.
//!
//! [`BlockQ8`] and [`BlockQ8K`] are not on-disk formats: they are the activation side of the
//! quantized dot products, holding f32 scales so that kernels need no f16 conversion in their
//! inner loop. [`BlockQ8`] holds exactly the numbers of ggml's `block_q8_1` (see
//! [`quantize_activation`](crate::quantize_activation)); [`BlockQ8K`] is ggml's `block_q8_K`
//! itself, numbers and field layout (see [`quantize_activation_k`](crate::quantize_activation_k)).
//!
//! Field layouts follow ggml's `ggml-common.h`:
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-common.h>

use std::mem::size_of;

use half::f16;

/// Values per block in every 32-element format (ggml's `QK4_0`, `QK4_1`, `QK5_0`, `QK8_0`,
/// `QK8_1`, and lantern's Q3_0).
pub const QK8: usize = 32;

/// Values per super-block in the k-quant formats (ggml's `QK_K`).
pub const QK_K: usize = 256;

/// The low four bits of codes `q` as the 4- and 5-bit blocks keep them: element `j` in the
/// low half of byte `j`, element `j + 16` in the high half.
#[inline(always)]
pub(crate) fn nibbles(q: &[u8; QK8]) -> [u8; QK8 / 2] {
    std::array::from_fn(|j| (q[j] & 0x0F) | ((q[j + QK8 / 2] & 0x0F) << 4))
}

/// Bit `shift` of each code, gathered: bit `j` of the result for element `j`.
#[inline(always)]
fn top_bits(q: &[u8; QK8], shift: u32) -> u32 {
    q.iter().enumerate().fold(0, |bits, (j, &q)| bits | (u32::from(q >> shift) << j))
}

/// Reads a little-endian f16 stored as two bytes.
#[inline(always)]
fn f16_le(bytes: [u8; 2]) -> f32 {
    f16::from_le_bytes(bytes).to_f32()
}

/// lantern's `Q3_0` (not a ggml type): 32 weights, value = d·(q − 4) with q in 0..8;
/// 14 bytes, 3.5 bits per weight.
///
/// Codes: byte `j` of `ql` (`j` in 0..8) holds the low two bits of element `j` in its bits 0–1,
/// of element `j + 8` in bits 2–3, of element `j + 16` in bits 4–5 and of element `j + 24` in
/// bits 6–7; bit `j` of the little-endian `u32` `qh` is bit 2 of element `j`. Read as one
/// little-endian `u64` and shifted right by `2k`, `ql` gives elements `8k..8k + 8` in the low
/// two bits of its bytes, in order.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Low two bits of the codes, four elements per byte as described above.
    pub ql: [u8; QK8 / 4],
    /// Third bits: bit `j` of this little-endian `u32` is bit 2 of element `j`.
    pub qh: [u8; 4],
}

const _: () = assert!(size_of::<BlockQ3_0>() == 14);
const _: () = assert!(std::mem::align_of::<BlockQ3_0>() == 1);

impl BlockQ3_0 {
    /// The block of scale `d` (f16 little-endian) and codes `q` (each in 0..8, element order).
    #[inline]
    pub(crate) fn from_codes(d: [u8; 2], q: &[u8; QK8]) -> Self {
        let ql =
            std::array::from_fn(|j| (0..4).fold(0, |l, k| l | ((q[j + 8 * k] & 3) << (2 * k))));
        Self { d, ql, qh: top_bits(q, 2).to_le_bytes() }
    }

    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The third bits of the 32 codes, bit `j` for element `j`.
    #[inline(always)]
    pub fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }

    /// The 32 codes minus 4 (each in −4..4), in element order.
    #[inline]
    pub fn codes(&self) -> [i8; QK8] {
        let qh = self.qh();
        std::array::from_fn(|j| {
            let low = (self.ql[j % 8] >> (2 * (j / 8))) & 3;
            let third = (((qh >> j) & 1) << 2) as u8;
            (low | third) as i8 - 4
        })
    }
}

/// ggml `block_q4_0`: 32 weights, value = d·(q − 8) with q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Nibbles: element `j` in the low half of `qs[j]`, element `j + 16` in the high half.
    pub qs: [u8; QK8 / 2],
}

const _: () = assert!(size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::align_of::<BlockQ4_0>() == 1);

impl BlockQ4_0 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }
}

/// ggml `block_q4_1`: 32 weights, value = d·q + m with q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Minimum (offset), f16 little-endian.
    pub m: [u8; 2],
    /// Nibbles: element `j` in the low half of `qs[j]`, element `j + 16` in the high half.
    pub qs: [u8; QK8 / 2],
}

const _: () = assert!(size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::align_of::<BlockQ4_1>() == 1);

impl BlockQ4_1 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The minimum as f32.
    #[inline(always)]
    pub fn m(&self) -> f32 {
        f16_le(self.m)
    }
}

/// ggml `block_q5_0`: 32 weights, value = d·(q − 16) with q in 0..32.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Fifth bits: bit `j` of this little-endian `u32` is bit 4 of element `j`.
    pub qh: [u8; 4],
    /// Low four bits: element `j` in the low half of `qs[j]`, element `j + 16` in the high half.
    pub qs: [u8; QK8 / 2],
}

const _: () = assert!(size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::align_of::<BlockQ5_0>() == 1);

impl BlockQ5_0 {
    /// The block of scale `d` (f16 little-endian) and codes `q` (each in 0..32, element order).
    #[inline]
    pub(crate) fn from_codes(d: [u8; 2], q: &[u8; QK8]) -> Self {
        Self { d, qh: top_bits(q, 4).to_le_bytes(), qs: nibbles(q) }
    }

    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The fifth bits of the 32 codes, bit `j` for element `j`.
    #[inline(always)]
    pub fn qh(&self) -> u32 {
        u32::from_le_bytes(self.qh)
    }

    /// The 32 codes minus 16 (each in −16..16), in element order.
    #[inline]
    pub fn codes(&self) -> [i8; QK8] {
        let qh = self.qh();
        let mut out = [0i8; QK8];
        let (lo, hi) = out.split_at_mut(QK8 / 2);
        for (j, ((l, h), &q)) in lo.iter_mut().zip(hi).zip(&self.qs).enumerate() {
            let fifth_lo = (((qh >> j) & 1) << 4) as u8;
            let fifth_hi = (((qh >> (j + 16)) & 1) << 4) as u8;
            *l = ((q & 0x0F) | fifth_lo) as i8 - 16;
            *h = ((q >> 4) | fifth_hi) as i8 - 16;
        }
        out
    }
}

/// ggml `block_q8_0`: 32 weights, value = d·q with q an `i8`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// The quantized values, in order.
    pub qs: [i8; QK8],
}

const _: () = assert!(size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::align_of::<BlockQ8_0>() == 1);

impl BlockQ8_0 {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }
}

/// ggml `block_q4_K`: 256 weights in 8 sub-blocks of 32, value = d·sc·q − dmin·m with q in
/// 0..16 and a 6-bit scale `sc` and minimum `m` per sub-block.
///
/// Codes: the 32 bytes `qs[32i..32i + 32]` hold sub-block `2i` in their low nibbles and
/// sub-block `2i + 1` in their high nibbles (element `64i + l` is the low nibble of
/// `qs[32i + l]`, element `64i + 32 + l` its high nibble). The twelve `scales` bytes pack the
/// eight (sc, m) pairs; [`BlockQ4K::scales_and_mins`] unpacks them.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block minimums, f16 little-endian.
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit minimums, packed.
    pub scales: [u8; 12],
    /// The 4-bit codes, in runs of 32 bytes as described above.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::align_of::<BlockQ4K>() == 1);

impl BlockQ4K {
    /// `d` as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// `dmin` as f32.
    #[inline(always)]
    pub fn dmin(&self) -> f32 {
        f16_le(self.dmin)
    }

    /// The eight sub-block scales (bytes 0..8) followed by the eight minimums (bytes 8..16),
    /// each in 0..64: ggml's `get_scale_min_k4` for every sub-block at once.
    ///
    /// Sub-blocks 0..4 keep scale and minimum in the low six bits of `scales[j]` and
    /// `scales[j + 4]`; sub-blocks 4..8 keep their low four bits in the nibbles of
    /// `scales[j + 4]` (scale low, minimum high) and their top two bits in the top bits of
    /// `scales[j - 4]` (scale) and `scales[j]` (minimum).
    #[inline]
    pub fn scales_and_mins(&self) -> [u8; 16] {
        k4_scales_and_mins(&self.scales)
    }

    /// The 256 codes (each in 0..16), in element order.
    #[inline]
    pub fn codes(&self) -> [u8; QK_K] {
        let mut out = [0u8; QK_K];
        for (out, qs) in out.chunks_exact_mut(64).zip(self.qs.chunks_exact(32)) {
            let (lo, hi) = out.split_at_mut(32);
            for ((l, h), &q) in lo.iter_mut().zip(hi).zip(qs) {
                *l = q & 0x0F;
                *h = q >> 4;
            }
        }
        out
    }
}

/// Unpacks the twelve bytes of six-bit scales and minimums that Q4_K and Q5_K share: the
/// eight scales, then the eight minimums (see [`BlockQ4K::scales_and_mins`]).
#[inline]
fn k4_scales_and_mins(q: &[u8; 12]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for j in 0..4 {
        out[j] = q[j] & 63;
        out[j + 8] = q[j + 4] & 63;
        out[j + 4] = (q[j + 8] & 0x0F) | ((q[j] >> 6) << 4);
        out[j + 12] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
    out
}

/// ggml `block_q5_K`: 256 weights in 8 sub-blocks of 32, value = d·sc·q − dmin·m with q in
/// 0..32 and a 6-bit scale `sc` and minimum `m` per sub-block, packed as in [`BlockQ4K`].
///
/// Codes: the low four bits are laid out as Q4_K's (element `64i + l` is the low nibble of
/// `qs[32i + l]`, element `64i + 32 + l` its high nibble); the fifth bit of element `64i + l`
/// is bit `2i` of `qh[l]`, that of element `64i + 32 + l` bit `2i + 1` of `qh[l]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block minimums, f16 little-endian.
    pub dmin: [u8; 2],
    /// Eight 6-bit scales and eight 6-bit minimums, packed as Q4_K's.
    pub scales: [u8; 12],
    /// The fifth bits of the codes, as described above.
    pub qh: [u8; QK_K / 8],
    /// The low four bits of the codes, in runs of 32 bytes as Q4_K's.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::align_of::<BlockQ5K>() == 1);

impl BlockQ5K {
    /// `d` as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// `dmin` as f32.
    #[inline(always)]
    pub fn dmin(&self) -> f32 {
        f16_le(self.dmin)
    }

    /// The eight sub-block scales (bytes 0..8) followed by the eight minimums (bytes 8..16),
    /// each in 0..64, unpacked as [`BlockQ4K::scales_and_mins`] does.
    #[inline]
    pub fn scales_and_mins(&self) -> [u8; 16] {
        k4_scales_and_mins(&self.scales)
    }

    /// The 256 codes (each in 0..32), in element order.
    #[inline]
    pub fn codes(&self) -> [u8; QK_K] {
        let mut out = [0u8; QK_K];
        let runs = out.chunks_exact_mut(64).zip(self.qs.chunks_exact(32));
        for (i, (out, qs)) in runs.enumerate() {
            let (lo, hi) = out.split_at_mut(32);
            for (l, (&q, &h)) in qs.iter().zip(&self.qh).enumerate() {
                lo[l] = (q & 0x0F) | (((h >> (2 * i)) & 1) << 4);
                hi[l] = (q >> 4) | (((h >> (2 * i + 1)) & 1) << 4);
            }
        }
        out
    }
}

/// ggml `block_q6_K`: 256 weights in 16 sub-blocks of 16, value = d·sc·(q − 32) with q in
/// 0..64 and an `i8` scale `sc` per sub-block.
///
/// Codes come in two halves of 128 elements; half `h` uses `ql[64h..64h + 64]` and
/// `qh[32h..32h + 32]`. Within a half, for `l` in 0..32, the low four bits of elements
/// `l`, `l + 32`, `l + 64` and `l + 96` are the low nibble of `ql[l]`, the low nibble of
/// `ql[l + 32]`, the high nibble of `ql[l]` and the high nibble of `ql[l + 32]`, and their
/// top two bits are bits 0–1, 2–3, 4–5 and 6–7 of `qh[l]`. Note that `d` comes last.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ6K {
    /// Low four bits of the codes.
    pub ql: [u8; QK_K / 2],
    /// High two bits of the codes.
    pub qh: [u8; QK_K / 4],
    /// Sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
}

const _: () = assert!(size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::align_of::<BlockQ6K>() == 1);

impl BlockQ6K {
    /// `d` as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The 256 codes minus 32 (each in −32..32), in element order.
    #[inline]
    pub fn codes(&self) -> [i8; QK_K] {
        let mut out = [0i8; QK_K];
        let halves = out.chunks_exact_mut(128).zip(self.ql.chunks_exact(64));
        for ((out, ql), qh) in halves.zip(self.qh.chunks_exact(32)) {
            for (l, &h) in qh.iter().enumerate() {
                let low = [ql[l] & 0x0F, ql[l + 32] & 0x0F, ql[l] >> 4, ql[l + 32] >> 4];
                for (k, low) in low.into_iter().enumerate() {
                    // Element l + 32k takes bits 2k and 2k + 1 of qh[l] as its top two bits.
                    out[l + 32 * k] = (low | (((h >> (2 * k)) & 3) << 4)) as i8 - 32;
                }
            }
        }
        out
    }
}

/// The 2-bit codes of a Q2_K or Q3_K super-block, as both keep them in `qs`: element
/// `128h + 32k + l` is bits `2k..2k + 2` of `qs[32h + l]`.
#[inline]
fn two_bit_codes(qs: &[u8; QK_K / 4]) -> [u8; QK_K] {
    let mut out = [0u8; QK_K];
    for (out, qs) in out.chunks_exact_mut(128).zip(qs.chunks_exact(32)) {
        for (k, out) in out.chunks_exact_mut(32).enumerate() {
            for (o, &q) in out.iter_mut().zip(qs) {
                *o = (q >> (2 * k)) & 3;
            }
        }
    }
    out
}

/// ggml `block_q2_K`: 256 weights in 16 sub-blocks of 16, value = d·sc·q − dmin·m with q in
/// 0..4 and a 4-bit scale `sc` and minimum `m` per sub-block.
///
/// Codes come in two halves of 128 elements; half `h` uses `qs[32h..32h + 32]`, and element
/// `128h + 32k + l` (k in 0..4, l in 0..32) is bits `2k..2k + 2` of `qs[32h + l]`. Sub-block
/// `s` (elements `16s..16s + 16`) has its scale in the low nibble of `scales[s]` and its
/// minimum in the high nibble. Note that `d` and `dmin` come last.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ2K {
    /// Per sub-block: scale in the low nibble, minimum in the high nibble.
    pub scales: [u8; QK_K / 16],
    /// The 2-bit codes, four elements per byte as described above.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale of the sub-block scales, f16 little-endian.
    pub d: [u8; 2],
    /// Super-block scale of the sub-block minimums, f16 little-endian.
    pub dmin: [u8; 2],
}

const _: () = assert!(size_of::<BlockQ2K>() == 84);
const _: () = assert!(std::mem::align_of::<BlockQ2K>() == 1);

impl BlockQ2K {
    /// `d` as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// `dmin` as f32.
    #[inline(always)]
    pub fn dmin(&self) -> f32 {
        f16_le(self.dmin)
    }

    /// The 256 codes (each in 0..4), in element order.
    #[inline]
    pub fn codes(&self) -> [u8; QK_K] {
        two_bit_codes(&self.qs)
    }
}

/// ggml `block_q3_K`: 256 weights in 16 sub-blocks of 16, value = d·(sc − 32)·(q − 4) with q
/// in 0..8 and a 6-bit scale `sc` per sub-block.
///
/// The low two bits of the codes are laid out as Q2_K's (element `128h + 32k + l` is bits
/// `2k..2k + 2` of `qs[32h + l]`); the third bit of that element is bit `4h + k` of
/// `hmask[l]`. The twelve `scales` bytes pack the sixteen 6-bit scales;
/// [`BlockQ3K::scales`] unpacks them. Note that `d` comes last.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3K {
    /// The third bits of the codes, as described above.
    pub hmask: [u8; QK_K / 8],
    /// The low two bits of the codes, four elements per byte.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales, packed.
    pub scales: [u8; 12],
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
}

const _: () = assert!(size_of::<BlockQ3K>() == 110);
const _: () = assert!(std::mem::align_of::<BlockQ3K>() == 1);

impl BlockQ3K {
    /// `d` as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The sixteen sub-block scales minus 32 (each in −32..32), as ggml unpacks them.
    ///
    /// Sub-block `s` keeps its low four bits in the low nibble of `scales[s]` (s < 8) or the
    /// high nibble of `scales[s − 8]`, and its top two bits in bits `2(s / 4)..2(s / 4) + 2`
    /// of `scales[8 + s % 4]`.
    #[inline]
    pub fn scales(&self) -> [i8; QK_K / 16] {
        let q = &self.scales;
        std::array::from_fn(|s| {
            let low = if s < 8 { q[s] & 0x0F } else { q[s - 8] >> 4 };
            let top = (q[8 + s % 4] >> (2 * (s / 4))) & 3;
            (low | (top << 4)) as i8 - 32
        })
    }

    /// The 256 codes minus 4 (each in −4..4), in element order.
    #[inline]
    pub fn codes(&self) -> [i8; QK_K] {
        let mut out = [0i8; QK_K];
        for (i, (o, low)) in out.iter_mut().zip(two_bit_codes(&self.qs)).enumerate() {
            let (h, k, l) = (i / 128, (i / 32) % 4, i % 32);
            let third = (self.hmask[l] >> (4 * h + k)) & 1;
            *o = (low | (third << 2)) as i8 - 4;
        }
        out
    }
}

/// ggml's `kvalues_iq4nl`: the 16 values a 4-bit IQ4_NL or IQ4_XS code stands for, a
/// non-linear grid denser near zero, where most weights lie.
pub const IQ4NL_VALUES: [i8; 16] =
    [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

/// The codebook values of 16 bytes of 4-bit indices laid out as the 4-bit blocks keep them:
/// element `j` in the low nibble of `qs[j]`, element `j + 16` in its high nibble.
#[inline(always)]
fn iq4_values(qs: &[u8; QK8 / 2]) -> [i8; QK8] {
    std::array::from_fn(|j| {
        let q = if j < QK8 / 2 { qs[j] & 0x0F } else { qs[j - QK8 / 2] >> 4 };
        IQ4NL_VALUES[usize::from(q)]
    })
}

/// ggml `block_iq4_nl`: 32 weights, value = d·[`IQ4NL_VALUES`]\[q\] with q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ4NL {
    /// Scale, f16 little-endian.
    pub d: [u8; 2],
    /// Indices into the codebook: element `j` in the low half of `qs[j]`, element `j + 16`
    /// in the high half.
    pub qs: [u8; QK8 / 2],
}

const _: () = assert!(size_of::<BlockIQ4NL>() == 18);
const _: () = assert!(std::mem::align_of::<BlockIQ4NL>() == 1);

impl BlockIQ4NL {
    /// The scale as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The 32 codebook values (before the scale), in element order.
    #[inline]
    pub fn values(&self) -> [i8; QK8] {
        iq4_values(&self.qs)
    }
}

/// ggml `block_iq4_xs`: 256 weights in 8 sub-blocks of 32, value = d·(ls − 32)·
/// [`IQ4NL_VALUES`]\[q\] with q in 0..16 and a 6-bit scale `ls` per sub-block.
///
/// Codes: sub-block `s` takes the 16 bytes `qs[16s..16s + 16]`, laid out as a
/// [`BlockIQ4NL`]'s (element `32s + j` in the low nibble of `qs[16s + j]`, element
/// `32s + 16 + j` in its high nibble). Scales: the low four bits of `ls` of sub-block `s` are
/// nibble `s % 2` of `scales_l[s / 2]` (low nibble first), its top two bits are bits
/// `2s..2s + 2` of the little-endian `u16` `scales_h`; [`BlockIQ4XS::scales`] unpacks them.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIQ4XS {
    /// Super-block scale, f16 little-endian.
    pub d: [u8; 2],
    /// Top two bits of the eight sub-block scales, a little-endian `u16`.
    pub scales_h: [u8; 2],
    /// Low four bits of the eight sub-block scales, two per byte.
    pub scales_l: [u8; QK_K / 64],
    /// Indices into the codebook, 16 bytes per sub-block as described above.
    pub qs: [u8; QK_K / 2],
}

const _: () = assert!(size_of::<BlockIQ4XS>() == 136);
const _: () = assert!(std::mem::align_of::<BlockIQ4XS>() == 1);

impl BlockIQ4XS {
    /// `d` as f32.
    #[inline(always)]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// The eight sub-block scales `ls − 32`, each in −32..32.
    #[inline]
    pub fn scales(&self) -> [i8; QK_K / 32] {
        let h = u16::from_le_bytes(self.scales_h);
        std::array::from_fn(|s| {
            let low = (self.scales_l[s / 2] >> (4 * (s % 2))) & 0x0F;
            let top = ((h >> (2 * s)) & 3) as u8;
            (low | (top << 4)) as i8 - 32
        })
    }

    /// The 256 codebook values (before the scales), in element order.
    #[inline]
    pub fn values(&self) -> [i8; QK_K] {
        std::array::from_fn(|i| {
            let (qs, j) = (&self.qs[16 * (i / 32)..], i % 32);
            let q = if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 };
            IQ4NL_VALUES[usize::from(q)]
        })
    }
}

/// 32 activation values quantized to 8 bits: value ≈ d·q.
///
/// Built by [`quantize_activation`](crate::quantize_activation). `d` and `s` are f16 values
/// widened to f32, so they equal what ggml's `block_q8_1` stores bit for bit; `s` = d·Σq
/// lets Q4_1 kernels apply the weight minimum without touching the 32 values again, and the
/// exact `sum` lets kernels that take codes as unsigned bytes remove their offset once per
/// block.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ8 {
    /// Scale (an f16 value held as f32).
    pub d: f32,
    /// The scaled sum d·Σqs, computed with the unrounded scale, then rounded through f16.
    pub s: f32,
    /// The exact sum Σqs.
    pub sum: i32,
    /// The quantized values, each in −127..=127.
    pub qs: [i8; QK8],
}

/// 256 activation values quantized to 8 bits for the k-quant kernels: value ≈ d·q.
///
/// ggml's `block_q8_K`, field for field (292 bytes, the size [`GgmlType::Q8_K`] lists). Built
/// by [`quantize_activation_k`](crate::quantize_activation_k); note that `d` is negative
/// when the value of largest magnitude is positive, since ggml maps that value to −127.
///
/// [`GgmlType::Q8_K`]: crate::GgmlType::Q8_K
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    /// Scale (full f32, not rounded through f16).
    pub d: f32,
    /// The quantized values, each in −127..=127.
    pub qs: [i8; QK_K],
    /// Sums of `qs` over each run of 16 values, which lets Q4_K kernels apply the minimums
    /// without touching the 256 values again.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(size_of::<BlockQ8K>() == 292);

impl Default for BlockQ8K {
    /// The all-zero block (d = 0), which adds nothing to any dot product.
    fn default() -> Self {
        Self { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_byte_offset_casts() {
        // Blocks have alignment 1, so a slice starting at an odd address still casts.
        let bytes = [0u8; 1 + 2 * 20];
        let blocks: &[BlockQ4_1] = bytemuck::try_cast_slice(&bytes[1..]).unwrap();
        assert_eq!(blocks.len(), 2);
        assert!(bytemuck::try_cast_slice::<u8, BlockQ4_1>(&bytes[1..40]).is_err());
    }

    #[test]
    fn accessors_read_little_endian_f16() {
        // 0x3C00 is 1.0 and 0xC000 is -2.0 in IEEE half precision.
        let b = BlockQ4_1 { d: [0x00, 0x3C], m: [0x00, 0xC0], qs: [0; 16] };
        assert_eq!(b.d(), 1.0);
        assert_eq!(b.m(), -2.0);
        let b = BlockQ8_0 { d: [0x00, 0x38], qs: [0; 32] };
        assert_eq!(b.d(), 0.5);
        let b = BlockQ4_0 { d: [0x00, 0x40], qs: [0; 16] };
        assert_eq!(b.d(), 2.0);
    }

    #[test]
    fn q3_0_codes_by_hand() {
        // ql[0] = 0b11_10_01_00: elements 0, 8, 16, 24 have low bits 0, 1, 2, 3; ql[7] = 0xFF:
        // elements 7, 15, 23, 31 have low bits 3. Third bits set for elements 0 and 31 only.
        let mut ql = [0u8; 8];
        ql[0] = 0b11_10_01_00;
        ql[7] = 0xFF;
        let b = BlockQ3_0 { d: [0x00, 0x3C], ql, qh: 0x8000_0001u32.to_le_bytes() };
        let c = b.codes();
        assert_eq!([c[0], c[8], c[16], c[24]], [0, -3, -2, -1]); // codes 4, 1, 2, 3
        assert_eq!([c[7], c[15], c[23], c[31]], [-1, -1, -1, 3]); // codes 3, 3, 3, 7
        assert_eq!(c[1], -4); // code 0
        assert_eq!(b.d(), 1.0);
    }
}
