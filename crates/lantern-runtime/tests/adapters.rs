//! LoRA adapters: the side product is the merged matrix's product, a file round-trips, a
//! zero update is the base model, adapters are per state, streamed and sparse models run
//! them, bad adapters are refused; and early exits: one exit is the base model, votes and
//! the first confident exit combine.

use std::sync::Arc;

use lantern_core::GgmlType;
use lantern_io::container::write_container;
use lantern_io::stream::{StorageModel, StreamedContainer};
use lantern_io::{GgufModel, GgufWriter, ModelSource};
use lantern_runtime::calibration::ActivationHistograms;
use lantern_runtime::{
    BlockMatrix, Budget, Criterion, Error, ExitRule, Exits, LoraAdapter, LowRank, Model, Pin,
    Projections, StreamOptions,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

use lantern_test_support::models::{load, max_abs_diff, open, prompt, spread, state, Tiny};

/// An adapter updating every matrix of every block of `model`, with values of about `size`.
fn random_adapter(model: &Model, rank: usize, size: f32, seed: u64) -> LoraAdapter {
    let c = model.config();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut values = |n: usize| (0..n).map(|_| rng.random_range(-size..size)).collect();
    let mut adapter = LoraAdapter::new(c.architecture.clone(), 2.0 * rank as f32);
    for (l, layer) in model.weights().layers.iter().enumerate() {
        let p: &Projections = layer.projections.as_ref().unwrap();
        for (m, matrix) in BlockMatrix::ALL.into_iter().zip(p.iter()) {
            let (inputs, outputs) = (matrix.row_len(), matrix.n_rows());
            let a = values(rank * inputs);
            let b = values(outputs * rank);
            adapter.insert(l, m, LowRank::new(rank, inputs, outputs, a, b).unwrap());
        }
    }
    adapter
}

fn logits(model: &Model, adapters: Vec<(Arc<LoraAdapter>, f32)>, tokens: &[u32]) -> Vec<f32> {
    let mut s = state(model, 32, 16, 2);
    model.set_adapters(&mut s, adapters).unwrap();
    model.forward(&mut s, tokens, 0).unwrap().to_vec()
}

#[test]
fn the_side_product_is_the_merged_matrix_product() {
    // F32 weights: merging rounds nothing, so the two ways must agree to float error.
    let tokens = prompt(9, 96);
    let mut model = load(&Tiny::of(GgmlType::F32));
    let adapter = Arc::new(random_adapter(&model, 4, 0.1, 1));
    let base = logits(&model, vec![], &tokens);
    let side = logits(&model, vec![(adapter.clone(), 0.7)], &tokens);
    model.merge_adapter(&adapter, 0.7).unwrap();
    let merged = logits(&model, vec![], &tokens);
    assert!(max_abs_diff(&side, &base) > 0.05 * spread(&base), "the adapter changes little");
    assert!(
        max_abs_diff(&side, &merged) < 1e-3 * spread(&base),
        "{}",
        max_abs_diff(&side, &merged)
    );
}

#[test]
fn a_zero_update_and_a_zero_scale_are_the_base_model() {
    let tokens = prompt(9, 96);
    let model = load(&Tiny::default());
    let base = logits(&model, vec![], &tokens);
    let adapter = Arc::new(random_adapter(&model, 4, 0.1, 2));
    assert_eq!(logits(&model, vec![(adapter, 0.0)], &tokens), base);
}

#[test]
fn sessions_of_one_model_run_their_own_adapters() {
    let tokens = prompt(9, 96);
    let model = load(&Tiny::default());
    let adapter = Arc::new(random_adapter(&model, 4, 0.1, 3));
    let base = logits(&model, vec![], &tokens);
    let adapted = logits(&model, vec![(adapter.clone(), 1.0)], &tokens);
    assert_ne!(adapted, base);
    // The base is untouched by a state's adapters, and decoding agrees with the batch.
    assert_eq!(logits(&model, vec![], &tokens), base);
    let mut s = state(&model, 32, 16, 2);
    model.set_adapters(&mut s, vec![(adapter, 1.0)]).unwrap();
    let vocab = model.config().vocab_size;
    for (i, &t) in tokens.iter().enumerate() {
        let row = model.forward(&mut s, &[t], 0).unwrap();
        let want = &adapted[i * vocab..(i + 1) * vocab];
        assert!(max_abs_diff(row, want) < 1e-3 * spread(want));
    }
}

#[test]
fn an_adapter_file_round_trips_in_llama_cpp_layout() {
    let model = load(&Tiny::default());
    let mut adapter = random_adapter(&model, 3, 0.1, 4);
    adapter.set_exits(vec![1, 2]);
    let bytes = adapter.to_gguf().unwrap().to_bytes().unwrap();
    let file = GgufModel::open(ModelSource::from_vec(bytes)).unwrap();
    let meta = file.metadata();
    assert_eq!(meta.str("general.type").unwrap(), "adapter");
    assert_eq!(meta.str("adapter.type").unwrap(), "lora");
    assert_eq!(meta.f32("adapter.lora.alpha").unwrap(), 6.0);
    // ggml dimensions: lora_a [inputs, rank], lora_b [rank, outputs].
    let a = file.tensor("blk.1.ffn_down.weight.lora_a").unwrap();
    let b = file.tensor("blk.1.ffn_down.weight.lora_b").unwrap();
    assert_eq!((a.dims(), b.dims()), (&[128, 3][..], &[3, 64][..]));
    assert_eq!(LoraAdapter::from_gguf(&file).unwrap(), adapter);
}

/// An adapter file's tensors: name, ggml dimensions, values.
type Parts = Vec<(String, Vec<usize>, Vec<f32>)>;

/// A change to a valid adapter file.
type Edit = Box<dyn FnOnce(&mut GgufWriter, &mut Parts)>;

/// An adapter file with `edit` applied to a valid one's parts.
fn adapter_file(edit: impl FnOnce(&mut GgufWriter, &mut Parts)) -> Result<LoraAdapter, Error> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama")
        .metadata("general.type", "adapter")
        .metadata("adapter.type", "lora")
        .metadata("adapter.lora.alpha", 8.0f32);
    let mut tensors = vec![
        ("blk.0.attn_q.weight.lora_a".to_owned(), vec![64, 2], vec![0.1; 128]),
        ("blk.0.attn_q.weight.lora_b".to_owned(), vec![2, 64], vec![0.1; 128]),
    ];
    edit(&mut w, &mut tensors);
    for (name, dims, values) in &tensors {
        w.tensor_f32(name.clone(), dims, values).unwrap();
    }
    let file = GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap()))?;
    LoraAdapter::from_gguf(&file)
}

#[test]
fn malformed_adapters_are_refused_with_the_reason() {
    let model = load(&Tiny::default());
    let reason = |r: Result<LoraAdapter, Error>| match r {
        Err(e) => e.to_string(),
        Ok(a) => match model.set_adapters(&mut state(&model, 8, 8, 1), vec![(Arc::new(a), 1.0)]) {
            Err(e) => e.to_string(),
            Ok(()) => "accepted".into(),
        },
    };
    assert_eq!(reason(adapter_file(|_, _| {})), "accepted");
    let cases: Vec<(&str, Edit)> = vec![
        (
            "not a LoRA adapter",
            Box::new(|w, _| {
                w.metadata("general.type", "model");
            }),
        ),
        (
            "only one of its .lora_a and .lora_b",
            Box::new(|_, t| {
                t.pop();
            }),
        ),
        (
            "rank 2 but",
            Box::new(|_, t| {
                t[1] = ("blk.0.attn_q.weight.lora_b".into(), vec![1, 64], vec![0.1; 64]);
            }),
        ),
        ("NaN", Box::new(|_, t| t[0].2[5] = f32::NAN)),
        (
            "which lantern does not adapt",
            Box::new(|_, t| {
                t[0].0 = "output.weight.lora_a".into();
                t[1].0 = "output.weight.lora_b".into();
            }),
        ),
        ("neither a .lora_a nor a .lora_b", Box::new(|_, t| t[0].0 = "blk.0.attn_q.weight".into())),
        ("holds no .lora_a/.lora_b pair", Box::new(|_, t| t.clear())),
        // Fit for another model: a block it lacks, other sizes, another architecture.
        (
            "it adapts block 7",
            Box::new(|_, t| {
                t[0].0 = "blk.7.attn_q.weight.lora_a".into();
                t[1].0 = "blk.7.attn_q.weight.lora_b".into();
            }),
        ),
        (
            "maps 64 values to 64, the adapter's update 32 to 64",
            Box::new(|_, t| {
                t[0] = ("blk.0.attn_q.weight.lora_a".into(), vec![32, 2], vec![0.1; 64]);
            }),
        ),
        (
            "the adapter is for \"qwen2\" models",
            Box::new(|w, _| {
                w.metadata("general.architecture", "qwen2");
            }),
        ),
    ];
    for (want, edit) in cases {
        let got = reason(adapter_file(edit));
        assert!(got.contains(want), "{want:?} not in {got:?}");
    }
    // A truncated file is an I/O error, not a panic.
    let model_bytes = random_adapter(&model, 2, 0.1, 5).to_gguf().unwrap().to_bytes().unwrap();
    let cut = ModelSource::from_vec(model_bytes[..model_bytes.len() - 100].to_vec());
    assert!(GgufModel::open(cut).is_err());
}

#[test]
fn one_exit_is_the_last_block_and_the_rules_combine_exits() {
    let tokens = prompt(9, 96);
    let model = load(&Tiny { layers: 3, ..Tiny::default() });
    let vocab = model.config().vocab_size;
    let base = logits(&model, vec![], &tokens);
    let run = |exits: Exits| {
        let mut s = state(&model, 32, 16, 2);
        s.set_exits(Some(exits)).unwrap();
        model.forward(&mut s, &tokens, 0).unwrap().to_vec()
    };
    let log_softmax = |x: &[f32]| -> Vec<f32> {
        x.chunks(vocab)
            .flat_map(|row| {
                let max = row.iter().copied().fold(f32::MIN, f32::max);
                let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
                row.iter().map(move |v| v - max - sum.ln()).collect::<Vec<_>>()
            })
            .collect()
    };
    // A vote of the last exit alone is its distribution.
    let alone = run(Exits::new(vec![], ExitRule::Vote, 3).unwrap());
    assert!(max_abs_diff(&alone, &log_softmax(&base)) < 1e-4);
    // No exit is ever sure enough: the last one decides, logits as they are.
    let never = ExitRule::FirstConfident { threshold: 1.0 };
    assert_eq!(run(Exits::new(vec![1, 2], never, 3).unwrap()), base);
    // Any exit is sure enough: the first decides, and differs from the last.
    let always = ExitRule::FirstConfident { threshold: 1e-9 };
    let first = run(Exits::new(vec![1], always, 3).unwrap());
    assert_ne!(first, base);
    // The vote: a distribution per token, at least as confident as the last exit alone.
    let voted = run(Exits::new(vec![1, 2], ExitRule::Vote, 3).unwrap());
    for row in voted.chunks(vocab) {
        let total: f32 = row.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-4);
    }
    assert_ne!(voted, alone);
    // Exits past the model are refused.
    assert!(Exits::new(vec![4], ExitRule::Vote, 3).is_err());
    let mut s = state(&model, 32, 16, 2);
    assert!(s.set_exits(Some(Exits::new(vec![1], ExitRule::Vote, 5).unwrap())).is_err());
}

#[test]
fn a_matrix_lantern_cannot_quantize_to_is_not_merged_and_nothing_is() {
    let tokens = prompt(5, 96);
    let tiny = Tiny { ty: GgmlType::Q4_K, dim: 256, ff: 256, ..Tiny::default() };
    let mut model = load(&tiny);
    let adapter = random_adapter(&model, 2, 0.1, 6);
    let before = logits(&model, vec![], &tokens);
    let err = model.merge_adapter(&adapter, 1.0).unwrap_err();
    assert!(matches!(err, Error::MergeUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("apply it unmerged instead"), "{err}");
    assert_eq!(logits(&model, vec![], &tokens), before);
}

#[test]
fn a_streamed_model_runs_an_adapter_as_the_resident_one_does() {
    let t = Tiny::of(GgmlType::Q4_0);
    let resident = load(&t);
    let adapter = Arc::new(random_adapter(&resident, 3, 0.1, 7));
    let tokens = prompt(9, 96);
    let expected = logits(&resident, vec![(adapter.clone(), 1.0)], &tokens);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.lantern");
    write_container(&open(&t), &path, |_, _| {}).unwrap();
    let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
    let options = StreamOptions { budget: Budget::Bytes(1 << 30), depth: 2, pin: Pin::default() };
    let streamed = Model::load_streamed(file, options).unwrap();
    assert!(logits(&streamed, vec![(adapter, 1.0)], &tokens) == expected);
}

#[test]
fn sparse_ffn_products_add_the_adapter_to_the_active_neurons_only() {
    // Decoding with thresholds on the gate, a sparse model reads only the active neurons'
    // up rows; with an adapter the zeroed neurons must stay zero, as in the dense products.
    let tokens = prompt(12, 96);
    let t = Tiny { dim: 128, ..Tiny::of(GgmlType::Q4_0) };
    let (rows, sparse) = (load(&t), load(&t).with_sparse_ffn());
    let adapter = Arc::new(random_adapter(&rows, 3, 0.1, 8));
    let mut calibrate = state(&rows, 64, 64, 1);
    calibrate.observe_ffn(Some(ActivationHistograms::new(Criterion::Gate, 2, None))).unwrap();
    rows.forward(&mut calibrate, &tokens, 0).unwrap();
    let thresholds = calibrate.observe_ffn(None).unwrap().unwrap().uniform_thresholds(0.5);
    let decode = |model: &Model| {
        let mut s = state(model, 64, 16, 2);
        s.set_ffn_thresholds(Some(thresholds.clone())).unwrap();
        model.set_adapters(&mut s, vec![(adapter.clone(), 1.0)]).unwrap();
        let out: Vec<f32> = tokens
            .iter()
            .flat_map(|&tok| model.forward(&mut s, &[tok], 0).unwrap().to_vec())
            .collect();
        (out, s.ffn_zeroed_share().unwrap())
    };
    let ((expected, share), (got, got_share)) = (decode(&rows), decode(&sparse));
    assert!((0.3..0.7).contains(&share), "{share}");
    assert_eq!(share, got_share);
    assert!(got == expected);
}
