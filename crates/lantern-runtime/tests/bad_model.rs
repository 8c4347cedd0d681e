//! Malformed models are rejected by `Model::load` with an error that names the fault, never a
//! panic: missing tensors and keys, wrong shapes and types, foreign architectures and
//! hyper-parameters that contradict each other.

use lantern_core::GgmlType;
use lantern_io::{Gguf, GgufModel, ModelSource, Value};
use lantern_runtime::{Error, Model, StateConfig, MAX_THREADS};

use lantern_test_support::models::{load, load_err, prompt, state, tiny_model, Tiny};

/// The default fixture loads with the hyper-parameters it was written with.
#[test]
fn tiny_model_loads_with_its_hyper_parameters() {
    let model = load(&Tiny::default());
    let c = model.config();
    assert_eq!((c.architecture.as_str(), c.n_layers, c.d_model, c.n_ff), ("llama", 2, 64, 128));
    assert_eq!((c.n_heads, c.n_kv_heads, c.head_dim, c.rope_dim), (4, 2, 16, 16));
    assert_eq!((c.rope_base, c.rms_eps, c.train_ctx_len, c.vocab_size), (10_000.0, 1e-5, 256, 96));
    assert_eq!(model.weights().layers.len(), 2);
    assert_eq!(model.weights().output.as_ref().map(|t| t.dims()), Some(&[64, 96][..]));
}

/// Any missing weight is `MissingTensor` naming it, including the embedding (read first, for
/// the vocabulary) and a block beyond the file's last one.
#[test]
fn missing_tensor_is_named() {
    for name in [
        "token_embd.weight",
        "output_norm.weight",
        "blk.0.attn_norm.weight",
        "blk.1.ffn_down.weight",
    ] {
        let err = load_err(&Tiny { omit_tensor: Some(name), ..Tiny::default() });
        assert!(
            matches!(&err, Error::Io(lantern_io::Error::MissingTensor { name: n }) if n == name),
            "{name}: {err:?}"
        );
    }
    let err =
        load_err(&Tiny { set_keys: vec![("llama.block_count", Value::U32(3))], ..Tiny::default() });
    assert!(
        matches!(&err, Error::Io(lantern_io::Error::MissingTensor { name }) if name.starts_with("blk.2.")),
        "{err:?}"
    );
}

/// A weight whose dims disagree with the hyper-parameters is `TensorShape` naming it, with
/// the expected and found dims.
#[test]
fn wrong_shape_is_named() {
    let cases: [(&str, Vec<usize>, Vec<usize>); 5] = [
        ("blk.0.attn_k.weight", vec![64, 64], vec![64, 32]),
        ("blk.1.ffn_down.weight", vec![64, 128], vec![128, 64]),
        ("blk.1.ffn_norm.weight", vec![32], vec![64]),
        ("output.weight", vec![64, 95], vec![64, 96]),
        ("token_embd.weight", vec![32, 96], vec![64, 96]),
    ];
    for (name, found, expected) in cases {
        let err = load_err(&Tiny { wrong_shape: Some((name, found.clone())), ..Tiny::default() });
        assert!(
            matches!(&err, Error::TensorShape { tensor, expected: e, found: f }
                if tensor == name && *e == expected && *f == found),
            "{name}: {err:?}"
        );
    }
}

/// Only `llama` is supported; the error carries the file's architecture.
#[test]
fn unsupported_architecture_is_rejected() {
    let err = load_err(&Tiny { arch: "gpt2", ..Tiny::default() });
    assert!(
        matches!(&err, Error::UnsupportedArchitecture { arch, .. } if arch == "gpt2"),
        "{err:?}"
    );
}

/// A weight in a type without matmul kernels is `UnsupportedTensorType` naming it: IQ2_XXS
/// (needs rows of 256, so a 256-wide model), Q5_1, and BF16 (dequantizable, but no kernels).
#[test]
fn unsupported_weight_type_is_named() {
    let wide = Tiny { dim: 256, ff: 256, ..Tiny::default() };
    let cases = [
        (
            Tiny { retype: Some(("blk.0.attn_q.weight", GgmlType::IQ2_XXS)), ..wide },
            GgmlType::IQ2_XXS,
        ),
        (
            Tiny { retype: Some(("blk.1.ffn_up.weight", GgmlType::Q5_1)), ..Tiny::default() },
            GgmlType::Q5_1,
        ),
        (
            Tiny { retype: Some(("token_embd.weight", GgmlType::BF16)), ..Tiny::default() },
            GgmlType::BF16,
        ),
    ];
    for (t, ty) in cases {
        let name = t.retype.as_ref().unwrap().0;
        let err = load_err(&t);
        assert!(
            matches!(&err, Error::UnsupportedTensorType { tensor, ty: found } if tensor == name && *found == ty),
            "{name}: {err:?}"
        );
    }
}

/// Hyper-parameters that contradict each other or are out of range are `InvalidConfig`
/// naming the key.
#[test]
fn inconsistent_hyper_parameters_are_rejected() {
    let cases: [(&str, Value); 8] = [
        ("llama.attention.head_count", Value::U32(5)), // does not divide 64
        ("llama.attention.head_count", Value::U32(0)),
        ("llama.attention.head_count_kv", Value::U32(0)),
        ("llama.attention.head_count_kv", Value::U32(3)), // does not divide 4 heads
        ("llama.block_count", Value::U32(0)),
        ("llama.embedding_length", Value::U32(u32::MAX)),
        ("llama.rope.freq_base", Value::F32(0.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(f32::NAN)),
    ];
    for (key, value) in cases {
        let err = load_err(&Tiny { set_keys: vec![(key, value.clone())], ..Tiny::default() });
        assert!(
            matches!(&err, Error::InvalidConfig { key: k, .. } if k == key),
            "{key}={value:?}: {err:?}"
        );
    }
    // An odd rotary width, and none at all.
    for width in [7, 0] {
        let err = load_err(&Tiny {
            set_keys: vec![("llama.rope.dimension_count", Value::U32(width))],
            ..Tiny::default()
        });
        assert!(
            matches!(&err, Error::InvalidConfig { key, .. } if key == "llama.rope.dimension_count"),
            "{width}: {err:?}"
        );
    }
}

#[test]
fn batch_sizes_past_any_memory_are_capped_by_the_context() {
    // A batch never holds more tokens than the context, so sizes that overflow or cannot be
    // allocated give a working state whose batches hold the whole context.
    let model = load(&Tiny::default());
    let tokens = prompt(20, 96);
    let mut expected = state(&model, 32, 32, 1);
    let expected = model.forward(&mut expected, &tokens, 0).unwrap().to_vec();
    for batch_size in [1 << 62, usize::MAX, 100_000_000] {
        let config = StateConfig { ctx_len: 32, batch_size, threads: 1 };
        let mut s = model.new_state(config).unwrap();
        assert_eq!(model.forward(&mut s, &tokens, 0).unwrap(), &expected[..], "{batch_size}");
    }
    // Thread counts: 0 and more than any machine needs are errors naming the setting.
    for threads in [0, MAX_THREADS + 1, usize::MAX] {
        let err = model.new_state(StateConfig { ctx_len: 32, batch_size: 8, threads }).unwrap_err();
        assert!(matches!(&err, Error::InvalidSetting { name: "threads", .. }), "{err:?}");
    }
    // A context too large to count is an error naming it, not an abort.
    let config = StateConfig { ctx_len: usize::MAX / 2, batch_size: 512, threads: 1 };
    let err = model.new_state(config).unwrap_err();
    assert!(matches!(&err, Error::InvalidSetting { name: "ctx_len", .. }), "{err:?}");
}

/// A required metadata key that is absent is `MissingKey` naming it; a mistyped one is
/// `WrongType`. Optional keys (head_count_kv, freq_base) fall back to their defaults.
#[test]
fn missing_or_mistyped_metadata_is_named() {
    for key in [
        "general.architecture",
        "llama.block_count",
        "llama.embedding_length",
        "llama.attention.head_count",
        "llama.attention.layer_norm_rms_epsilon",
        "llama.context_length",
    ] {
        let err = load_err(&Tiny { omit_keys: vec![key], ..Tiny::default() });
        assert!(
            matches!(&err, Error::Io(lantern_io::Error::MissingKey { key: k }) if k == key),
            "{key}: {err:?}"
        );
    }
    let err = load_err(&Tiny {
        set_keys: vec![("llama.embedding_length", "64".into())],
        ..Tiny::default()
    });
    assert!(
        matches!(&err, Error::Io(lantern_io::Error::WrongType { key, .. }) if key == "llama.embedding_length"),
        "{err:?}"
    );
    // Without head_count_kv every head has its own kv head: 4 · 16 = 64 ≠ 32, so the file's
    // GQA-shaped attn_k no longer fits.
    let err =
        load_err(&Tiny { omit_keys: vec!["llama.attention.head_count_kv"], ..Tiny::default() });
    assert!(
        matches!(&err, Error::TensorShape { tensor, .. } if tensor == "blk.0.attn_k.weight"),
        "{err:?}"
    );
    let model = load(&Tiny { omit_keys: vec!["llama.rope.freq_base"], ..Tiny::default() });
    assert_eq!(model.config().rope_base, 10_000.0);
}

/// An embedding with no rows (vocabulary 0) makes a model that can run no token; it should
/// be rejected at load.
#[test]
fn empty_vocabulary_is_rejected() {
    let err = load_err(&Tiny { vocab: 0, ..Tiny::default() });
    assert!(matches!(err, Error::InvalidConfig { .. } | Error::TensorShape { .. }), "{err:?}");
}

#[test]
fn a_scored_token_outside_the_vocabulary_is_an_error_not_a_panic() {
    let model = load(&Tiny::default());
    let mut state = lantern_test_support::models::state(&model, 64, 16, 1);
    let vocab = model.config().vocab_size as u32;
    // Only the last token of a chunk is never fed: it is still checked.
    let chunk: Vec<u32> = (0..8).map(|i| i % vocab).chain([vocab]).collect();
    let err = lantern_runtime::scoring::perplexity(&model, &mut state, [&chunk[..]], None, |_| {})
        .unwrap_err();
    assert!(matches!(err, Error::InvalidToken { id, .. } if id == vocab), "{err}");
    assert!(state.is_empty());
}

#[test]
fn non_finite_logits_are_an_error_not_a_token() {
    // A NaN in a norm's gain (a damaged file) makes every logit NaN; sampled, it would be
    // some token. The pass says where it happened instead.
    let mut bytes = tiny_model(&Tiny::default());
    let gguf = Gguf::parse(&bytes).unwrap();
    let at = gguf.tensor_info("blk.1.ffn_norm.weight").unwrap().offset as usize;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let model = Model::load(&GgufModel::open(ModelSource::from_vec(bytes)).unwrap()).unwrap();
    let mut s = state(&model, 32, 8, 1);
    let err = model.forward(&mut s, &prompt(3, 96), 0).unwrap_err();
    assert!(matches!(err, Error::NonFiniteLogits { position: 0 }), "{err:?}");
    let err = model.forward(&mut s, &[5], 0).unwrap_err();
    assert!(matches!(err, Error::NonFiniteLogits { position: 3 }), "{err:?}");
}
