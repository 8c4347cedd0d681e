//! Malformed files: each must fail with a specific error variant, never panic, never
//! allocate from an unchecked length.

use lantern_io::{Error, Gguf, GgufWriter};

use crate::util::{after_string, put_u32, put_u64, sample_bytes, sample_writer, tensor_fields};

/// Offsets of the header fields.
const VERSION: usize = 4;
const N_TENSORS: usize = 8;
const N_KV: usize = 16;

fn parse_err(bytes: &[u8]) -> Error {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("malformed file parsed"),
        Err(e) => e,
    }
}

#[test]
fn empty_file() {
    let err = parse_err(&[]);
    assert!(matches!(err, Error::Truncated { what: "magic", offset: 0, file_len: 0, .. }), "{err}");
}

#[test]
fn bad_magic() {
    let mut bytes = sample_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    let err = parse_err(&bytes);
    assert!(matches!(err, Error::BadMagic { found } if &found == b"GGML"));
    assert_eq!(err.to_string(), r#"not a GGUF file: it starts with "GGML", not "GGUF""#);
    bytes[..4].copy_from_slice(&[0x7f, b'E', b'L', b'F']);
    assert!(parse_err(&bytes).to_string().contains(r#""\x7fELF""#));
}

#[test]
fn unsupported_versions() {
    for version in [0u32, 1, 4, 99, 0x0300_0000 /* big-endian v3 */] {
        let mut bytes = sample_bytes();
        put_u32(&mut bytes, VERSION, version);
        let err = parse_err(&bytes);
        assert!(matches!(err, Error::UnsupportedVersion { version: v } if v == version), "{err}");
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_bytes();
    let gguf = Gguf::parse(&bytes).unwrap();
    let last = gguf.tensors().last().unwrap();
    let data_end = last.offset as usize + last.size;
    for len in 0..data_end {
        match Gguf::parse(&bytes[..len]) {
            Err(Error::Truncated { .. }) if len < gguf.data_offset() as usize => {}
            Err(Error::TensorOutOfBounds { .. }) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
    // Only the padding after the last tensor may be cut.
    for len in data_end..=bytes.len() {
        Gguf::parse(&bytes[..len]).unwrap();
    }
}

#[test]
fn flipped_header_bytes_never_panic() {
    let bytes = sample_bytes();
    let header_len = Gguf::parse(&bytes).unwrap().data_offset() as usize;
    for at in 0..header_len {
        for flip in [0xff, 0x80, 0x01] {
            let mut b = bytes.clone();
            b[at] ^= flip;
            let _ = Gguf::parse(&b);
        }
        let mut b = bytes.clone();
        b[at] = 0xff;
        let _ = Gguf::parse(&b);
    }
}

#[test]
fn huge_counts_are_capped() {
    let cases: [(usize, &str); 2] = [(N_TENSORS, "tensor count"), (N_KV, "metadata key count")];
    for (at, what) in cases {
        let mut bytes = sample_bytes();
        put_u64(&mut bytes, at, u64::MAX);
        let err = parse_err(&bytes);
        assert!(
            matches!(err, Error::TooLarge { what: w, value: u64::MAX, .. } if w == what),
            "{err}"
        );
    }
    // Under the cap but more than the file could hold.
    let mut bytes = sample_bytes();
    put_u64(&mut bytes, N_KV, 1 << 20);
    assert!(matches!(parse_err(&bytes), Error::Truncated { what: "metadata key count", .. }));
}

#[test]
fn huge_string_and_array_lengths_are_capped() {
    let bytes = sample_bytes();
    // The first key's length prefix follows the header.
    let mut b = bytes.clone();
    put_u64(&mut b, 24, u64::MAX);
    let err = parse_err(&b);
    assert!(matches!(err, Error::StringTooLong { what: "metadata key", .. }), "{err}");
    assert!(err.to_string().starts_with("metadata key is 18446744073709551615 bytes long"));
    let mut b = bytes.clone();
    put_u64(&mut b, 24, 1 << 25);
    assert!(
        matches!(parse_err(&b), Error::Truncated { what: "metadata key", needed, .. } if needed == 1 << 25)
    );

    // t.strings: type (4), element type (4), then the u64 count.
    let count_at = after_string(&bytes, "t.strings") + 8;
    let mut b = bytes.clone();
    put_u64(&mut b, count_at, u64::MAX);
    assert!(matches!(parse_err(&b), Error::TooLarge { what: "array length", .. }));
    let mut b = bytes.clone();
    put_u64(&mut b, count_at, 1 << 24);
    assert!(matches!(parse_err(&b), Error::Truncated { what: "array length", .. }));
    // The first string inside it.
    let mut b = bytes;
    put_u64(&mut b, count_at + 8, u64::MAX - 1);
    assert!(matches!(parse_err(&b), Error::StringTooLong { what: "metadata string", .. }));
}

#[test]
fn unknown_value_type_names_the_key() {
    let mut bytes = sample_bytes();
    let at = after_string(&bytes, "t.i16");
    put_u32(&mut bytes, at, 13);
    let err = parse_err(&bytes);
    assert!(matches!(err, Error::UnknownValueType { ref key, id: 13 } if key == "t.i16"), "{err}");

    // An unknown element type inside an array.
    let mut bytes = sample_bytes();
    let at = after_string(&bytes, "t.i32s") + 4;
    put_u32(&mut bytes, at, 1000);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::UnknownValueType { ref key, id: 1000 } if key == "t.i32s"),
        "{err}"
    );
}

#[test]
fn bool_must_be_zero_or_one() {
    let mut bytes = sample_bytes();
    let at = after_string(&bytes, "t.bool") + 4;
    bytes[at] = 2;
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::InvalidBool { ref key, value: 2, offset } if key == "t.bool" && offset == at as u64)
    );
}

#[test]
fn invalid_utf8_reports_the_offset() {
    let mut bytes = sample_bytes();
    let end = after_string(&bytes, "t.string");
    bytes[end - 1] = 0xff;
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::InvalidUtf8 { what: "metadata key", offset } if offset == (end - 8) as u64),
        "{err}"
    );
}

#[test]
fn unknown_tensor_type_names_the_tensor() {
    let mut bytes = sample_bytes();
    let (_, _, ty, _) = tensor_fields(&bytes, "tiny", 1);
    put_u32(&mut bytes, ty, 4); // retired Q4_2
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::UnknownTensorType { ref tensor, id: 4 } if tensor == "tiny"),
        "{err}"
    );
    assert!(err.to_string().contains("tiny"));
}

/// lantern's own types are known to lantern, but a GGUF file holding one is malformed: ggml
/// cannot read it, so the parser treats its id as unknown.
#[test]
fn lantern_only_tensor_type_is_unknown_in_gguf() {
    let mut bytes = sample_bytes();
    let (_, _, ty, _) = tensor_fields(&bytes, "tiny", 1);
    put_u32(&mut bytes, ty, lantern_core::GgmlType::Q3_0.id());
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::UnknownTensorType { ref tensor, id: 1024 } if tensor == "tiny"),
        "{err}"
    );
}

#[test]
fn tensor_past_end_of_file_names_the_tensor() {
    for rel in [1 << 20, u64::MAX - 31] {
        let mut bytes = sample_bytes();
        let (_, _, _, offset) = tensor_fields(&bytes, "tiny", 1);
        put_u64(&mut bytes, offset, rel);
        let err = parse_err(&bytes);
        assert!(
            matches!(err, Error::TensorOutOfBounds { ref tensor, .. } if tensor == "tiny"),
            "{err}"
        );
        assert!(err.to_string().contains("tiny"));
    }
    // A huge dimension: the range check, not an allocation, catches it.
    let mut bytes = sample_bytes();
    let (_, dim, _, _) = tensor_fields(&bytes, "norm.weight", 1);
    put_u64(&mut bytes, dim, 1 << 40);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::TensorOutOfBounds { ref tensor, .. } if tensor == "norm.weight"),
        "{err}"
    );
    // So large the size overflows.
    put_u64(&mut bytes, dim, u64::MAX / 2);
    let err = parse_err(&bytes);
    assert!(matches!(err, Error::Tensor { ref name, .. } if name == "norm.weight"), "{err}");
}

#[test]
fn overlapping_tensors_are_refused() {
    // norm.weight holds bytes 0..16 of the data, tiny 32..38, the Q4_0 matrix 64..100.
    let mut bytes = sample_bytes();
    let (_, _, _, offset) = tensor_fields(&bytes, "tiny", 1);
    put_u64(&mut bytes, offset, 0);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::OverlappingTensors { ref first, ref second, .. }
            if first == "norm.weight" && second == "tiny"),
        "{err}"
    );
    // A shape (or a type) claiming more bytes than the tensor's region holds runs into the
    // next tensor's: 17 f16 values at 32 end at 66.
    let mut bytes = sample_bytes();
    let (_, dim, _, _) = tensor_fields(&bytes, "tiny", 1);
    put_u64(&mut bytes, dim, 17);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::OverlappingTensors { ref first, first_end, ref second, .. }
            if first == "tiny" && second == "blk.0.ffn_up.weight" && first_end % 32 == 2),
        "{err}"
    );
    // Up to the next one is fine.
    put_u64(&mut bytes, dim, 16);
    Gguf::parse(&bytes).unwrap();
}

#[test]
fn names_in_errors_are_cut_short() {
    let key = "\u{1}x".repeat(300);
    let err = Error::MissingKey { key: key.clone() };
    let shown = err.to_string();
    assert!(shown.len() < 300 && shown.contains("(600 bytes)"), "{shown}");
    assert!(Error::MissingKey { key: "a.b".into() }.to_string().contains(r#""a.b""#));
}

#[test]
fn misaligned_tensor_offset() {
    let mut bytes = sample_bytes();
    let (_, _, _, offset) = tensor_fields(&bytes, "tiny", 1);
    put_u64(&mut bytes, offset, 33);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::MisalignedTensor { ref tensor, offset: 33, alignment: 32 } if tensor == "tiny"),
        "{err}"
    );
}

#[test]
fn too_many_dims_and_ragged_rows() {
    let mut bytes = sample_bytes();
    let (n_dims, _, _, _) = tensor_fields(&bytes, "tiny", 1);
    put_u32(&mut bytes, n_dims, 5);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::TooManyDims { ref tensor, n_dims: 5, max: 4 } if tensor == "tiny"),
        "{err}"
    );

    let mut bytes = sample_bytes();
    let (_, dim, _, _) = tensor_fields(&bytes, "blk.0.ffn_up.weight", 2);
    put_u64(&mut bytes, dim, 33);
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::Tensor { ref name, .. } if name == "blk.0.ffn_up.weight"),
        "{err}"
    );
}

#[test]
fn bad_alignment_values() {
    let mut w = sample_writer();
    w.alignment(64);
    let good = w.to_bytes().unwrap();
    let at = after_string(&good, "general.alignment") + 4;
    for bad in [0u32, 3, 48, 1 << 25] {
        let mut bytes = good.clone();
        put_u32(&mut bytes, at, bad);
        let err = parse_err(&bytes);
        assert!(matches!(err, Error::BadAlignment { value } if value == u64::from(bad)), "{err}");
    }
    // Stored as a string: the writer refuses, and the parser's getter names the key.
    let mut w = GgufWriter::new();
    w.metadata("general.alignment", "32");
    assert!(matches!(w.to_bytes(), Err(Error::WrongType { .. })));
    // So build the file with a stand-in key and rename it.
    let mut w = GgufWriter::new();
    w.metadata("general.alignmenX", "32");
    let mut bytes = w.to_bytes().unwrap();
    let at = after_string(&bytes, "general.alignmenX") - 1;
    bytes[at] = b't';
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::WrongType { ref key, found: "string", .. } if key == "general.alignment"),
        "{err}"
    );
}

#[test]
fn duplicates_are_rejected() {
    let mut w = GgufWriter::new();
    w.metadata("dup.a", 1u8).metadata("dup.b", 2u8);
    let mut bytes = w.to_bytes().unwrap();
    let at = after_string(&bytes, "dup.b") - 1;
    bytes[at] = b'a';
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::Duplicate { what: "metadata key", ref name } if name == "dup.a"),
        "{err}"
    );

    let mut w = GgufWriter::new();
    w.tensor_f32("w.a", &[1], &[1.0]).unwrap();
    w.tensor_f32("w.b", &[1], &[2.0]).unwrap();
    let mut bytes = w.to_bytes().unwrap();
    let at = after_string(&bytes, "w.b") - 1;
    bytes[at] = b'a';
    let err = parse_err(&bytes);
    assert!(
        matches!(err, Error::Duplicate { what: "tensor name", ref name } if name == "w.a"),
        "{err}"
    );
}

#[test]
fn deeply_nested_arrays_are_capped() {
    let mut v = lantern_io::Value::from(vec![1u8]);
    for _ in 0..8 {
        v = lantern_io::Value::Array(vec![v]);
    }
    let mut w = GgufWriter::new();
    w.metadata("deep", v);
    assert!(matches!(w.to_bytes(), Err(Error::TooLarge { what: "array nesting depth", .. })));
}
