//! Float weight rows (F32, F16, BF16) against f32 inputs: the scalar kernels, and an AVX2 one
//! for F16 rows.
//!
//! # Math
//! Each row's products `w·x` go into eight f32 lanes, element `i` into lane `i mod 8` (a
//! multiply, then an add, never fused); the lanes are then summed in order and the tail
//! (length mod 8) added last. The AVX2 kernel performs the same operations, and the widening of
//! f16 and bf16 is exact, so every path gives the same bits.
//!
//! These formats read only the input's f32 values ([`super::reads_f32_only`]).

use half::{bf16, f16};

use super::{per_row, DotFn, Isa, MatmulFn};
use crate::{BlockQ8, GgmlType};

#[cfg(target_arch = "x86_64")]
mod avx2;

/// The scalar kernel for `ty`, if it is a float format.
pub(super) fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    Some(match ty {
        GgmlType::F32 => dot_f32,
        GgmlType::F16 => dot_f16,
        GgmlType::BF16 => dot_bf16,
        _ => return None,
    })
}

/// The matrix kernel for float rows of type `ty` on path `isa`: the scalar one (its dot kernel
/// applied to every row and input), or AVX2's for F16. `None` for other types, paths without a
/// kernel for `ty`, and paths this CPU cannot run.
pub(super) fn matmul_fn(ty: GgmlType, isa: Isa) -> Option<MatmulFn> {
    /// A [`MatmulFn`] that calls dot kernel `$dot` once per row and input.
    macro_rules! per_row {
        ($dot:expr) => {{
            let f: MatmulFn = |w, row_bytes, input, out| {
                per_row(w, row_bytes, input.n(), out, |row, t| $dot(row, input.x(t), input.q8(t)))
            };
            f
        }};
    }
    match isa {
        Isa::Scalar => Some(match ty {
            GgmlType::F32 => per_row!(dot_f32),
            GgmlType::F16 => per_row!(dot_f16),
            GgmlType::BF16 => per_row!(dot_bf16),
            _ => return None,
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => avx2::matmul_fn(ty),
        _ => None,
    }
}

/// Sums `f(i)` over `n` terms in eight independent lanes so that the compiler can vectorize
/// (float addition is not associative, so it will not split one accumulator by itself).
#[inline(always)]
fn lanes8(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let main = n - n % 8;
    for base in (0..main).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let mut tail = 0.0;
    for i in main..n {
        tail += f(i);
    }
    acc.iter().sum::<f32>() + tail
}

fn dot_f32(row: &[u8], x: &[f32], _xq: &[BlockQ8]) -> f32 {
    let n = (row.len() / 4).min(x.len());
    let row = &row[..n * 4];
    let x = &x[..n];
    lanes8(n, |i| {
        let b = [row[4 * i], row[4 * i + 1], row[4 * i + 2], row[4 * i + 3]];
        f32::from_le_bytes(b) * x[i]
    })
}

fn dot_f16(row: &[u8], x: &[f32], _xq: &[BlockQ8]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let row = &row[..n * 2];
    let x = &x[..n];
    lanes8(n, |i| f16::from_le_bytes([row[2 * i], row[2 * i + 1]]).to_f32() * x[i])
}

fn dot_bf16(row: &[u8], x: &[f32], _xq: &[BlockQ8]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let row = &row[..n * 2];
    let x = &x[..n];
    lanes8(n, |i| bf16::from_le_bytes([row[2 * i], row[2 * i + 1]]).to_f32() * x[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_dots() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let row: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let xq = [];
        assert_eq!(dot_f32(&row, &x, &xq), 285.0);
        let row: Vec<u8> = x.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
        assert_eq!(dot_f16(&row, &x, &xq), 285.0);
        let row: Vec<u8> = x.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
        assert_eq!(dot_bf16(&row, &x, &xq), 285.0);
        assert_eq!(dot_f32(&row[..3], &x, &xq), 0.0);
    }
}
