//! Block matrices stored as SWSC tensors in a container: a model of them computes what the
//! same model with each matrix written out densely computes; SWSC tensors that are missing,
//! misshapen or label a cluster that does not exist are errors naming the matrix; a
//! streamed model refuses them.

use half::f16;
use lantern_core::{GgmlType, QTensor, TensorBytes};
use lantern_io::container::ContainerModel;
use lantern_io::container::{write_container_with, WriteOptions};
use lantern_io::stream::{StorageModel, StreamedContainer};
use lantern_io::ModelSource;
use lantern_runtime::{swsc_tensor_names, Error, Matrix, Model, StreamOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use lantern_test_support::models::{max_abs_diff, open, prefill_then_decode, spread, Tiny};

/// An F16 tensor of `dims` with seeded values in ±`scale`.
fn f16_tensor(rng: &mut StdRng, dims: &[usize], scale: f32) -> QTensor {
    let len: usize = dims.iter().product();
    let bytes = (0..len)
        .flat_map(|_| f16::from_f32(scale * rng.random_range(-1.0f32..1.0)).to_le_bytes())
        .collect();
    QTensor::new(GgmlType::F16, dims, TensorBytes::from_vec(bytes)).unwrap()
}

/// `labels` as the I16 tensor that stores them.
fn label_tensor(labels: &[u16]) -> QTensor {
    let bytes = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    QTensor::new(GgmlType::I16, &[labels.len()], TensorBytes::from_vec(bytes)).unwrap()
}

/// Random SWSC tensors for the matrix `name` from `inputs` to `outputs` values: `k`
/// clusters, each channel labelled `j % k`, and a residual of rank `r`.
fn swsc_parts(
    name: &str,
    (inputs, outputs): (usize, usize),
    k: usize,
    r: usize,
    seed: u64,
) -> Vec<(String, QTensor)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let [c, l, us, vt] = swsc_tensor_names(name).unwrap();
    let labels: Vec<u16> = (0..inputs).map(|j| (j % k) as u16).collect();
    let scale = 1.5 / (inputs as f32).sqrt();
    let mut parts =
        vec![(c, f16_tensor(&mut rng, &[k, outputs], scale)), (l, label_tensor(&labels))];
    if r > 0 {
        parts.push((us, f16_tensor(&mut rng, &[r, outputs], scale)));
        parts.push((vt, f16_tensor(&mut rng, &[inputs, r], 0.5)));
    }
    parts
}

/// The default tiny model (`[inputs, outputs]` of each block matrix, in order).
fn shapes() -> [(&'static str, (usize, usize)); 7] {
    [
        ("attn_q", (64, 64)),
        ("attn_k", (64, 32)),
        ("attn_v", (64, 32)),
        ("attn_output", (64, 64)),
        ("ffn_gate", (64, 128)),
        ("ffn_up", (64, 128)),
        ("ffn_down", (128, 64)),
    ]
}

/// Every block matrix of the tiny model as random SWSC tensors (rank 0 for the values, so
/// both forms occur).
fn all_swsc() -> Vec<(String, Vec<(String, QTensor)>)> {
    let mut out = Vec::new();
    for layer in 0..2 {
        for (i, (part, dims)) in shapes().into_iter().enumerate() {
            let name = format!("blk.{layer}.{part}.weight");
            let r = if part == "attn_v" { 0 } else { 3 + i };
            let parts = swsc_parts(&name, dims, dims.0 / 4, r, (layer * 7 + i) as u64);
            out.push((name, parts));
        }
    }
    out
}

/// The tiny model written as a container in `dir` with `options`.
fn write(dir: &tempfile::TempDir, options: WriteOptions) -> std::path::PathBuf {
    let path = dir.path().join("m.lantern");
    write_container_with(&open(&Tiny::of(GgmlType::F32)), &path, options, |_, _| {}).unwrap();
    path
}

fn load(path: &std::path::Path) -> lantern_runtime::Result<Model> {
    Model::load(&ContainerModel::open(ModelSource::read(path).unwrap()).unwrap())
}

fn with_substitutes(substitutes: Vec<(String, Vec<(String, QTensor)>)>) -> WriteOptions {
    WriteOptions { substitutes, ..WriteOptions::default() }
}

/// Both forms read the input as f32 and multiply f16 factors in f32, so they differ only in
/// the order of the sums (about 1e-6 relative) and in what that order changes in the f16
/// KV cache's rounding (2^-11 of one value): 1e-3 of the logits' spread bounds both.
#[test]
fn swsc_matrices_compute_what_their_dense_form_computes() {
    let dir = tempfile::tempdir().unwrap();
    let swsc = load(&write(&dir, with_substitutes(all_swsc()))).unwrap();
    let p = swsc.weights().layers[1].projections.as_ref().unwrap();
    assert!(p.iter().all(|m| matches!(m, Matrix::SharedColumns(_))));
    let Matrix::SharedColumns(down) = &p.down else { unreachable!() };
    assert_eq!((down.clusters(), down.rank(), down.row_len(), down.n_rows()), (32, 9, 128, 64));

    // The same matrices written out densely, in F32: the same layer-major order.
    let matrices =
        swsc.weights().layers.iter().flat_map(|l| l.projections.as_ref().unwrap().iter());
    let dense: Vec<(String, QTensor)> = all_swsc()
        .into_iter()
        .zip(matrices)
        .map(|((name, _), m)| {
            let bytes = m.dequantize().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
            let dims = [m.row_len(), m.n_rows()];
            (name, QTensor::new(GgmlType::F32, &dims, TensorBytes::from_vec(bytes)).unwrap())
        })
        .collect();
    let dense_dir = tempfile::tempdir().unwrap();
    let options = WriteOptions { replacements: dense, ..WriteOptions::default() };
    let dense = load(&write(&dense_dir, options)).unwrap();
    for threads in [1, 2] {
        let (a, b) =
            (prefill_then_decode(&swsc, 12, threads), prefill_then_decode(&dense, 12, threads));
        let diff = max_abs_diff(&a, &b);
        assert!(diff <= 1e-3 * spread(&b), "{threads} threads: {diff} of {}", spread(&b));
    }
    // A token reads the SWSC bytes: factors and labels.
    assert!(swsc.bytes_per_token() < dense.bytes_per_token());
    // Sparse FFN copies skip SWSC downs, which keep the dense product.
    assert_eq!(swsc.with_sparse_ffn().sparse_ffn_bytes(), 0);
}

/// The error a container with `substitutes` gives when loaded.
fn load_error(substitutes: Vec<(String, Vec<(String, QTensor)>)>) -> String {
    let dir = tempfile::tempdir().unwrap();
    match load(&write(&dir, with_substitutes(substitutes))) {
        Err(e @ Error::InvalidSwsc { .. }) => e.to_string(),
        other => panic!("expected InvalidSwsc, got {other:?}"),
    }
}

#[test]
fn corrupt_swsc_tensors_are_errors_naming_the_matrix() {
    let name = "blk.1.ffn_up.weight";
    let good = || swsc_parts(name, (64, 128), 16, 4, 9);
    let named = |parts| vec![(name.to_string(), parts)];

    // A label not below k.
    let mut parts = good();
    let mut labels: Vec<u16> = (0..64).map(|j| (j % 16) as u16).collect();
    labels[5] = 16;
    parts[1].1 = label_tensor(&labels);
    let err = load_error(named(parts));
    assert!(err.contains(name) && err.contains("channel 5 has label 16"), "{err}");

    // Labels of the wrong length, or not I16.
    let mut parts = good();
    parts[1].1 = label_tensor(&[0; 63]);
    let err = load_error(named(parts));
    assert!(err.contains(name) && err.contains("[63, 4]"), "{err}");
    let mut parts = good();
    parts[1].1 = f16_tensor(&mut StdRng::seed_from_u64(1), &[64], 1.0);
    assert!(load_error(named(parts)).contains("labels are F16"));

    // Centroids for the wrong outputs, and more clusters than inputs.
    let mut parts = good();
    parts[0].1 = f16_tensor(&mut StdRng::seed_from_u64(1), &[16, 127], 1.0);
    let err = load_error(named(parts));
    assert!(err.contains(name) && err.contains("expected [4, 127]"), "{err}");
    let mut parts = good();
    parts[0].1 = f16_tensor(&mut StdRng::seed_from_u64(1), &[65, 128], 1.0);
    assert!(load_error(named(parts)).contains("65 clusters, expected 1 to 64"));

    // Residual factors of different ranks, and a quantized factor.
    let mut parts = good();
    parts[3].1 = f16_tensor(&mut StdRng::seed_from_u64(1), &[64, 5], 1.0);
    assert!(load_error(named(parts)).contains("V_r^T has shape [64, 5], expected [64, 4]"));
    let mut parts = good();
    parts[3].1 = parts[3].1.requantize(GgmlType::Q8_0).unwrap();
    let err = load_error(named(parts));
    assert!(err.contains("V_r^T has type Q8_0"), "{err}");

    // One residual factor without the other; labels without centroids.
    for (drop, says) in [(3, "swsc_us without blk.1.ffn_up.swsc_vt"), (0, "swsc_centroids missing")]
    {
        let mut parts = good();
        parts.remove(drop);
        let err = load_error(named(parts));
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn streaming_refuses_swsc_matrices() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, with_substitutes(all_swsc()));
    let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
    match Model::load_streamed(file, StreamOptions::default()) {
        Err(e @ Error::SwscNotStreamed { .. }) => {
            assert!(e.to_string().contains("blk.0.attn_q.weight"), "{e}");
        }
        other => panic!("expected SwscNotStreamed, got {other:?}"),
    }
}
