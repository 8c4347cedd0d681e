//! Streaming a container: every load holds the bytes the resident reader gives, in every
//! mode; the memory budget holds; damage and a budget too small are clear errors.

use std::time::{Duration, Instant};

use lantern_core::GgmlType;
use lantern_io::container::{write_container, ContainerModel, CHUNK_BYTES};
use lantern_io::stream::{ReadPath, StorageModel, Stream, StreamConfig, StreamedContainer};
use lantern_io::{Error, GgufModel, GgufWriter, ModelSource};

/// Bytes of one Q8_0 row of 256 values.
const ROW: usize = 8 * 34;

/// Pseudo-random bytes that LZ4 cannot shrink.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// Three blocks of two Q8_0 matrices, an f32 matrix and a norm each, and a head of 4.6
/// chunks, of rows that do not divide a chunk.
fn model() -> GgufModel {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    let head_rows = CHUNK_BYTES * 46 / 10 / ROW;
    w.tensor("output.weight", GgmlType::Q8_0, &[256, head_rows], noise(head_rows * ROW, 1))
        .unwrap();
    for l in 0..3 {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        w.tensor_f32(name("attn_norm"), &[4], &[1.0, 2.0, 3.0, l as f32]).unwrap();
        w.tensor(name("attn_q"), GgmlType::Q8_0, &[256, 600], noise(600 * ROW, l + 2)).unwrap();
        // Zeros: LZ4 chunks.
        w.tensor(name("ffn_up"), GgmlType::Q8_0, &[256, 900], vec![0; 900 * ROW]).unwrap();
        // A ramp of f32 values: stored as byte planes.
        let ramp: Vec<f32> = (0..256 * 300).map(|i| (i % 1000) as f32).collect();
        w.tensor_f32(name("ramp"), &[256, 300], &ramp).unwrap();
    }
    GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap()
}

fn units() -> Vec<Vec<String>> {
    let mut units: Vec<Vec<String>> = (0..3)
        .map(|l| ["attn_q", "ffn_up", "ramp"].map(|t| format!("blk.{l}.{t}.weight")).to_vec())
        .collect();
    units.push(vec!["output.weight".into()]);
    units
}

/// The model written as a container in a fresh directory, and the resident reader of it.
fn container() -> (tempfile::TempDir, std::path::PathBuf, ContainerModel) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lantern");
    write_container(&model(), &path, |_, _| {}).unwrap();
    let resident = ContainerModel::open(ModelSource::read(&path).unwrap()).unwrap();
    let ramp = resident.container().tensor("blk.0.ramp.weight").unwrap();
    assert_eq!(ramp.transform, lantern_io::container::Transform::Planes);
    (dir, path, resident)
}

/// Stored bytes of one pass over the units.
fn pass_bytes(resident: &ContainerModel) -> u64 {
    let index = resident.container();
    units()
        .iter()
        .flatten()
        .flat_map(|name| &index.chunks()[index.tensor(name).unwrap().chunks.clone()])
        .map(|c| c.stored_bytes)
        .sum()
}

/// Takes two passes of every unit from `stream`, checking each tensor against `resident`.
fn check_passes(stream: &mut Stream, resident: &ContainerModel) {
    let units = units();
    for _ in 0..2 {
        for (u, names) in units.iter().enumerate() {
            let mut rows_seen = vec![0; names.len()];
            for load in stream.loads_of(u) {
                let loaded = stream.take(load).unwrap();
                assert_eq!(loaded.tensors.len(), names.len());
                for (i, (tensor, rows)) in loaded.tensors.iter().enumerate() {
                    let name = &names[i];
                    let whole = resident.tensor(name).unwrap();
                    let row_bytes = whole.bytes().len() / whole.n_rows();
                    assert_eq!(rows.start, rows_seen[i], "{name}: runs of rows in order");
                    rows_seen[i] = rows.end;
                    assert_eq!(tensor.dims(), &[256, rows.len()], "{name}");
                    let expected = &whole.bytes()[rows.start * row_bytes..rows.end * row_bytes];
                    assert!(tensor.bytes() == expected, "{name} rows {rows:?}");
                }
            }
            for (name, seen) in names.iter().zip(rows_seen) {
                assert_eq!(seen, resident.tensor(name).unwrap().n_rows(), "{name} covered");
            }
        }
    }
}

#[test]
fn every_depth_and_read_path_gives_the_resident_bytes() {
    let (_dir, path, resident) = container();
    for reads in [ReadPath::Direct, ReadPath::Cached] {
        for depth in [0, 1, 3] {
            let file =
                StreamedContainer::open_with(&path, StorageModel::UNTHROTTLED, reads).unwrap();
            let config = StreamConfig { budget: 64 << 20, depth, row_lookups: false };
            let mut stream = file.stream(&units(), config).unwrap();
            assert_eq!(stream.depth(), depth);
            // The head is larger than a block, so it comes in runs of rows.
            assert!(stream.loads_of(3).len() > 1, "{:?}", stream.loads_of(3));
            check_passes(&mut stream, &resident);
            let stats = file.stats();
            assert!(stats.bytes_read >= 2 * pass_bytes(&resident), "{stats:?}");
            assert!(stats.loads >= 2 * stream.loads_of(3).end as u64);
        }
    }
}

#[test]
fn the_budget_bounds_what_is_held_and_sets_the_depth() {
    let (_dir, path, resident) = container();
    let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
    let units = units();
    let Err(Error::BudgetTooSmall { minimum, .. }) =
        file.stream(&units, StreamConfig { budget: 1 << 20, depth: 2, row_lookups: false })
    else {
        panic!("a 1 MiB budget cannot hold a 1.6 MiB block");
    };
    // The minimum runs, with nothing read ahead.
    let mut stream = file
        .stream(&units, StreamConfig { budget: minimum, depth: 2, row_lookups: false })
        .unwrap();
    assert_eq!(stream.depth(), 0);
    check_passes(&mut stream, &resident);
    assert!(file.stats().peak_resident_bytes <= minimum, "{:?}", file.stats());
    drop(stream);
    assert_eq!(file.stats().resident_bytes, 0, "the pool is freed with the stream");

    // Room for a pool of three slabs and the reading thread's buffers.
    let budget = minimum * 3;
    let mut stream =
        file.stream(&units, StreamConfig { budget, depth: 8, row_lookups: false }).unwrap();
    assert!((1..8).contains(&stream.depth()), "depth {}", stream.depth());
    check_passes(&mut stream, &resident);
    assert!(file.stats().peak_resident_bytes <= budget, "{:?}", file.stats());
}

#[test]
fn row_lookups_read_the_rows_of_the_resident_tensor() {
    let (_dir, path, resident) = container();
    let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
    let head = resident.tensor("output.weight").unwrap();
    let rows = [0u32, 5000, 17, (head.n_rows() - 1) as u32, 5000];
    let mut out = vec![0.0; rows.len() * 256];
    file.dequantize_rows("output.weight", &rows, &mut out).unwrap();
    for (&r, got) in rows.iter().zip(out.chunks(256)) {
        let mut expected = vec![0.0; 256];
        head.dequantize_row(r as usize, &mut expected).unwrap();
        assert_eq!(got, &expected[..], "row {r}");
    }
    let past = file.dequantize_rows("output.weight", &[head.n_rows() as u32], &mut out[..256]);
    assert!(matches!(past, Err(Error::Tensor { .. })), "{past:?}");
}

#[test]
fn a_damaged_chunk_stops_the_stream_naming_its_tensor() {
    let (_dir, path, resident) = container();
    let entry = resident.container().tensor("blk.1.attn_q.weight").unwrap().clone();
    let chunk = resident.container().chunks()[entry.chunks.start];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[chunk.offset as usize + 100] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    for depth in [0, 2] {
        let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
        let config = StreamConfig { budget: 64 << 20, depth, row_lookups: false };
        let mut stream = file.stream(&units(), config).unwrap();
        stream.take(0).unwrap();
        let err = stream.take(1).unwrap_err();
        let Error::Checksum { what, .. } = &err else { panic!("{err:?}") };
        assert!(what.contains("blk.1.attn_q.weight"), "{what}");
        if depth > 0 {
            assert!(matches!(stream.take(2), Err(Error::StreamStopped)));
        }
    }
}

#[test]
fn a_throttled_pass_takes_at_least_the_modelled_time() {
    let (_dir, path, resident) = container();
    let pass_bytes = pass_bytes(&resident);
    let storage: StorageModel = "50MB/s".parse().unwrap();
    let file = StreamedContainer::open(&path, storage).unwrap();
    let config = StreamConfig { budget: 64 << 20, depth: 2, row_lookups: false };
    let mut stream = file.stream(&units(), config).unwrap();
    let start = Instant::now();
    for load in 0..stream.loads_of(3).end {
        stream.take(load).unwrap();
    }
    // Every byte of the pass has arrived at 50 MB/s before its last load is handed over.
    let modelled = Duration::from_secs_f64(pass_bytes as f64 / 50e6);
    assert!(start.elapsed() >= modelled, "{:?} for {pass_bytes} bytes", start.elapsed());
}

#[test]
fn a_gguf_file_is_not_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = GgufWriter::new();
    w.tensor_f32("x", &[2], &[1.0, 2.0]).unwrap();
    w.write_file(&path).unwrap();
    let err = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap_err();
    assert!(matches!(err, Error::NotContainer { .. }), "{err:?}");
}

#[test]
fn a_tensor_without_data_is_not_streamed() {
    let mut w = GgufWriter::new();
    w.tensor_f32("empty", &[0, 4], &[]).unwrap();
    let gguf = GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.lantern");
    write_container(&gguf, &path, |_, _| {}).unwrap();
    let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
    let config = StreamConfig { budget: 1 << 20, depth: 1, row_lookups: false };
    let err = file.stream(&[vec!["empty".into()]], config).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { what, .. } if what == "empty"), "{err:?}");
}
