//! Fixture builders and byte-patching helpers shared by the tests.

use lantern_core::GgmlType;
use lantern_io::{GgufWriter, Value};

/// One metadata value of every GGUF type, keyed by type name, plus nested arrays.
pub(crate) fn every_value() -> Vec<(&'static str, Value)> {
    vec![
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60_000)),
        ("t.i16", Value::I16(-30_000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.u64", Value::U64(u64::MAX)),
        ("t.i64", Value::I64(i64::MIN)),
        ("t.f32", Value::F32(1.5e-5)),
        ("t.f64", Value::F64(-2.25e300)),
        ("t.bool", Value::Bool(true)),
        ("t.bool_false", Value::Bool(false)),
        ("t.string", Value::from("héllo ✓")),
        ("t.empty_string", Value::from("")),
        ("t.strings", Value::from(vec!["<s>", "</s>", "▁the"])),
        ("t.i32s", Value::from(vec![1i32, -2, 3])),
        ("t.f32s", Value::from(vec![0.5f32, -1.0])),
        ("t.bools", Value::from(vec![true, false])),
        ("t.u64s", Value::from(vec![1u64, u64::MAX])),
        ("t.empty_array", Value::Array(vec![])),
        (
            "t.nested",
            Value::Array(vec![
                Value::from(vec![1u8, 2]),
                Value::from(vec!["a", "b", "c"]),
                Value::Array(vec![Value::from(vec![0.25f64])]),
                Value::Array(vec![]),
            ]),
        ),
    ]
}

/// A small model: the keys of [`every_value`], an architecture, and three tensors of
/// different types. The last tensor is non-empty, so cutting the file anywhere before
/// its end is an error.
pub(crate) fn sample_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    for (k, v) in every_value() {
        w.metadata(k, v);
    }
    w.tensor_f32("norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    w.tensor("tiny", GgmlType::F16, &[3], vec![1, 2, 3, 4, 5, 6]).unwrap();
    let q: Vec<u8> = (0..36u8).collect();
    w.tensor("blk.0.ffn_up.weight", GgmlType::Q4_0, &[32, 2], q).unwrap();
    w
}

pub(crate) fn sample_bytes() -> Vec<u8> {
    sample_writer().to_bytes().unwrap()
}

/// Offset of the first occurrence of `needle` in `haystack`.
pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in fixture", String::from_utf8_lossy(needle)))
}

/// Offset just past the length-prefixed string `s` (a key or tensor name).
pub(crate) fn after_string(bytes: &[u8], s: &str) -> usize {
    let mut prefixed = (s.len() as u64).to_le_bytes().to_vec();
    prefixed.extend_from_slice(s.as_bytes());
    find(bytes, &prefixed) + prefixed.len()
}

pub(crate) fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offsets of a tensor info's fields: (n_dims, first dim, type, offset), for `n_dims` dims.
pub(crate) fn tensor_fields(
    bytes: &[u8],
    name: &str,
    n_dims: usize,
) -> (usize, usize, usize, usize) {
    let n = after_string(bytes, name);
    let ty = n + 4 + 8 * n_dims;
    (n, n + 4, ty, ty + 4)
}
