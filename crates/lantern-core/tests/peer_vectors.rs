//! lantern against the peer's own reference vectors: `tests/data/peer/<TYPE>.bin`, written by
//! `scripts/peer-vectors.sh` with llama.cpp's ggml libraries (16 blocks per type, drawn as
//! `scripts/peer-vectors.c` describes; all little-endian: `LPV1`, u32 type id, u32 block count
//! n, the n blocks, their n·block_size f32 values, the activation blocks of the type's
//! `vec_dot_type`, the f32 dot product). The files are committed; every file in the folder is
//! checked, so a new format gains these checks by adding its file.
//!
//! - **Dequantization**: [`dequantize_row`] gives the peer's `to_float` values bit for bit.
//! - **Kernels**: on every path this CPU runs, the matrix kernel, given the peer's own
//!   activation blocks, comes within `1e-5·A` of the peer's `vec_dot`, with
//!   A = Σ_i |w_i·x̂_i| (w the values above, x̂_i = d·q the activation as both sides see it).
//!   Both sides form the same exact integer sums per block or sub-block and differ only in
//!   how they group and round the float operations that combine them (lanes, FMAs,
//!   horizontal sums): a few dozen roundings along any chain, each at most 2^-24 of a partial
//!   sum, and with zero-mean activations every partial sum stays well below A. So the gap is
//!   under about 60·2^-24·A ≈ 3.6e-6·A. The bound is still tight enough to catch one wrong
//!   code: an average term is A/4096 here (4096 values for the K-quants, fewer for the
//!   32-value formats), and a code off by one moves the dot by a sizeable fraction of that,
//!   above 1e-5·A. Formats that interleave at load ([`interleaved`]) are checked so too,
//!   their blocks interleaved as one row.

use std::path::{Path, PathBuf};

use half::f16;
use lantern_core::kernels::{interleaved, matmul_fn_for, reads_q8k, Input, Isa};
use lantern_core::{dequantize_row, BlockQ8, BlockQ8K, GgmlType, QK8, QK_K};

use crate::common::isas;

/// The activation blocks of a file, converted to what lantern's kernels read.
enum Activation {
    /// From ggml's `block_q8_0` or `block_q8_1` (32 values).
    Q8(Vec<BlockQ8>),
    /// ggml's `block_q8_K` (256 values), the same numbers.
    Q8K(Vec<BlockQ8K>),
}

/// One reference file.
struct Vectors {
    ty: GgmlType,
    blocks: Vec<u8>,
    values: Vec<f32>,
    activation: Activation,
    dot: f32,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// ggml's `block_q8_0` (f16 d, 32 codes) or `block_q8_1` (f16 d, f16 s = d·Σq, 32 codes) as a
/// [`BlockQ8`]; for `block_q8_0`, `s` is d·Σq rounded through f16, as `block_q8_1` holds it.
fn q8_block(raw: &[u8], with_s: bool) -> BlockQ8 {
    let codes = &raw[if with_s { 4 } else { 2 }..];
    let qs: [i8; QK8] = std::array::from_fn(|j| codes[j] as i8);
    let sum = qs.iter().map(|&q| i32::from(q)).sum();
    let d = f16_at(raw, 0);
    let s = if with_s { f16_at(raw, 2) } else { f16::from_f32(d * sum as f32).to_f32() };
    BlockQ8 { d, s, sum, qs }
}

/// ggml's `block_q8_K`: f32 d, 256 codes, sixteen i16 sums.
fn q8k_block(raw: &[u8]) -> BlockQ8K {
    BlockQ8K {
        d: f32::from_le_bytes(raw[..4].try_into().unwrap()),
        qs: std::array::from_fn(|j| raw[4 + j] as i8),
        bsums: std::array::from_fn(|j| i16::from_le_bytes([raw[260 + 2 * j], raw[261 + 2 * j]])),
    }
}

fn parse(path: &Path) -> Vectors {
    let bytes = std::fs::read(path).unwrap();
    let name = path.display();
    assert_eq!(&bytes[..4], b"LPV1", "{name}: magic");
    let ty = GgmlType::from_id(u32_at(&bytes, 4)).unwrap();
    let n = u32_at(&bytes, 8) as usize;
    let values_len = n * ty.block_size();
    let blocks_end = 12 + n * ty.type_size();
    let values_end = blocks_end + 4 * values_len;
    assert!(bytes.len() >= values_end + 4, "{name}: truncated");
    let values = bytes[blocks_end..values_end]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()));
    let raw = &bytes[values_end..bytes.len() - 4];
    // The activation's type, from its size: 34 (Q8_0) or 36 (Q8_1) bytes per 32 values, 292
    // (Q8_K) per 256.
    let activation = match raw.len() {
        len if len == values_len / QK8 * 34 => {
            Activation::Q8(raw.chunks_exact(34).map(|b| q8_block(b, false)).collect())
        }
        len if len == values_len / QK8 * 36 => {
            Activation::Q8(raw.chunks_exact(36).map(|b| q8_block(b, true)).collect())
        }
        len if values_len.is_multiple_of(QK_K) && len == values_len / QK_K * 292 => {
            Activation::Q8K(raw.chunks_exact(292).map(q8k_block).collect())
        }
        len => panic!("{name}: {len} bytes of activation blocks for {values_len} values"),
    };
    Vectors {
        ty,
        blocks: bytes[12..blocks_end].to_vec(),
        values: values.collect(),
        activation,
        dot: f32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()),
    }
}

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peer");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_format_has_its_file() {
    let names: Vec<String> =
        files().iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    for ty in ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q8_0", "IQ4_NL", "IQ4_XS"] {
        assert!(names.iter().any(|n| n == ty), "no reference vectors for {ty}: {names:?}");
    }
    for (name, path) in names.iter().zip(files()) {
        assert_eq!(format!("{:?}", parse(&path).ty), *name, "{}", path.display());
    }
}

#[test]
fn dequantization_gives_the_peers_bits() {
    for path in files() {
        let v = parse(&path);
        let mut out = vec![f32::NAN; v.values.len()];
        dequantize_row(v.ty, &v.blocks, &mut out).unwrap();
        for (i, (&ours, &peer)) in out.iter().zip(&v.values).enumerate() {
            assert_eq!(ours.to_bits(), peer.to_bits(), "{:?} value {i}: {ours} vs {peer}", v.ty);
        }
    }
}

impl Vectors {
    /// The activation as the kernels see it (d·q per value) and its blocks in the form the
    /// type reads.
    fn input_parts(&self) -> (Vec<f32>, &[BlockQ8], &[BlockQ8K]) {
        match &self.activation {
            Activation::Q8(b) => {
                (b.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect(), b, &[])
            }
            Activation::Q8K(b) => {
                (b.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect(), &[], b)
            }
        }
    }

    /// The kernel's dot product on each path this CPU runs.
    fn dots(&self, paths: &[Isa]) -> Vec<(Isa, f32)> {
        let (x, q8, q8k) = self.input_parts();
        assert_eq!(reads_q8k(self.ty), !q8k.is_empty(), "{:?}: activation form", self.ty);
        let input = Input::new(&x, q8, 1).with_q8k(q8k);
        let ty = self.ty;
        let dot = |isa: Isa| {
            let matmul =
                matmul_fn_for(ty, isa).unwrap_or_else(|| panic!("{ty:?}: no {isa} kernel"));
            let mut out = [f32::NAN];
            matmul(&self.blocks, self.blocks.len(), input, &mut out);
            (isa, out[0])
        };
        paths.iter().map(|&isa| dot(isa)).collect()
    }

    /// The interleaved kernel's dot product on each path this CPU runs that has one for the
    /// type, the blocks taken as one row.
    fn interleaved_dots(&self, paths: &[Isa]) -> Vec<(Isa, f32)> {
        let (x, q8, q8k) = self.input_parts();
        let input = Input::new(&x, q8, 1).with_q8k(q8k);
        let (ty, row_bytes) = (self.ty, self.blocks.len());
        let mut groups = vec![0; interleaved::group_bytes(ty, row_bytes)];
        if !interleaved::interleave(ty, &self.blocks, row_bytes, &mut groups) {
            return Vec::new();
        }
        let dot = |isa: Isa| {
            let matmul = interleaved::interleaved_fn_for(ty, isa)?;
            let mut out = [f32::NAN];
            matmul(&groups, row_bytes, input, &mut out);
            Some((isa, out[0]))
        };
        paths.iter().filter_map(|&isa| dot(isa)).collect()
    }
}

#[test]
fn kernels_come_within_tolerance_of_the_peers_dot() {
    let paths = isas();
    for path in files() {
        let v = parse(&path);
        let (x, ..) = v.input_parts();
        let a: f64 =
            v.values.iter().zip(&x).map(|(&w, &x)| (f64::from(w) * f64::from(x)).abs()).sum();
        let tol = 1e-5 * a;
        for (isa, y) in v.dots(&paths).into_iter().chain(v.interleaved_dots(&paths)) {
            let gap = (f64::from(y) - f64::from(v.dot)).abs();
            let ty = v.ty;
            assert!(
                gap <= tol,
                "{ty:?} {isa}: {y} vs the peer's {} (gap {gap:e}, tol {tol:e})",
                v.dot
            );
        }
    }
}

/// Q2_K keeps the float order of ggml's x86 kernel on every path, and the peer's x86 kernel
/// for it has no AVX-512 variant: with vectors from an x86-64 build of the peer, as the
/// committed ones are, every path gives the peer's dot bit for bit. (A peer built for aarch64
/// sums in another order; vectors from it would fail here and pass the tolerance. Q3_K rounds
/// once per super-block instead, as its interleaved rows do, and meets the tolerance only.)
#[test]
fn q2_k_gives_the_peers_bits() {
    let paths = isas();
    for path in files() {
        let v = parse(&path);
        if v.ty != GgmlType::Q2_K {
            continue;
        }
        for (isa, y) in v.dots(&paths) {
            assert_eq!(
                y.to_bits(),
                v.dot.to_bits(),
                "{:?} {isa}: {y} vs the peer's {}",
                v.ty,
                v.dot
            );
        }
    }
}
