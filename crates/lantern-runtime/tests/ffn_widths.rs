//! Blocks with fewer FFN neurons than `n_ff` (pruned): each block computes with its own
//! width, exactly what the full block computes with the pruned neurons' down columns zero;
//! the widths come from the tensors, whose dims must agree.

use lantern_io::container::write_container;
use lantern_io::stream::{StorageModel, StreamedContainer};
use lantern_io::{GgufModel, GgufWriter, ModelSource, Value};
use lantern_runtime::calibration::ActivationHistograms;
use lantern_runtime::{Criterion, Error, FfnThresholds, Model, StreamOptions};

use lantern_test_support::models::{
    load_err, max_abs_diff, open, prefill_then_decode, prompt, spread, state, Tiny,
};

/// The neurons each block of the default fixture (128 wide) keeps: 64, then 96.
fn kept(layer: usize) -> Vec<usize> {
    match layer {
        0 => (0..128).filter(|j| j % 2 == 1).collect(),
        _ => (0..128).filter(|j| j % 4 != 2).collect(),
    }
}

/// `full` with every tensor in F32, each FFN matrix of block `l` (named by its part,
/// `ffn_up`) passed through `ffn(l, part, dims, values)`.
fn rewrite(
    full: &GgufModel,
    ffn: impl Fn(usize, &str, [usize; 2], Vec<f32>) -> (Vec<usize>, Vec<f32>),
) -> GgufModel {
    let mut w = GgufWriter::new();
    for (key, value) in full.metadata().iter() {
        w.metadata(key, value.clone());
    }
    for info in full.gguf().tensors() {
        let tensor = full.tensor(&info.name).unwrap();
        let values = tensor.dequantize().unwrap();
        let block = info.name.strip_prefix("blk.").and_then(|rest| rest.split_once('.'));
        let (dims, values) = match (block, tensor.dims()) {
            (Some((l, part)), &[a, b]) if part.starts_with("ffn_") => {
                ffn(l.parse().unwrap(), part.trim_end_matches(".weight"), [a, b], values)
            }
            _ => (tensor.dims().to_vec(), values),
        };
        w.tensor_f32(info.name.clone(), &dims, &values).unwrap();
    }
    GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap()
}

/// The kept neurons' gate and up rows and down columns.
fn pruned(layer: usize, part: &str, [a, b]: [usize; 2], v: Vec<f32>) -> (Vec<usize>, Vec<f32>) {
    let kept = kept(layer);
    if part == "ffn_down" {
        let values = v.chunks_exact(a).flat_map(|row| kept.iter().map(|&j| row[j])).collect();
        return (vec![kept.len(), b], values);
    }
    (vec![a, kept.len()], kept.iter().flat_map(|&j| v[j * a..(j + 1) * a].to_vec()).collect())
}

/// The full block with the pruned neurons' down columns zero.
fn zeroed(layer: usize, part: &str, [a, b]: [usize; 2], mut v: Vec<f32>) -> (Vec<usize>, Vec<f32>) {
    if part == "ffn_down" {
        let kept = kept(layer);
        for row in v.chunks_exact_mut(a) {
            row.iter_mut()
                .enumerate()
                .filter(|(j, _)| !kept.contains(j))
                .for_each(|(_, w)| *w = 0.0);
        }
    }
    (vec![a, b], v)
}

#[test]
fn pruned_blocks_compute_the_full_blocks_with_their_pruned_columns_zero() {
    let full = open(&Tiny::of(lantern_core::GgmlType::F32));
    let model = Model::load(&rewrite(&full, pruned)).unwrap();
    let c = model.config();
    assert_eq!((c.n_ff, &c.ffn_widths[..]), (128, &[64, 96][..]));
    let expected = prefill_then_decode(&Model::load(&rewrite(&full, zeroed)).unwrap(), 13, 2);
    let got = prefill_then_decode(&model, 13, 2);
    // Only the order of the sums differs.
    assert!(max_abs_diff(&got, &expected) <= 1e-5 * spread(&expected), "{got:?}");
    assert!(max_abs_diff(&got, &prefill_then_decode(&Model::load(&full).unwrap(), 13, 2)) > 1e-3);

    // Streamed from a container, the same model computes the same logits.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pruned.lantern");
    write_container(&rewrite(&full, pruned), &path, |_, _| {}).unwrap();
    let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
    let streamed = Model::load_streamed(file, StreamOptions::default()).unwrap();
    assert_eq!(streamed.config().ffn_widths, [64, 96]);
    assert!(prefill_then_decode(&streamed, 13, 2) == got);
}

#[test]
fn sparsity_follows_each_blocks_width() {
    let full = open(&Tiny::of(lantern_core::GgmlType::F32));
    let model = Model::load(&rewrite(&full, pruned)).unwrap();
    let norms = model.down_column_norms().unwrap().unwrap();
    let up = model.up_row_norms().unwrap().unwrap();
    assert_eq!([norms[0].len(), norms[1].len(), up[0].len(), up[1].len()], [64, 96, 64, 96]);

    let tokens = prompt(20, 96);
    let mut s = state(&model, 64, 64, 1);
    let histograms = ActivationHistograms::new(Criterion::GateUp, 2, Some(norms));
    s.observe_ffn(Some(histograms)).unwrap();
    let dense = model.forward(&mut s, &tokens, 0).unwrap().to_vec();
    let histograms = s.observe_ffn(None).unwrap().unwrap();
    assert_eq!((histograms.count(0), histograms.count(1)), (20 * 64, 20 * 96));
    let thresholds = histograms.uniform_thresholds(0.0);
    assert_eq!(thresholds.layers().iter().map(Vec::len).collect::<Vec<_>>(), [64, 96]);

    // Per-neuron thresholds must have each block's width.
    let mut sparse = state(&model, 64, 64, 1);
    sparse.set_ffn_thresholds(Some(thresholds)).unwrap();
    assert!(model.forward(&mut sparse, &tokens, 0).unwrap() == dense);
    let full_width = FfnThresholds::new(Criterion::Gate, vec![vec![0.0; 128]; 2]).unwrap();
    let err = sparse.set_ffn_thresholds(Some(full_width)).unwrap_err();
    assert!(matches!(err, Error::InvalidSetting { .. }), "{err}");
}

/// A tensor written with wrong dims, and the error it makes: the tensor it names, the
/// dims expected, the dims found.
type ShapeCase = (&'static str, Vec<usize>, &'static str, Vec<usize>, Vec<usize>);

#[test]
fn ffn_matrices_of_disagreeing_widths_are_named() {
    let cases: [ShapeCase; 5] = [
        // Gate pruned, up and down not.
        ("blk.1.ffn_gate.weight", vec![64, 96], "blk.1.ffn_up.weight", vec![64, 96], vec![64, 128]),
        ("blk.0.ffn_up.weight", vec![64, 64], "blk.0.ffn_up.weight", vec![64, 128], vec![64, 64]),
        (
            "blk.0.ffn_down.weight",
            vec![96, 64],
            "blk.0.ffn_down.weight",
            vec![128, 64],
            vec![96, 64],
        ),
        // Wider than n_ff, and not a whole number of 32-value blocks.
        (
            "blk.0.ffn_gate.weight",
            vec![64, 160],
            "blk.0.ffn_gate.weight",
            vec![64, 128],
            vec![64, 160],
        ),
        (
            "blk.0.ffn_gate.weight",
            vec![64, 100],
            "blk.0.ffn_gate.weight",
            vec![64, 96],
            vec![64, 100],
        ),
    ];
    for (written, dims, named, expected_dims, found_dims) in cases {
        let t =
            Tiny { wrong_shape: Some((written, dims)), ..Tiny::of(lantern_core::GgmlType::F32) };
        let err = load_err(&t);
        assert!(
            matches!(&err, Error::TensorShape { tensor, expected, found }
                if tensor == named && *expected == expected_dims && *found == found_dims),
            "{written}: {err:?}"
        );
        assert!(err.to_string().contains(named), "{err}");
    }
}

#[test]
fn a_per_block_feed_forward_length_array_is_read() {
    let full = open(&Tiny::of(lantern_core::GgmlType::F32));
    let pruned = rewrite(&full, pruned);
    // llama.cpp's form: one length per block.
    let mut w = GgufWriter::new();
    for (key, value) in pruned.metadata().iter() {
        w.metadata(key, value.clone());
    }
    w.metadata("llama.feed_forward_length", Value::from(vec![64u32, 96]));
    for info in pruned.gguf().tensors() {
        let t = pruned.tensor(&info.name).unwrap();
        w.tensor(info.name.clone(), t.ty(), t.dims(), t.bytes().to_vec()).unwrap();
    }
    let file = GgufModel::open(ModelSource::from_vec(w.to_bytes().unwrap())).unwrap();
    let c = Model::load(&file).unwrap().config().clone();
    assert_eq!((c.n_ff, c.ffn_widths), (96, vec![64, 96]));

    // An array that does not name every block, or blocks wider than it says, are errors.
    let short = vec![("llama.feed_forward_length", Value::from(vec![128u32]))];
    let err = load_err(&Tiny { set_keys: short, ..Tiny::default() });
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    let narrow = vec![("llama.feed_forward_length", Value::from(vec![128u32, 96]))];
    let err = load_err(&Tiny { set_keys: narrow, ..Tiny::default() });
    assert!(matches!(&err, Error::TensorShape { tensor, .. } if tensor == "blk.1.ffn_gate.weight"));
}
