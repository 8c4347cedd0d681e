//! The twin against the runtime's forward pass, and training on a tiny random model.

use std::sync::{Arc, Mutex};

use lantern_core::GgmlType;
use lantern_runtime::calibration::{InputSite, MatrixInputs};
use lantern_runtime::Model;
use lantern_test_support::models::{load, max_abs_diff, open, prompt, spread, state, Tiny};

use super::*;

/// The values a block's site multiplied.
type Observed = (usize, InputSite, Vec<f32>);

/// Keeps every value each block's sites multiply.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Observed>>>);

impl MatrixInputs for Seen {
    fn observe(&mut self, layer: usize, site: InputSite, x: &[f32], _n: usize) {
        self.0.lock().unwrap().push((layer, site, x.to_vec()));
    }
}

impl Seen {
    fn at(&self, layer: usize, site: InputSite) -> Vec<f32> {
        let seen = self.0.lock().unwrap();
        seen.iter().find(|(l, s, _)| *l == layer && *s == site).unwrap().2.clone()
    }
}

/// Runs `tokens` through `model` with `observer` watching.
fn run(model: &Model, tokens: &[u32], observer: Box<dyn MatrixInputs>) {
    let mut s = state(model, 64, 64, 1);
    s.observe_matrix_inputs(Some(observer));
    model.forward(&mut s, tokens, tokens.len()).unwrap();
}

#[test]
fn the_twin_computes_what_the_runtime_does() {
    // F32 weights: the runtime then multiplies f32 activations, and differs from the twin
    // only by its f16 KV cache and query.
    let tiny = Tiny { layers: 3, ..Tiny::of(GgmlType::F32) };
    let model = load(&tiny);
    let tokens = prompt(20, tiny.vocab);
    let seen = Seen::default();
    run(&model, &tokens, Box::new(seen.clone()));

    let original = Original::load(&model).unwrap();
    let shape = Shape::of(model.config());
    let rotation = Rotation::new(&shape, tokens.len()).unwrap();
    let streams = Streams::embed(&model, &[&tokens]).unwrap();
    let mut x = streams.fp[0].clone();
    for l in 0..2 {
        x = twin::block(&shape, &rotation, &original.blocks[l], &x).unwrap();
        let next = twin::rms_norm(&x, &original.blocks[l + 1].attn_norm, shape.eps()).unwrap();
        let expected = seen.at(l + 1, InputSite::Attention);
        let got = twin::values(&next).unwrap();
        let err = max_abs_diff(&got, &expected);
        assert!(err < 2e-3 * spread(&expected), "block {l}: {err} of {}", spread(&expected));
    }
}

/// The Gram matrices of `model`'s inputs on `chunks`.
fn grams(model: &Model, chunks: &[&[u32]]) -> Grams {
    let c = model.config();
    let grams = Grams::new(c.n_layers, [c.d_model, c.n_heads * c.head_dim, c.d_model, c.n_ff]);
    for chunk in chunks {
        run(model, chunk, Box::new(grams.clone()));
    }
    grams
}

#[test]
fn training_lowers_each_targets_loss_and_stores_the_type_asked_for() {
    let tiny = Tiny { layers: 3, ..Tiny::of(GgmlType::Q8_0) };
    let model = load(&tiny);
    let tokens: Vec<Vec<u32>> =
        (0..4).map(|i| prompt(24 + i, tiny.vocab).into_iter().skip(i).collect()).collect();
    let chunks: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
    let grams = grams(&model, &chunks);
    for target in [Target::Block, Target::Window(2), Target::Downstream] {
        let options = Reconstruction { target, steps: 48, learning_rate: 1e-2 };
        let mut reports = Vec::new();
        let blocks = reconstruct(&open(&tiny), GgmlType::Q3_0, &chunks, &grams, &options, |r| {
            reports.push(r.clone())
        })
        .unwrap();
        assert_eq!(blocks.len(), tiny.layers * 7);
        let windows =
            if target == Target::Window(2) { vec![0..2, 2..3] } else { vec![0..1, 1..2, 2..3] };
        assert_eq!(reports.iter().map(|r| r.blocks.clone()).collect::<Vec<_>>(), windows);
        for r in &reports {
            assert!(r.loss_after < r.loss_before, "{target:?}: {r:?}");
        }
        let original = model.weights().layers[0].projections.as_ref().unwrap();
        let names = BlockMatrix::tensor_names(0);
        for (((name, q), o), expected) in blocks.iter().zip(original.iter()).zip(&names) {
            assert_eq!(name, expected);
            assert_eq!((q.ty(), q.dims()), (GgmlType::Q3_0, o.blocks().unwrap().dims()));
        }
    }
}

#[test]
fn bad_requests_are_errors() {
    let tiny = Tiny::of(GgmlType::Q8_0);
    let model = load(&tiny);
    let tokens = prompt(16, tiny.vocab);
    let chunks = [tokens.as_slice()];
    let grams = grams(&model, &chunks);
    let options = Reconstruction::default();
    let err = reconstruct(&open(&tiny), GgmlType::Q4_1, &chunks, &grams, &options, |_| {});
    assert!(matches!(err, Err(Error::NoGrid(GgmlType::Q4_1))), "{err:?}");
    let err = reconstruct(&open(&tiny), GgmlType::Q4_0, &[], &grams, &options, |_| {});
    assert!(matches!(err, Err(Error::Calibration(_))), "{err:?}");
    let window = Reconstruction { target: Target::Window(0), ..Reconstruction::default() };
    let err = reconstruct(&open(&tiny), GgmlType::Q4_0, &chunks, &grams, &window, |_| {});
    assert!(matches!(err, Err(Error::Calibration(_))), "{err:?}");
    let empty = Grams::new(1, [1, 1, 1, 1]);
    let err = reconstruct(&open(&tiny), GgmlType::Q4_0, &chunks, &empty, &options, |_| {});
    assert!(matches!(err, Err(Error::Calibration(_))), "{err:?}");
}
