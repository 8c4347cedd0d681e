//! Hostile or broken model files and inputs give specific errors, never panics.

use lantern::{Engine, Error, GenerateConfig, Message, SessionConfig};
use lantern_io::{Error as IoError, GgufModel, ModelSource};

use crate::testutil::model_path;

fn model_bytes() -> Vec<u8> {
    std::fs::read(model_path()).expect("read the default model")
}

fn load(bytes: Vec<u8>) -> Result<Engine, Error> {
    Engine::builder_from_source(ModelSource::from_vec(bytes)).build()
}

#[test]
fn a_truncated_file_names_what_is_missing() {
    let bytes = model_bytes();
    for len in [0, 3, 100, 1_000_000, bytes.len() / 2, bytes.len() - 1] {
        match load(bytes[..len].to_vec()) {
            Err(Error::Io(IoError::Truncated { .. } | IoError::TensorOutOfBounds { .. })) => {}
            other => {
                panic!("truncated to {len}: expected Truncated/TensorOutOfBounds, got {other:?}")
            }
        }
    }
}

#[test]
fn flipped_header_bytes_are_caught() {
    let bytes = model_bytes();
    let mut magic = bytes.clone();
    magic[0] ^= 0xFF;
    assert!(matches!(load(magic), Err(Error::Io(IoError::BadMagic { .. }))));
    let mut version = bytes.clone();
    version[4] = 0x7F;
    assert!(matches!(load(version), Err(Error::Io(IoError::UnsupportedVersion { .. }))));
    let mut count = bytes.clone();
    count[8..16].copy_from_slice(&u64::MAX.to_le_bytes()); // tensor count
    assert!(matches!(
        load(count),
        Err(Error::Io(IoError::TooLarge { .. } | IoError::Truncated { .. }))
    ));
}

#[test]
fn an_unknown_tensor_type_names_the_tensor() {
    let bytes = model_bytes();
    let gguf = GgufModel::open(ModelSource::from_vec(bytes.clone())).unwrap();
    let first = &gguf.gguf().tensors()[0];
    // A tensor info is: name length (u64), name, n_dims (u32), dims (u64 each), type (u32).
    let name = first.name.as_bytes();
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    let type_at = at + 4 + 8 * first.dims.len();
    let mut patched = bytes.clone();
    patched[type_at..type_at + 4].copy_from_slice(&99u32.to_le_bytes());
    match load(patched) {
        Err(Error::Io(IoError::UnknownTensorType { tensor, id: 99 })) => {
            assert_eq!(tensor, first.name)
        }
        other => panic!("expected UnknownTensorType, got {other:?}"),
    }
}

#[test]
fn a_missing_file_is_an_error_with_its_path() {
    let err = Engine::load("/nonexistent/model.gguf").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/model.gguf"), "{err}");
}

#[test]
fn a_broken_chat_template_fails_chat_only() {
    // "{% for" becomes "{% fxr", an unknown tag: the template no longer compiles.
    let mut bytes = model_bytes();
    let needle = b"{% for message in messages %}";
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the template");
    bytes[at + 3..at + 6].copy_from_slice(b"fxr");
    let engine = load(bytes).unwrap();
    assert!(engine.chat_template().is_none());
    let mut session = engine.session(SessionConfig::default().ctx_len(64)).unwrap();
    let done = session.generate("The capital of France is", &GenerateConfig::greedy(2)).unwrap();
    assert_eq!(done.complete().unwrap().tokens.len(), 2);
    let err = session.chat(&[Message::user("Hi")], &GenerateConfig::greedy(2)).unwrap_err();
    assert!(matches!(err, Error::BrokenChatTemplate { .. }), "{err}");
    assert!(err.to_string().contains("fxr"), "{err}");
}
