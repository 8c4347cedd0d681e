//! The architectures beside llama, as options of the one block: each family's tiny model
//! loads, batches give the logits of one token at a time, a sliding window hides what lies
//! before it, and what a family needs that a file lacks is named.

use lantern_core::GgmlType;
use lantern_io::{GgufModel, GgufWriter, ModelSource, Value};
use lantern_runtime::{Criterion, Error, FfnThresholds, Model, StateConfig};

use lantern_test_support::models::{
    decode_one_by_one, load, load_err, max_abs_diff, prompt, spread, state, tiny_model, Tiny,
};

/// A tiny model of `arch` with heads wider than `dim / heads` (as Gemma 3's are) and, for
/// gemma3, a window of 4 positions on every other layer.
fn tiny(arch: &'static str) -> Tiny {
    let mut t = Tiny { arch, ty: GgmlType::Q8_0, head_dim: Some(32), ..Tiny::default() };
    if arch == "gemma3" {
        t.set_keys = vec![
            ("gemma3.attention.sliding_window", Value::U32(4)),
            ("gemma3.attention.sliding_window_pattern", Value::U32(2)),
        ];
    }
    t
}

#[test]
fn every_family_batches_as_it_decodes() {
    let tokens = prompt(11, 96);
    for arch in ["llama", "qwen2", "qwen3", "gemma3", "phi3"] {
        let model = load(&tiny(arch));
        assert_eq!(model.config().architecture, arch);
        let decoded = decode_one_by_one(&model, &tokens);
        assert!(decoded.iter().all(|v| v.is_finite()), "{arch}");
        for batch_size in [16, 4] {
            let mut s = state(&model, 64, batch_size, 2);
            let prefill = model.forward(&mut s, &tokens, 0).unwrap();
            let err = max_abs_diff(prefill, &decoded);
            assert!(err <= 1e-5 * spread(&decoded), "{arch} batch {batch_size}: {err}");
        }
    }
}

#[test]
fn families_differ_from_llama_where_their_options_do() {
    // The same seeds give the same weights; each family's options change the logits.
    let tokens = prompt(6, 96);
    let llama = decode_one_by_one(&load(&tiny("llama")), &tokens);
    for arch in ["qwen2", "qwen3", "gemma3", "phi3"] {
        let logits = decode_one_by_one(&load(&tiny(arch)), &tokens);
        assert!(max_abs_diff(&logits, &llama) > 1e-3, "{arch} computes llama's block");
    }
}

#[test]
fn a_sliding_window_hides_the_positions_before_it() {
    // Every layer local with a window of 3: the last token's logits depend on the last
    // 1 + 2·2 = 5 positions only, through two layers.
    let all_local = |window| Tiny {
        set_keys: vec![
            ("gemma3.attention.sliding_window", Value::U32(window)),
            ("gemma3.attention.sliding_window_pattern", Value::Array(vec![Value::Bool(true); 2])),
        ],
        ..tiny("gemma3")
    };
    let a = prompt(16, 96);
    let mut b = a.clone();
    b[..10].iter_mut().for_each(|t| *t = (*t + 7) % 96);
    let last = |model: &lantern_runtime::Model, tokens: &[u32]| {
        let mut s = state(model, 64, 16, 1);
        model.forward(&mut s, tokens, tokens.len() - 1).unwrap().to_vec()
    };
    let windowed = load(&all_local(3));
    assert_eq!(last(&windowed, &a), last(&windowed, &b));
    // A window of 16 sees the changed positions.
    let wide = load(&all_local(16));
    assert_ne!(last(&wide, &a), last(&wide, &b));
}

/// Long batches take the tiled f32 attention, decoding llama.cpp's f16 accumulator: on
/// these models the two part by up to 0.7% of the logits' spread, llama's global layers
/// included (the peer's two paths part likewise).
const TILED_VS_DECODE_REL_TOL: f32 = 1e-2;

#[test]
fn long_batches_of_window_layers_give_the_logits_of_decoding() {
    // Batches of 100 take the tiled path; the second one's span wraps the local layers'
    // ring. Windows shorter than a tile and longer than one.
    let tokens = prompt(200, 96);
    for window in [4, 70] {
        let mut t = tiny("gemma3");
        t.set_keys[0].1 = Value::U32(window);
        let model = load(&t);
        let mut s = state(&model, 256, 1, 1);
        let decoded: Vec<f32> =
            tokens.iter().flat_map(|&t| model.forward(&mut s, &[t], 0).unwrap().to_vec()).collect();
        let mut s = state(&model, 256, 100, 2);
        let prefill = model.forward(&mut s, &tokens, 0).unwrap();
        let err = max_abs_diff(prefill, &decoded);
        let tol = TILED_VS_DECODE_REL_TOL * spread(&decoded);
        assert!(err <= tol, "window {window}: {err} > {tol}");
    }
}

#[test]
fn a_familys_out_of_range_keys_are_named() {
    let cases = [
        ("gemma3.attention.sliding_window_pattern", Value::Array(vec![Value::Bool(true); 3])),
        ("gemma3.attention.sliding_window_pattern", Value::Array(vec![Value::U32(1); 2])),
        ("gemma3.attention.key_length", Value::U32(0)),
        ("gemma3.rope.freq_base_swa", Value::F32(-1.0)),
        ("gemma3.final_logit_softcapping", Value::F32(f32::INFINITY)),
        ("gemma3.rope.scaling.attn_factor", Value::F32(f32::NAN)),
    ];
    for (key, value) in cases {
        let mut t = tiny("gemma3");
        t.set_keys.retain(|(k, _)| *k != key);
        t.set_keys.push((key, value.clone()));
        let err = load_err(&t);
        assert!(
            matches!(&err, Error::InvalidConfig { key: k, .. } if k == key),
            "{key}={value:?}: {err:?}"
        );
    }
}

#[test]
fn a_missing_family_tensor_is_named() {
    for (arch, missing) in [
        ("qwen2", "blk.0.attn_k.bias"),
        ("qwen3", "blk.1.attn_q_norm.weight"),
        ("gemma3", "blk.0.post_ffw_norm.weight"),
    ] {
        let err = load_err(&Tiny { omit_tensor: Some(missing), ..tiny(arch) });
        assert!(err.to_string().contains(missing), "{arch}: {err}");
    }
}

#[test]
fn sparsity_thresholds_are_refused_for_a_gelu_gate() {
    let model = load(&tiny("gemma3"));
    let mut s = model.new_state(StateConfig { ctx_len: 16, batch_size: 4, threads: 1 }).unwrap();
    let thresholds = FfnThresholds::new(Criterion::Gate, vec![vec![0.1]; 2]).unwrap();
    let err = s.set_ffn_thresholds(Some(thresholds)).unwrap_err();
    assert!(matches!(err, Error::InvalidSetting { name: "FFN thresholds", .. }), "{err}");
}

#[test]
fn a_window_layer_keeps_its_window_and_a_batch_and_refeeds_only_what_it_holds() {
    // Window 4, batches of 3: the local layers keep 6 positions. Truncating a little gives
    // the logits of a fresh pass; truncating past what the ring holds keeps nothing.
    let model = load(&tiny("gemma3"));
    let tokens = prompt(12, 96);
    let fresh = {
        let mut s = state(&model, 64, 3, 1);
        model.forward(&mut s, &tokens, 0).unwrap().to_vec()
    };
    let mut s = state(&model, 64, 3, 1);
    model.forward(&mut s, &tokens, 0).unwrap();
    assert_eq!(s.truncate(10), 10);
    let refed = model.forward(&mut s, &tokens[10..], 0).unwrap();
    assert_eq!(refed, &fresh[10 * 96..]);
    assert_eq!(s.truncate(5), 0);
    assert_eq!(model.forward(&mut s, &tokens, 0).unwrap(), &fresh[..]);
}

/// `t`'s file with each block's Q, K and V rows in one `attn_qkv` matrix and its gate and
/// up rows in one `ffn_up`, gate first, as Phi-3's files hold them.
fn fused(t: &Tiny) -> Vec<u8> {
    let gguf = GgufModel::open(ModelSource::from_vec(tiny_model(t))).unwrap();
    let mut w = GgufWriter::new();
    for (key, value) in gguf.metadata().iter() {
        w.metadata(key, value.clone());
    }
    let tensor = |name: &str| gguf.tensor(name).unwrap();
    let concat = |names: [String; 2]| -> (Vec<u8>, usize) {
        let parts = names.map(|n| tensor(&n));
        let rows = parts.iter().map(|p| p.n_rows()).sum();
        (parts.iter().flat_map(|p| p.bytes().to_vec()).collect(), rows)
    };
    for info in gguf.gguf().tensors() {
        let (name, block) = (&info.name, |part: &str| info.name.replace(part, ""));
        if name.contains("attn_k.") || name.contains("attn_v.") || name.contains("ffn_gate.") {
            continue;
        }
        let (name, bytes, rows) = if name.contains("attn_q.") {
            let prefix = block("attn_q.weight");
            let (qk, _) =
                concat([format!("{prefix}attn_q.weight"), format!("{prefix}attn_k.weight")]);
            let v = tensor(&format!("{prefix}attn_v.weight"));
            let rows = info.dims[1] + 2 * v.n_rows();
            let bytes = [qk, v.bytes().to_vec()].concat();
            (format!("{prefix}attn_qkv.weight"), bytes, rows)
        } else if name.contains("ffn_up.") {
            let prefix = block("ffn_up.weight");
            let (bytes, rows) =
                concat([format!("{prefix}ffn_gate.weight"), format!("{prefix}ffn_up.weight")]);
            (name.clone(), bytes, rows)
        } else {
            (name.clone(), tensor(name).bytes().to_vec(), info.dims[1..].iter().product())
        };
        let dims = if info.dims.len() == 1 { vec![info.dims[0]] } else { vec![info.dims[0], rows] };
        w.tensor(name, info.ty, &dims, bytes).unwrap();
    }
    w.to_bytes().unwrap()
}

#[test]
fn phi3s_fused_matrices_compute_as_the_separate_ones() {
    let t = tiny("phi3");
    let separate = load(&t);
    let fused = Model::load(&GgufModel::open(ModelSource::from_vec(fused(&t))).unwrap()).unwrap();
    let tokens = prompt(9, 96);
    assert_eq!(decode_one_by_one(&fused, &tokens), decode_one_by_one(&separate, &tokens));
}

#[test]
fn a_fused_matrix_is_refused_for_streaming_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("phi3.lantern");
    let gguf = GgufModel::open(ModelSource::from_vec(fused(&tiny("phi3")))).unwrap();
    lantern_io::container::write_container(&gguf, &path, |_, _| {}).unwrap();
    let file = lantern_io::stream::StreamedContainer::open(
        &path,
        lantern_io::stream::StorageModel::UNTHROTTLED,
    )
    .unwrap();
    let err = Model::load_streamed(file, lantern_runtime::StreamOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::FusedNotStreamed { matrix } if matrix == "blk.0.attn_qkv.weight")
    );
}
