//! FFN activation sparsity: zero thresholds are the dense model bit for bit, calibrated
//! thresholds zero the share of neurons they were calibrated for, and bad thresholds are
//! refused.

use lantern_core::GgmlType;
use lantern_runtime::calibration::ActivationHistograms;
use lantern_runtime::{Criterion, Error, FfnThresholds};

use lantern_test_support::models::{load, max_abs_diff, prompt, spread, state, Tiny, WEIGHT_TYPES};

#[test]
fn zero_thresholds_give_the_dense_logits() {
    let tokens = prompt(9, 96);
    for ty in WEIGHT_TYPES {
        let model = load(&Tiny::of(ty));
        let mut dense = state(&model, 32, 16, 2);
        let expected = model.forward(&mut dense, &tokens, 0).unwrap().to_vec();
        let mut sparse = state(&model, 32, 16, 2);
        for criterion in [Criterion::Gate, Criterion::GateUp] {
            let zero = FfnThresholds::per_layer(criterion, vec![0.0; 2]).unwrap();
            sparse.set_ffn_thresholds(Some(zero)).unwrap();
            sparse.truncate(0);
            assert!(model.forward(&mut sparse, &tokens, 0).unwrap() == expected, "{ty:?}");
            assert_eq!(sparse.ffn_zeroed_share(), Some(0.0));
        }
    }
}

#[test]
fn calibrated_thresholds_zero_their_share_and_change_the_logits() {
    let model = load(&Tiny::default());
    let norms = model.down_column_norms().unwrap().unwrap();
    assert_eq!((norms.len(), norms[0].len()), (2, 128));
    let up = model.up_row_norms().unwrap().unwrap();
    assert_eq!((up.len(), up[1].len()), (2, 128));
    // Rows of 64 weights up to 1.5/√64 each: norms above 0, at most 1.5 (and rounding).
    assert!(up.iter().flatten().all(|&n| n > 0.0 && n <= 1.6), "{up:?}");
    let tokens = prompt(40, 96);
    for (criterion, weights) in [(Criterion::Gate, None), (Criterion::GateUp, Some(norms))] {
        let mut s = state(&model, 64, 64, 1);
        s.observe_ffn(Some(ActivationHistograms::new(criterion, 2, weights))).unwrap();
        let dense = model.forward(&mut s, &tokens, 0).unwrap().to_vec();
        let histograms = s.observe_ffn(None).unwrap().unwrap();
        assert_eq!(histograms.count(0), 40 * 128);
        assert_eq!(histograms.count(1), 40 * 128);

        let mut sparse = state(&model, 64, 64, 1);
        sparse.set_ffn_thresholds(Some(histograms.uniform_thresholds(0.4))).unwrap();
        let logits = model.forward(&mut sparse, &tokens, 0).unwrap().to_vec();
        // The same tokens the thresholds were read from: 40% zeroed, within the bins' width
        // (and, for per-neuron thresholds, the rounding of dividing by the weights).
        let share = sparse.ffn_zeroed_share().unwrap();
        assert!((0.395..0.42).contains(&share), "{criterion}: {share}");
        assert!(logits != dense);
    }
}

#[test]
fn thresholds_must_match_the_layers() {
    let model = load(&Tiny::default());
    let mut s = state(&model, 8, 8, 1);
    let three = FfnThresholds::per_layer(Criterion::Gate, vec![0.1; 3]).unwrap();
    assert!(matches!(s.set_ffn_thresholds(Some(three)), Err(Error::InvalidSetting { .. })));
    let ragged = FfnThresholds::new(Criterion::GateUp, vec![vec![0.1], vec![0.1; 5]]).unwrap();
    assert!(matches!(s.set_ffn_thresholds(Some(ragged)), Err(Error::InvalidSetting { .. })));
    let histograms = ActivationHistograms::new(Criterion::Gate, 3, None);
    assert!(matches!(s.observe_ffn(Some(histograms)), Err(Error::InvalidSetting { .. })));
}

#[test]
fn skipped_rows_and_columns_give_the_logits_of_the_zeroed_neurons() {
    // Decoding token by token with thresholds, a sparse model computes only the active
    // neurons' down columns (column-major copies of Q4_0 and Q4_1 downs) and, with thresholds
    // on the gate, only their up rows (read from the file layout). Q4_0's copies round as its
    // rows do, so the logits are the rows' bit for bit; Q4_1's round once per block instead
    // of in eight lanes, and Q5_0's file rows do not round as its interleaved rows, so those
    // are close (the 8-bit activations of the next matrices often absorb the difference).
    let tokens = prompt(12, 96);
    for ty in WEIGHT_TYPES {
        let t = Tiny { dim: 128, ..Tiny::of(ty) };
        let (rows, sparse) = (load(&t), load(&t).with_sparse_ffn());
        let has_copies = matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_1);
        assert_eq!(sparse.sparse_ffn_bytes() > 0, has_copies, "{ty:?}");
        for criterion in [Criterion::GateUp, Criterion::Gate] {
            let mut calibrate = state(&rows, 64, 64, 1);
            let histograms = ActivationHistograms::new(criterion, 2, None);
            calibrate.observe_ffn(Some(histograms)).unwrap();
            rows.forward(&mut calibrate, &tokens, 0).unwrap();
            let thresholds = calibrate.observe_ffn(None).unwrap().unwrap().uniform_thresholds(0.5);
            let decode = |model: &lantern_runtime::Model| {
                let mut s = state(model, 64, 16, 2);
                s.set_ffn_thresholds(Some(thresholds.clone())).unwrap();
                let logits: Vec<f32> = tokens
                    .iter()
                    .flat_map(|&tok| model.forward(&mut s, &[tok], 0).unwrap().to_vec())
                    .collect();
                (logits, s.ffn_zeroed_share().unwrap())
            };
            let ((expected, share), (got, got_share)) = (decode(&rows), decode(&sparse));
            assert!((0.4..0.6).contains(&share), "{ty:?} {criterion}: {share}");
            assert_eq!(share, got_share, "{ty:?} {criterion}");
            let rounds_otherwise =
                ty == GgmlType::Q4_1 || (ty == GgmlType::Q5_0 && criterion == Criterion::Gate);
            if rounds_otherwise {
                let diff = max_abs_diff(&got, &expected);
                assert!(diff <= 1e-4 * spread(&expected), "{ty:?} {criterion}: {diff}");
            } else {
                assert!(got == expected, "{ty:?} {criterion}");
            }
        }
    }
}
