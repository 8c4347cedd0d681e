//! Matrix kernels for the 32-value block formats (Q3_0, Q4_0, Q4_1, Q5_0, Q8_0) in their file
//! layout, against the inputs' 32-value activation blocks ([`BlockQ8`](crate::BlockQ8)).
//!
//! The [kernels docs](super) give their contract and math. Each format has a scalar kernel,
//! the reference twin ([`scalar`]), and tiled SIMD kernels that give the same bits: AVX2 with
//! an AVX-512 VNNI variant on x86-64, NEON with a `dotprod` variant on aarch64.

use super::{DotFn, GatherFn, Isa, MatmulFn};
use crate::GgmlType;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;

/// The scalar reference kernel for `ty`, if it is a block format.
pub(super) fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    scalar::dot_fn(ty)
}

/// The matrix kernel for rows of block format `ty` on path `isa`; `None` for other types and
/// for paths this CPU cannot run.
pub(super) fn matmul_fn(ty: GgmlType, isa: Isa) -> Option<MatmulFn> {
    match isa {
        Isa::Scalar => scalar::matmul_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => {
            avx2::matmul_fn(ty, isa == Isa::Avx512Vnni)
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => neon::matmul_fn(ty, isa == Isa::NeonDot),
        _ => None,
    }
}

/// The gather kernel for rows of block format `ty` on path `isa`: the SIMD paths' tiles over
/// listed rows. `None` for other types and paths, and on the scalar path, where the matrix
/// kernel row by row is the reference.
pub(super) fn gather_fn(ty: GgmlType, isa: Isa) -> Option<GatherFn> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => {
            avx2::gather_fn(ty, isa == Isa::Avx512Vnni)
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => neon::gather_fn(ty, isa == Isa::NeonDot),
        _ => None,
    }
}

/// The rows a gather kernel lists, over a file-layout matrix `w` of `row_bytes` rows, taken a
/// tile of `N` at a time.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
struct ListedRows<'a> {
    w: &'a [u8],
    row_bytes: usize,
    /// Whole rows in `w`.
    rows: usize,
}

#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
impl<'a> ListedRows<'a> {
    fn new(w: &'a [u8], row_bytes: usize) -> Self {
        Self { w, row_bytes, rows: w.len() / row_bytes.max(1) }
    }

    /// Whether listed row `r` is in the matrix: a row past the end gets no result.
    fn holds(&self, r: u32) -> bool {
        (r as usize) < self.rows
    }

    /// The `N` row pointers of a tile that lists `tile` (at most `N` rows): a partial tile
    /// repeats its last row, and a row past the end reads row 0 instead.
    fn pointers<const N: usize>(&self, tile: &[u32]) -> [*const u8; N] {
        std::array::from_fn(|i| {
            let r = tile.get(i).or(tile.last()).copied().filter(|&r| self.holds(r));
            // In bounds: r < rows, so the row lies within `w`.
            self.w.as_ptr().wrapping_add(r.map_or(0, |r| r as usize * self.row_bytes))
        })
    }
}

/// Each tile of `n` rows of `listed`, beside the tile after it (empty after the last), whose
/// rows a tile prefetches.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))]
fn tiles_and_next(listed: &[u32], n: usize) -> impl Iterator<Item = (&[u32], &[u32])> {
    listed.chunks(n).zip(listed.chunks(n).skip(1).chain([&[][..]]))
}
