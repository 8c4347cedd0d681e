//! Writer → parser round trips: every value type, nested arrays, v2 and v3, alignment,
//! typed getters, and tensors read back through [`GgufModel`].

use lantern_core::GgmlType;
use lantern_io::{Error, Gguf, GgufModel, GgufWriter, ModelSource, Value};

use crate::util::{every_value, put_u32, sample_bytes, sample_writer};

fn check_sample(gguf: &Gguf) {
    let md = gguf.metadata();
    assert_eq!(md.len(), every_value().len() + 1);
    for (key, value) in every_value() {
        assert_eq!(md.get(key), Some(&value), "{key}");
    }
    // File order is insertion order.
    let keys: Vec<&str> = md.iter().map(|(k, _)| k).collect();
    assert_eq!(keys[0], "general.architecture");
    assert_eq!(keys[1], "t.u8");
    assert_eq!(gguf.architecture().unwrap(), "llama");

    let names: Vec<&str> = gguf.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["norm.weight", "tiny", "blk.0.ffn_up.weight"]);
    let up = gguf.tensor_info("blk.0.ffn_up.weight").unwrap();
    assert_eq!((up.ty, up.dims.as_slice(), up.size), (GgmlType::Q4_0, &[32, 2][..], 36));
    assert!(gguf.tensor_info("nope").is_none());
}

#[test]
fn every_value_type_round_trips_v3() {
    let gguf = Gguf::parse(&sample_bytes()).unwrap();
    assert_eq!(gguf.version(), 3);
    check_sample(&gguf);
}

#[test]
fn version_2_reads_the_same() {
    // v2 and v3 share the little-endian layout; v3 only added big-endian files.
    let mut bytes = sample_bytes();
    put_u32(&mut bytes, 4, 2);
    let gguf = Gguf::parse(&bytes).unwrap();
    assert_eq!(gguf.version(), 2);
    check_sample(&gguf);
}

#[test]
fn rewriting_a_parsed_file_is_byte_identical() {
    let bytes = sample_bytes();
    let model = GgufModel::open(ModelSource::from_vec(bytes.clone())).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in model.metadata().iter() {
        w.metadata(k, v.clone());
    }
    for info in model.gguf().tensors() {
        let t = model.tensor(&info.name).unwrap();
        w.tensor(info.name.clone(), info.ty, &info.dims, t.bytes().to_vec()).unwrap();
    }
    assert_eq!(w.to_bytes().unwrap(), bytes);
}

#[test]
fn tensors_read_back_exactly() {
    let model = GgufModel::open(ModelSource::from_vec(sample_bytes())).unwrap();
    let norm = model.tensor("norm.weight").unwrap();
    assert_eq!(norm.dequantize().unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(model.tensor("tiny").unwrap().bytes(), [1, 2, 3, 4, 5, 6]);
    let up = model.tensor("blk.0.ffn_up.weight").unwrap();
    assert_eq!(up.bytes(), (0..36u8).collect::<Vec<_>>());
    assert_eq!(up.n_rows(), 2);
    assert_eq!(
        model.bytes_by_type(),
        vec![(GgmlType::F32, 1, 16), (GgmlType::F16, 1, 6), (GgmlType::Q4_0, 1, 36)]
    );
}

#[test]
fn alignment_is_honoured() {
    for alignment in [1u64, 2, 8, 32, 64, 4096] {
        let mut w = sample_writer();
        w.alignment(alignment);
        let bytes = w.to_bytes().unwrap();
        let gguf = Gguf::parse(&bytes).unwrap();
        assert_eq!(gguf.alignment(), alignment);
        assert_eq!(gguf.data_offset() % alignment, 0);
        assert_eq!(bytes.len() as u64 % alignment, 0);
        for t in gguf.tensors() {
            assert_eq!((t.offset - gguf.data_offset()) % alignment, 0, "{}", t.name);
        }
        let model = GgufModel::open(ModelSource::from_vec(bytes)).unwrap();
        assert_eq!(model.tensor("tiny").unwrap().bytes(), [1, 2, 3, 4, 5, 6]);
    }
    let gguf = Gguf::parse(&sample_bytes()).unwrap();
    assert_eq!(gguf.alignment(), 32, "default");
    assert!(gguf.metadata().get("general.alignment").is_none());
}

#[test]
fn writer_rejects_bad_alignment() {
    for bad in [0u64, 3, 48, 1 << 25, u64::MAX] {
        let mut w = sample_writer();
        w.alignment(bad);
        assert!(
            matches!(w.to_bytes(), Err(Error::BadAlignment { value }) if value == bad),
            "{bad}"
        );
    }
}

#[test]
fn typed_getters() {
    let gguf = Gguf::parse(&sample_bytes()).unwrap();
    let md = gguf.metadata();
    assert_eq!(md.u32("t.u8").unwrap(), 200);
    assert_eq!(md.u32("t.u16").unwrap(), 60_000);
    assert_eq!(md.u64("t.u64").unwrap(), u64::MAX);
    assert!(matches!(
        md.u32("t.u64"),
        Err(Error::OutOfRange { ref key, expected: "u32", .. }) if key == "t.u64"
    ));
    assert!(matches!(md.u64("t.i8"), Err(Error::OutOfRange { value: -100, .. })));
    assert_eq!(md.f32("t.f32").unwrap(), 1.5e-5);
    assert!(md.f32("t.f64").unwrap().is_infinite(), "f64 narrowed to f32");
    assert!(md.bool("t.bool").unwrap());
    assert_eq!(md.str("t.string").unwrap(), "héllo ✓");
    assert_eq!(md.strings("t.strings").unwrap(), ["<s>", "</s>", "▁the"]);
    assert_eq!(md.i32s("t.i32s").unwrap(), [1, -2, 3]);
    assert_eq!(md.f32s("t.f32s").unwrap(), [0.5, -1.0]);
    assert_eq!(md.strings("t.empty_array").unwrap(), Vec::<&str>::new());
    assert_eq!(md.opt_u32("t.u32").unwrap(), Some(4_000_000_000));
    assert_eq!(md.opt_u32("absent").unwrap(), None);
    assert_eq!(md.opt_f32("absent").unwrap(), None);
    assert_eq!(md.opt_bool("t.bool_false").unwrap(), Some(false));
    assert_eq!(md.opt_str("t.string").unwrap(), Some("héllo ✓"));
}

#[test]
fn wrong_type_getter_names_the_key() {
    let gguf = Gguf::parse(&sample_bytes()).unwrap();
    let md = gguf.metadata();
    let err = md.u32("t.string").unwrap_err();
    assert!(
        matches!(err, Error::WrongType { ref key, expected: "u32", found: "string" } if key == "t.string"),
        "{err}"
    );
    assert!(err.to_string().contains("t.string"));
    assert!(matches!(md.str("t.u8"), Err(Error::WrongType { found: "u8", .. })));
    assert!(matches!(md.bool("t.u8"), Err(Error::WrongType { expected: "bool", .. })));
    assert!(matches!(md.f32("t.i32"), Err(Error::WrongType { found: "i32", .. })));
    assert!(matches!(
        md.strings("t.i32s"),
        Err(Error::WrongType { expected: "array of string", found: "array of i32", .. })
    ));
    assert!(matches!(md.i32s("t.strings"), Err(Error::WrongType { found: "array of string", .. })));
    assert!(matches!(md.i32s("t.string"), Err(Error::WrongType { found: "string", .. })));
    assert!(matches!(md.opt_str("t.bool"), Err(Error::WrongType { found: "bool", .. })));
    assert!(matches!(md.opt_u32("t.f32"), Err(Error::WrongType { found: "f32", .. })));
}

#[test]
fn missing_key_names_the_key() {
    let gguf = Gguf::parse(&sample_bytes()).unwrap();
    let err = gguf.metadata().u32("llama.block_count").unwrap_err();
    assert!(matches!(err, Error::MissingKey { ref key } if key == "llama.block_count"), "{err}");
    assert!(err.to_string().contains("llama.block_count"));
    let empty = Gguf::parse(&GgufWriter::new().to_bytes().unwrap()).unwrap();
    assert!(matches!(empty.architecture(), Err(Error::MissingKey { .. })));
    assert!(empty.tensors().is_empty() && empty.metadata().is_empty());
}

#[test]
fn missing_tensor_and_writer_size_checks() {
    let model = GgufModel::open(ModelSource::from_vec(sample_bytes())).unwrap();
    let err = model.tensor("output.weight").unwrap_err();
    assert!(matches!(err, Error::MissingTensor { ref name } if name == "output.weight"), "{err}");

    let mut w = GgufWriter::new();
    let err = w.tensor("w", GgmlType::Q4_1, &[32, 2], vec![0; 39]).unwrap_err();
    assert!(matches!(err, Error::Tensor { ref name, .. } if name == "w"), "{err}");
    let err = w.tensor("r", GgmlType::Q8_0, &[33], vec![0; 34]).unwrap_err();
    assert!(matches!(err, Error::Tensor { ref name, .. } if name == "r"), "{err}");
    let err = w.tensor("d", GgmlType::F32, &[1, 1, 1, 1, 1], vec![0; 4]).unwrap_err();
    assert!(matches!(err, Error::TooManyDims { n_dims: 5, .. }), "{err}");
    let err = w.metadata("m", Value::Array(vec![Value::U8(1), Value::from("x")])).to_bytes();
    assert!(matches!(err, Err(Error::MixedArray { ref key, .. }) if key == "m"));
}

#[test]
fn metadata_replaces_in_place() {
    let mut w = GgufWriter::new();
    w.metadata("a", 1u32).metadata("b", 2u32).metadata("a", "one");
    let gguf = Gguf::parse(&w.to_bytes().unwrap()).unwrap();
    let pairs: Vec<_> = gguf.metadata().iter().map(|(k, v)| (k.to_owned(), v.clone())).collect();
    assert_eq!(pairs, [("a".to_owned(), Value::from("one")), ("b".to_owned(), Value::U32(2))]);
}

#[test]
fn generated_tensors_write_what_held_bytes_would() {
    let bytes: Vec<u8> =
        (0..GgmlType::Q8_0.tensor_bytes(&[64, 3]).unwrap()).map(|i| i as u8).collect();
    let mut held = GgufWriter::new();
    held.tensor("a", GgmlType::Q8_0, &[64, 3], bytes.clone()).unwrap();
    held.tensor_f32("b", &[2], &[1.0, 2.0]).unwrap();
    let mut generated = GgufWriter::new();
    let copy = bytes.clone();
    generated
        .tensor_generated("a", GgmlType::Q8_0, &[64, 3], move |out| out.copy_from_slice(&copy))
        .unwrap();
    generated.tensor_f32("b", &[2], &[1.0, 2.0]).unwrap();
    assert_eq!(generated.to_bytes().unwrap(), held.to_bytes().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.gguf");
    generated.write_file(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), held.to_bytes().unwrap());
    // A shape no type can hold is refused when the tensor is added, not when written.
    let err = generated.tensor_generated("c", GgmlType::Q8_0, &[33], |_| {}).unwrap_err();
    assert!(matches!(err, Error::Tensor { .. }), "{err}");
    let err = generated.tensor_generated("a", GgmlType::F32, &[1], |_| {}).unwrap_err();
    assert!(matches!(err, Error::Duplicate { .. }), "{err}");
}
