//! The `.lantern` container: GGUF → container → the same tensors and metadata, and clear
//! errors for every kind of damage docs/format.md lists.

use lantern_core::GgmlType;
use lantern_io::container::{
    write_container, write_container_into, write_container_with, Codec, ContainerModel, Transform,
    WriteOptions, CHUNK_BYTES, MAGIC,
};
use lantern_io::{AtomicFile, Error, GgufModel, GgufWriter, ModelSource, Value};

use crate::util::every_value;

/// A small model: a norm outside the blocks, blocks 1 and 0 out of order, one tensor that
/// compresses (zeros), one that does not (xorshift noise) and one of several chunks.
fn model() -> GgufModel {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    for (key, value) in every_value() {
        w.metadata(key, value);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..34 * 64)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    w.tensor("blk.1.attn_q.weight", GgmlType::Q8_0, &[64, 32], noise).unwrap();
    w.tensor_f32("output_norm.weight", &[4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    w.tensor("blk.0.ffn_up.weight", GgmlType::Q8_0, &[64, 32], vec![0; 34 * 64]).unwrap();
    let big: Vec<f32> = (0..CHUNK_BYTES / 2).map(|i| (i % 1000) as f32).collect();
    w.tensor_f32("blk.0.big.weight", &[big.len()], &big).unwrap();
    GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap()
}

/// `model()` written as a container file, and its bytes.
fn container_bytes() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lantern");
    write_container(&model(), &path, |_, _| {}).unwrap();
    std::fs::read(&path).unwrap()
}

fn open(bytes: Vec<u8>) -> Result<ContainerModel, Error> {
    ContainerModel::open(ModelSource::from_vec(bytes))
}

#[test]
fn a_container_holds_the_gguf_tensors_and_metadata() {
    let gguf = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lantern");
    let mut calls = Vec::new();
    let stats = write_container(&gguf, &path, |done, total| calls.push((done, total))).unwrap();
    let container = ContainerModel::open(ModelSource::read(&path).unwrap()).unwrap();

    for info in gguf.gguf().tensors() {
        let (a, b) = (gguf.tensor(&info.name).unwrap(), container.tensor(&info.name).unwrap());
        assert_eq!((a.ty(), a.dims(), a.bytes()), (b.ty(), b.dims(), b.bytes()), "{}", info.name);
    }
    for (key, value) in gguf.metadata().iter() {
        assert_eq!(container.metadata().get(key), Some(value), "{key}");
    }
    // The order of use: outside the blocks, then block 0, then block 1.
    let c = container.container();
    let order: Vec<&str> = c.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        order,
        ["output_norm.weight", "blk.0.ffn_up.weight", "blk.0.big.weight", "blk.1.attn_q.weight"]
    );
    assert_eq!(c.tensor("blk.1.attn_q.weight").unwrap().layer, Some(1));
    assert_eq!(c.tensor("output_norm.weight").unwrap().layer, None);
    // Zeros compress, the pattern does not, and the big tensor takes two chunks.
    let stored = |name: &str| -> u64 {
        let t = c.tensor(name).unwrap();
        c.chunks()[t.chunks.clone()].iter().map(|c| c.stored_bytes).sum()
    };
    assert!(stored("blk.0.ffn_up.weight") < 100);
    assert_eq!(stored("blk.1.attn_q.weight"), 34 * 64);
    assert_eq!(c.tensor("blk.0.big.weight").unwrap().chunks.len(), 2);
    assert!(c.chunks().iter().all(|chunk| chunk.offset % c.alignment() == 0));
    // Progress reaches the total once per tensor; the stats count every raw byte.
    let total: u64 = gguf.gguf().tensors().iter().map(|t| t.size as u64).sum();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls.last(), Some(&(total, total)));
    assert_eq!(stats.by_type.iter().map(|(_, raw, ..)| raw).sum::<u64>(), total);
    assert_eq!(stats.file_bytes, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn replacements_take_their_tensors_place_in_any_type() {
    let gguf = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lantern");
    let q = gguf.tensor("blk.1.attn_q.weight").unwrap().requantize(GgmlType::Q4_0).unwrap();
    let options = WriteOptions {
        replacements: vec![("blk.1.attn_q.weight".to_owned(), q.clone())],
        ..WriteOptions::default()
    };
    let stats = write_container_with(&gguf, &path, options, |_, _| {}).unwrap();
    let container = ContainerModel::open(ModelSource::read(&path).unwrap()).unwrap();
    let read = container.tensor("blk.1.attn_q.weight").unwrap();
    assert_eq!((read.ty(), read.dims(), read.bytes()), (q.ty(), q.dims(), q.bytes()));
    assert!(stats.by_type.iter().any(|&(ty, raw, ..)| ty == GgmlType::Q4_0 && raw == 18 * 2 * 32));
    let untouched = container.tensor("blk.0.ffn_up.weight").unwrap();
    assert_eq!(untouched.bytes(), gguf.tensor("blk.0.ffn_up.weight").unwrap().bytes());

    // A replacement must match a tensor by name, with as many dimensions, none larger.
    let fails = |name: &str, tensor: &lantern_core::QTensor| {
        let replacements = vec![(name.to_owned(), tensor.clone())];
        let options = WriteOptions { replacements, ..WriteOptions::default() };
        write_container_with(&gguf, dir.path().join("bad.lantern"), options, |_, _| {})
            .unwrap_err()
            .to_string()
    };
    assert!(fails("blk.9.attn_q.weight", &q).contains("no tensor of that name"));
    let wrong = gguf.tensor("output_norm.weight").unwrap();
    assert!(fails("blk.1.attn_q.weight", &wrong).contains("dimensions [4], not at most [64, 32]"));
    let wider = lantern_core::QTensor::new(
        GgmlType::F32,
        &[64, 33],
        lantern_core::TensorBytes::from_vec(vec![0; 64 * 33 * 4]),
    )
    .unwrap();
    assert!(fails("blk.1.attn_q.weight", &wider).contains("not at most [64, 32]"));
    // A smaller one (a pruned matrix) is written with its own dims.
    let rows = lantern_core::QTensor::new(
        GgmlType::F32,
        &[64, 16],
        lantern_core::TensorBytes::from_vec(vec![0; 64 * 16 * 4]),
    )
    .unwrap();
    let options = WriteOptions {
        replacements: vec![("blk.1.attn_q.weight".to_owned(), rows)],
        ..WriteOptions::default()
    };
    write_container_with(&gguf, &path, options, |_, _| {}).unwrap();
    let container = ContainerModel::open(ModelSource::read(&path).unwrap()).unwrap();
    assert_eq!(container.tensor("blk.1.attn_q.weight").unwrap().dims(), [64, 16]);
    assert!(!dir.path().join("bad.lantern").exists());
}

#[test]
fn byte_planes_where_they_pay_and_raw_chunks_on_request_read_the_same_tensors() {
    let gguf = model();
    let dir = tempfile::tempdir().unwrap();
    let (packed, raw) = (dir.path().join("packed.lantern"), dir.path().join("raw.lantern"));
    let stats = write_container(&gguf, &packed, |_, _| {}).unwrap();
    let metadata = vec![
        ("lantern.test".to_owned(), Value::U32(7)),
        ("general.architecture".to_owned(), Value::from("llama2")),
    ];
    let options = WriteOptions { compress: false, metadata, ..WriteOptions::default() };
    write_container_with(&gguf, &raw, options, |_, _| {}).unwrap();
    let packed = ContainerModel::open(ModelSource::read(&packed).unwrap()).unwrap();
    let raw = ContainerModel::open(ModelSource::read(&raw).unwrap()).unwrap();
    for info in gguf.gguf().tensors() {
        let expected = gguf.tensor(&info.name).unwrap();
        for c in [&packed, &raw] {
            assert_eq!(c.tensor(&info.name).unwrap().bytes(), expected.bytes(), "{}", info.name);
        }
    }
    // The f32 ramp's exponent bytes repeat: planes shrink it, and noise stays as it is.
    let transform = |c: &ContainerModel, name: &str| c.container().tensor(name).unwrap().transform;
    assert_eq!(transform(&packed, "blk.0.big.weight"), Transform::Planes);
    assert_eq!(transform(&packed, "blk.1.attn_q.weight"), Transform::None);
    assert!(stats.by_type.iter().any(|&(ty, .., planes)| ty == GgmlType::F32 && planes >= 1));
    let index = raw.container();
    assert!(index.tensors().iter().all(|t| t.transform == Transform::None));
    // Added pairs come after the file's, replacing a key they share.
    assert_eq!(raw.metadata().u32("lantern.test").unwrap(), 7);
    assert_eq!(raw.metadata().str("general.architecture").unwrap(), "llama2");
    assert_eq!(raw.metadata().len(), gguf.metadata().len() + 1);
    // Raw chunks of whole pages lie back to back: the two-chunk tensor is a view of the file.
    let big = raw.tensor("blk.0.big.weight").unwrap();
    let first = index.chunks()[index.tensor("blk.0.big.weight").unwrap().chunks.start];
    assert_eq!(big.bytes().as_ptr(), raw.source().bytes()[first.offset as usize..].as_ptr());
    assert!(index.chunks().iter().all(|c| c.codec == Codec::Raw && c.stored_bytes == c.raw_bytes));
}

#[test]
fn a_chunk_of_zeros_compresses_as_far_as_lz4_can_and_still_reads() {
    // 1 MiB of zeros is LZ4's best case, about 255:1: within what the reader accepts.
    let mut w = GgufWriter::new();
    w.tensor_f32("zeros", &[CHUNK_BYTES / 4], &vec![0.0; CHUNK_BYTES / 4]).unwrap();
    let gguf = GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.lantern");
    write_container(&gguf, &path, |_, _| {}).unwrap();
    let c = open(std::fs::read(&path).unwrap()).unwrap();
    let chunk = c.container().chunks()[0];
    assert!(chunk.stored_bytes * 200 < chunk.raw_bytes, "{chunk:?}");
    assert!(c.tensor("zeros").unwrap().bytes().iter().all(|&b| b == 0));
}

#[test]
fn a_flipped_byte_in_a_chunk_names_the_tensor() {
    let bytes = container_bytes();
    let c = open(bytes.clone()).unwrap();
    let t = c.container().tensor("blk.1.attn_q.weight").unwrap();
    let chunk = c.container().chunks()[t.chunks.start];
    let mut bad = bytes;
    bad[chunk.offset as usize + 100] ^= 0x20;
    let c = open(bad).unwrap();
    let err = c.tensor("blk.1.attn_q.weight").unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("blk.1.attn_q.weight"), "{err}");
    // The other tensors still read.
    c.tensor("output_norm.weight").unwrap();
}

#[test]
fn damaged_headers_and_sections_are_clear_errors() {
    let bytes = container_bytes();
    let mut magic = bytes.clone();
    magic[0] = b'G';
    assert!(matches!(open(magic), Err(Error::NotContainer { .. })));

    let mut version = bytes.clone();
    version[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = open(version).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedContainerVersion { version: 2, supported: 1 }),
        "{err}"
    );

    let mut header = bytes.clone();
    header[13] ^= 1; // the alignment, under the header checksum
    assert!(matches!(open(header), Err(Error::Checksum { .. })));

    for len in [0, 7, 40, 64, bytes.len() / 2, bytes.len() - 1] {
        let err = open(bytes[..len].to_vec()).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. } | Error::Corrupt { .. }), "{len}: {err}");
    }

    let meta_offset = u64_at(&bytes, 16) as usize;
    let mut metadata = bytes.clone();
    metadata[meta_offset + 12] ^= 1;
    let err = open(metadata).unwrap_err();
    assert!(matches!(&err, Error::Checksum { what, .. } if what == "metadata"), "{err}");
}

#[test]
fn an_index_that_points_past_its_data_is_rejected() {
    let bytes = container_bytes();
    let index_offset = u64_at(&bytes, 32) as usize;
    let c = open(bytes.clone()).unwrap();
    let last = *c.container().chunks().last().unwrap();
    // Find the last chunk's record by its offset, move it past the end, fix the checksum.
    let record = bytes[index_offset..]
        .windows(24)
        .rposition(|w| {
            u64_at(w, 0) == last.offset
                && u64_at(w, 8) == last.stored_bytes
                && u64_at(w, 16) == last.raw_bytes
        })
        .unwrap()
        + index_offset;
    let mut bad = bytes.clone();
    bad[record..record + 8].copy_from_slice(&(bytes.len() as u64 * 2).to_le_bytes());
    let body_end = bad.len() - 4;
    let crc = crc32(&bad[index_offset..body_end]);
    bad[body_end..].copy_from_slice(&crc.to_le_bytes());
    let err = open(bad).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { what, .. } if what.starts_with("chunk")), "{err}");
}

#[test]
fn a_gguf_file_is_not_a_container() {
    let mut w = GgufWriter::new();
    w.tensor_f32("x", &[2], &[1.0, 2.0]).unwrap();
    let err = open(w.to_bytes().unwrap()).unwrap_err();
    assert!(matches!(err, Error::NotContainer { .. } | Error::Truncated { .. }), "{err}");
    assert_eq!(&MAGIC, b"LANTERN\0");
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// CRC-32 (IEEE), bit by bit: an independent check of the writer's checksums.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn a_file_created_first_is_written_and_committed_and_a_failed_one_leaves_nothing() {
    let gguf = model();
    let dir = tempfile::tempdir().unwrap();
    let (into, with) = (dir.path().join("into.lantern"), dir.path().join("with.lantern"));
    let file = AtomicFile::create(&into).unwrap();
    assert!(!into.exists());
    let stats = write_container_into(&gguf, file, WriteOptions::default(), |_, _| {}).unwrap();
    let same = write_container_with(&gguf, &with, WriteOptions::default(), |_, _| {}).unwrap();
    assert_eq!(stats, same);
    assert_eq!(std::fs::read(&into).unwrap(), std::fs::read(&with).unwrap());

    // A replacement that fits nothing: the file created first is dropped, nothing is left.
    let bad = dir.path().join("bad.lantern");
    let q = gguf.tensor("blk.1.attn_q.weight").unwrap();
    let options = WriteOptions {
        replacements: vec![("blk.9.attn_q.weight".to_owned(), q)],
        ..WriteOptions::default()
    };
    let file = AtomicFile::create(&bad).unwrap();
    assert!(write_container_into(&gguf, file, options, |_, _| {}).is_err());
    let mut left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["into.lantern", "with.lantern"]);
}
