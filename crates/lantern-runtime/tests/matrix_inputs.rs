//! Observing the values each block's matrices multiply, for calibrating re-quantization.

use std::sync::{Arc, Mutex};

use lantern_runtime::calibration::{InputSite, MatrixInputs};
use lantern_runtime::{Criterion, FfnThresholds};

use lantern_test_support::models::{load, prompt, state, Tiny};

/// One call: layer, site, tokens, values.
type Call = (usize, InputSite, usize, Vec<f32>);

/// Every call.
#[derive(Clone, Default)]
struct Record(Arc<Mutex<Vec<Call>>>);

impl MatrixInputs for Record {
    fn observe(&mut self, layer: usize, site: InputSite, x: &[f32], n: usize) {
        self.0.lock().unwrap().push((layer, site, n, x.to_vec()));
    }
}

#[test]
fn each_site_of_each_block_is_seen_once_per_batch_without_changing_the_logits() {
    let t = Tiny::default();
    let model = load(&t);
    let tokens = prompt(12, t.vocab);
    let expected = model.forward(&mut state(&model, 32, 8, 2), &tokens, 0).unwrap().to_vec();

    let record = Record::default();
    let mut s = state(&model, 32, 8, 2);
    assert!(s.observe_matrix_inputs(Some(Box::new(record.clone()))).is_none());
    assert!(model.forward(&mut s, &tokens, 0).unwrap() == expected);
    assert!(s.observe_matrix_inputs(None).is_some());
    model.forward(&mut s, &tokens[..1], 0).unwrap();

    let calls = record.0.lock().unwrap();
    // Batches of 8 then 4 tokens, each through 2 blocks of 4 sites; nothing after `None`.
    assert_eq!(calls.len(), 2 * 2 * 4);
    let widths = [t.dim, t.dim, t.dim, t.ff];
    for (i, (layer, site, n, x)) in calls.iter().enumerate() {
        let (batch, rest) = (i / 8, i % 8);
        assert_eq!((*layer, *site), (rest / 4, InputSite::ALL[rest % 4]), "call {i}");
        assert_eq!(*n, [8, 4][batch]);
        assert_eq!(x.len(), n * widths[rest % 4]);
    }
    // The normed stream before attention: each token's values have an RMS near the gains'.
    let (_, _, _, x) = &calls[0];
    let gains = &model.weights().layers[0].attn_norm;
    let rms = |v: &[f32]| (v.iter().map(|a| a * a).sum::<f32>() / v.len() as f32).sqrt();
    let ratio = rms(&x[..t.dim]) / rms(gains);
    assert!((0.5..2.0).contains(&ratio), "{ratio}");
}

#[test]
fn the_ffn_down_input_is_seen_after_zeroing() {
    let t = Tiny::default();
    let model = load(&t);
    let record = Record::default();
    let mut s = state(&model, 64, 64, 1);
    let thresholds = FfnThresholds::per_layer(Criterion::Gate, vec![1e9; 2]).unwrap();
    s.set_ffn_thresholds(Some(thresholds)).unwrap();
    s.observe_matrix_inputs(Some(Box::new(record.clone())));
    model.forward(&mut s, &prompt(10, t.vocab), 0).unwrap();
    let calls = record.0.lock().unwrap();
    let down: Vec<_> = calls.iter().filter(|c| c.1 == InputSite::FfnDown).collect();
    assert_eq!(down.len(), 2);
    assert!(down.iter().all(|c| c.3.iter().all(|&v| v == 0.0)));
    let ffn = calls.iter().find(|c| c.1 == InputSite::Ffn).unwrap();
    assert!(ffn.3.iter().any(|&v| v != 0.0));
}
