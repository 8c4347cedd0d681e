//! Files on disk: atomic writes, and reading or mapping them back.

use lantern_io::{Error, GgufModel, GgufWriter, ModelSource};

use crate::util::{sample_bytes, sample_writer};

#[test]
fn write_file_then_read_and_mmap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    sample_writer().write_file(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), sample_bytes());

    let read = GgufModel::open(ModelSource::read(&path).unwrap()).unwrap();
    assert!(!read.source().is_mapped());
    // SAFETY: the file is private to this test and not modified while mapped.
    let mapped = GgufModel::open(unsafe { ModelSource::mmap(&path) }.unwrap()).unwrap();
    assert!(mapped.source().is_mapped());
    assert_eq!(mapped.source().path(), Some(path.as_path()));
    for info in read.gguf().tensors() {
        let a = read.tensor(&info.name).unwrap();
        let b = mapped.tensor(&info.name).unwrap();
        assert_eq!(a.bytes(), b.bytes(), "{}", info.name);
    }
    // Tensors keep the mapping alive after the model is gone.
    let t = mapped.tensor("norm.weight").unwrap();
    drop(mapped);
    assert_eq!(t.dequantize().unwrap(), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn write_file_replaces_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, b"old contents").unwrap();
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    w.write_file(&path).unwrap();
    let model = GgufModel::open(ModelSource::read(&path).unwrap()).unwrap();
    assert_eq!(model.gguf().architecture().unwrap(), "llama");
    let entries: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, ["m.gguf"]);
}

#[test]
fn failed_write_leaves_the_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::write(&path, b"old contents").unwrap();
    // Invalid metadata fails before anything is written.
    let mut w = sample_writer();
    w.alignment(3);
    assert!(matches!(w.write_file(&path), Err(Error::BadAlignment { value: 3 })));
    assert_eq!(std::fs::read(&path).unwrap(), b"old contents");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // A missing directory is an I/O error naming a path in it.
    let missing = dir.path().join("no/such/dir/m.gguf");
    let err = sample_writer().write_file(&missing).unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path.starts_with(dir.path().join("no"))),
        "{err}"
    );
}

#[test]
fn empty_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.gguf");
    std::fs::write(&path, b"").unwrap();
    // SAFETY: the file is private to this test and not modified while mapped.
    let source = unsafe { ModelSource::mmap(&path) }.unwrap();
    assert!(source.is_empty());
    assert!(matches!(GgufModel::open(source), Err(Error::Truncated { what: "magic", .. })));

    let missing = dir.path().join("missing.gguf");
    let err = ModelSource::read(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { ref path, .. } if path == &missing), "{err}");
    // SAFETY: nothing is mapped; opening fails first.
    let err = unsafe { ModelSource::mmap(&missing) }.unwrap_err();
    assert!(matches!(err, Error::Io { ref path, .. } if path == &missing), "{err}");
    assert!(err.to_string().contains("missing.gguf"));
}
