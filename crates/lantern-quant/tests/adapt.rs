//! LoRA tuning on tiny random models: the loss falls, only the window learns, a seed gives
//! one adapter, a resumed run ends where an uninterrupted one does, and the runtime, running
//! the trained adapter, finds the training text likelier than the base model does.

use std::ops::ControlFlow;
use std::sync::Arc;

use lantern_core::GgmlType;
use lantern_quant::{Checkpoints, Depth, Error, TuneConfig, Tuner};
use lantern_runtime::{BlockMatrix, LoraAdapter, Model};
use lantern_test_support::models::{load, state, Tiny};

/// A 4-block llama with 8-bit weights, so that the runtime computes what the twin does
/// within the activations' 8-bit rounding.
fn model() -> Model {
    load(&Tiny { layers: 4, ..Tiny::of(GgmlType::Q8_0) })
}

/// A phrase of 12 tokens said over and over: `n` tokens of it.
fn repeated_text(n: usize) -> Vec<u32> {
    (0..n).map(|i| [5, 17, 3, 42, 8, 8, 61, 2, 30, 77, 11, 50][i % 12]).collect()
}

fn config(depth: Depth, steps: usize) -> TuneConfig {
    TuneConfig {
        rank: 4,
        depth,
        seq_len: 16,
        sequences: 2,
        learning_rate: 1e-2,
        steps,
        seed: 7,
        threads: Some(1),
        ..TuneConfig::default()
    }
}

fn windows(window: usize) -> Depth {
    Depth::Windows { window: Some(window), exits: None }
}

fn losses(tuner: &mut Tuner<'_>) -> Vec<f64> {
    let mut losses = Vec::new();
    tuner
        .run(None, |r| {
            losses.push(r.loss);
            ControlFlow::Continue(())
        })
        .unwrap();
    losses
}

/// The adapter of `config` on 200 tokens of the repeated text.
fn trained(model: &Model, config: TuneConfig) -> LoraAdapter {
    let mut tuner = Tuner::new(model, config, repeated_text(200)).unwrap();
    tuner.run(None, |_| ControlFlow::Continue(())).unwrap();
    tuner.adapter().unwrap()
}

#[test]
fn the_loss_falls_on_a_repeated_text() {
    let model = model();
    for depth in [Depth::Full, windows(2)] {
        let mut tuner = Tuner::new(&model, config(depth.clone(), 40), repeated_text(200)).unwrap();
        let losses = losses(&mut tuner);
        // With windows the exits alternate: compare the same exits, early and late.
        let (first, last) = (losses[0] + losses[1], losses[38] + losses[39]);
        assert!(last < 0.5 * first, "{depth:?}: {losses:?}");
    }
}

#[test]
fn a_step_trains_its_window_only() {
    let model = model();
    let fresh = Tuner::new(&model, config(windows(1), 2), repeated_text(100)).unwrap();
    let fresh = fresh.adapter().unwrap();
    let mut tuner = Tuner::new(&model, config(windows(1), 2), repeated_text(100)).unwrap();
    assert_eq!(tuner.plan().exits(), [1, 2, 3, 4]);
    let first = tuner.step().unwrap();
    assert_eq!((first.exit, first.window.clone()), (1, 0..1));
    let after_one = tuner.adapter().unwrap();
    for (l, m, u) in after_one.updates() {
        // B starts at zero, so A's first gradient is zero: the first step moves B only.
        let before = fresh.update(l, m).unwrap();
        assert_eq!(u.b() == before.b(), l != 0, "block {l} {m:?}");
    }
    let second = tuner.step().unwrap();
    assert_eq!(second.window, 1..2);
    let after_two = tuner.adapter().unwrap();
    for (l, m, u) in after_two.updates() {
        assert_eq!(u.b() == after_one.update(l, m).unwrap().b(), l != 1, "block {l} {m:?}");
    }
    assert_eq!(after_two.exits(), [1, 2, 3, 4]);
}

#[test]
fn full_depth_is_one_window_of_every_block() {
    let model = model();
    let full = trained(&model, config(Depth::Full, 3));
    assert!(full == trained(&model, config(windows(4), 3)));
    assert!(full.exits().is_empty());
    assert_eq!(full.updates().count(), 4 * 7);
}

#[test]
fn a_seed_gives_one_adapter() {
    let model = model();
    let a = trained(&model, config(windows(2), 4));
    assert!(a == trained(&model, config(windows(2), 4)));
    assert!(a != trained(&model, TuneConfig { seed: 8, ..config(windows(2), 4) }));
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let model = model();
    let dir = tempfile::tempdir().unwrap();
    let text = repeated_text(200);
    let straight = trained(&model, config(windows(2), 8));

    let checkpoints = Checkpoints { path: dir.path().join("run.ckpt"), every: 3 };
    let mut first = Tuner::new(&model, config(windows(2), 8), text.clone()).unwrap();
    first
        .run(Some(&checkpoints), |r| {
            if r.step == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(first.steps_done(), 4);
    drop(first);

    let mut second = Tuner::new(&model, config(windows(2), 8), text).unwrap();
    second.resume(&checkpoints.path).unwrap();
    assert_eq!(second.steps_done(), 4);
    second.run(Some(&checkpoints), |_| ControlFlow::Continue(())).unwrap();
    // (Not assert_eq!: an adapter's values would fill pages.)
    assert!(second.adapter().unwrap() == straight, "the resumed run ended elsewhere");
}

#[test]
fn a_checkpoint_of_another_run_is_refused() {
    let model = model();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ckpt");
    let mut tuner = Tuner::new(&model, config(windows(2), 1), repeated_text(100)).unwrap();
    tuner.step().unwrap();
    tuner.save_checkpoint(&path).unwrap();

    let other_rank = TuneConfig { rank: 2, ..config(windows(2), 1) };
    let mut other = Tuner::new(&model, other_rank, repeated_text(100)).unwrap();
    let err = other.resume(&path).unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointMismatch { setting, .. } if setting == "rank"),
        "{err}"
    );
    assert_eq!(other.steps_done(), 0);

    let mut other_text = Tuner::new(&model, config(windows(2), 1), repeated_text(101)).unwrap();
    let err = other_text.resume(&path).unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointMismatch { setting, .. } if setting == "text"),
        "{err}"
    );

    let other_model = load(&Tiny { layers: 4, seed: 9, ..Tiny::of(GgmlType::Q8_0) });
    let mut on_other = Tuner::new(&other_model, config(windows(2), 1), repeated_text(100)).unwrap();
    let err = on_other.resume(&path).unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointMismatch { setting, .. } if setting == "model"),
        "{err}"
    );

    std::fs::write(&path, b"not a checkpoint").unwrap();
    assert!(tuner.resume(&path).is_err());
    assert_eq!(tuner.steps_done(), 1);
}

/// The runtime's mean next-token cross-entropy over `tokens`, with `adapter` applied.
fn runtime_loss(model: &Model, adapter: Option<LoraAdapter>, tokens: &[u32]) -> f64 {
    let mut s = state(model, 64, 16, 1);
    if let Some(a) = adapter {
        model.set_adapters(&mut s, vec![(Arc::new(a), 1.0)]).unwrap();
    }
    let vocab = model.config().vocab_size;
    let logits = model.forward(&mut s, &tokens[..tokens.len() - 1], 0).unwrap();
    let n = tokens.len() - 1;
    let total: f64 = logits
        .chunks_exact(vocab)
        .zip(&tokens[1..])
        .map(|(row, &t)| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&v| f64::from(v - max).exp()).sum();
            sum.ln() - f64::from(row[t as usize] - max)
        })
        .sum();
    total / n as f64
}

#[test]
fn the_runtime_finds_the_training_text_likelier_with_the_adapter() {
    let model = model();
    let text = repeated_text(49);
    let base = runtime_loss(&model, None, &text);
    for depth in [Depth::Full, windows(2)] {
        let adapter = trained(&model, config(depth.clone(), 30));
        let tuned = runtime_loss(&model, Some(adapter), &text);
        assert!(tuned < 0.5 * base, "{depth:?}: base {base}, tuned {tuned}");
    }
}

#[test]
fn an_untrained_adapter_leaves_the_logits_as_they_were() {
    let model = model();
    let tuner = Tuner::new(&model, config(Depth::Full, 0), repeated_text(40)).unwrap();
    let adapter = tuner.adapter().unwrap();
    assert!(adapter.updates().all(|(_, _, u)| u.b().iter().all(|&v| v == 0.0)));
    let tokens = repeated_text(20);
    let base = state(&model, 64, 16, 1);
    let mut base = base;
    let plain = model.forward(&mut base, &tokens, 0).unwrap().to_vec();
    let mut adapted = state(&model, 64, 16, 1);
    model.set_adapters(&mut adapted, vec![(Arc::new(adapter), 1.0)]).unwrap();
    assert_eq!(model.forward(&mut adapted, &tokens, 0).unwrap(), &plain[..]);
}

#[test]
fn a_diverging_run_stops_with_the_step_before_it_checkpointed() {
    let model = model();
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = Checkpoints { path: dir.path().join("run.ckpt"), every: 1 };
    let config = TuneConfig { learning_rate: 1e30, ..config(Depth::Full, 5) };
    let mut tuner = Tuner::new(&model, config.clone(), repeated_text(100)).unwrap();
    let err = tuner.run(Some(&checkpoints), |_| ControlFlow::Continue(())).unwrap_err();
    assert!(matches!(err, Error::NonFiniteLoss { step: 2 }), "{err}");
    assert_eq!(err.to_string(), "non-finite loss at step 2 (try a lower learning rate)");
    let mut resumed = Tuner::new(&model, config, repeated_text(100)).unwrap();
    resumed.resume(&checkpoints.path).unwrap();
    assert_eq!(resumed.steps_done(), 1);
}

#[test]
fn bad_settings_are_refused_before_training() {
    let model = model();
    let text = repeated_text(100);
    let refuse = |config: TuneConfig, text: Vec<u32>| Tuner::new(&model, config, text).unwrap_err();
    let budget = TuneConfig { memory_budget: Some(10_000), ..config(Depth::Full, 1) };
    let err = refuse(budget, text.clone());
    assert!(matches!(err, Error::TuneBudget { budget: 10_000, .. }), "{err}");
    assert!(err.to_string().contains("too small to train"), "{err}");
    let err = refuse(config(Depth::Full, 1), repeated_text(16));
    assert!(matches!(err, Error::TooFewTokens { tokens: 16, needed: 17 }), "{err}");
    let exits = Depth::Windows { window: Some(2), exits: Some(vec![2, 5]) };
    let err = refuse(config(exits, 1), text.clone());
    assert!(matches!(err, Error::TuneSetting { name: "exits", .. }), "{err}");
    let err = refuse(config(Depth::Full, 1), vec![500; 40]);
    assert!(matches!(err, Error::TuneSetting { name: "tokens", .. }), "{err}");
    let err = refuse(TuneConfig { rank: 0, ..config(Depth::Full, 1) }, text.clone());
    assert!(matches!(err, Error::TuneSetting { name: "rank", .. }), "{err}");

    let qwen3 = load(&Tiny { arch: "qwen3", ..Tiny::of(GgmlType::Q8_0) });
    let err = Tuner::new(&qwen3, config(Depth::Full, 1), text).unwrap_err();
    assert!(matches!(err, Error::TuneUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("two halves"), "{err}");
}

#[test]
fn targets_choose_the_matrices_adapted() {
    let model = model();
    let targets = vec![BlockMatrix::AttnV, BlockMatrix::AttnQ, BlockMatrix::AttnQ];
    let adapter = trained(&model, TuneConfig { targets, ..config(windows(2), 2) });
    let adapted: Vec<_> = adapter.updates().map(|(l, m, _)| (l, m)).collect();
    let expected: Vec<_> =
        (0..4).flat_map(|l| [(l, BlockMatrix::AttnQ), (l, BlockMatrix::AttnV)]).collect();
    assert_eq!(adapted, expected);
}
