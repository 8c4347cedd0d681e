//! SWSC factorizations run by the runtime: `SwscMatrix`'s product is `Swsc::matvec`'s, for
//! one input and a batch, and a model whose block matrices are SWSC factors in a container
//! computes what the model with each matrix replaced by `Swsc::to_dense` computes.

use std::sync::Arc;

use lantern_core::{GgmlType, QTensor, TensorBytes};
use lantern_io::container::{write_container_with, ContainerModel, WriteOptions};
use lantern_io::{ModelFile, ModelSource, Replaced};
use lantern_quant::Swsc;
use lantern_runtime::{Matrix, Model, SwscMatrix, SwscScratch};
use lantern_test_support::models::{max_abs_diff, open, prefill_then_decode, spread, Tiny};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn uniform(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| scale * rng.random_range(-1.0f32..1.0)).collect()
}

fn f32_tensor(values: &[f32], dims: &[usize]) -> QTensor {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    QTensor::new(GgmlType::F32, dims, TensorBytes::from_vec(bytes)).unwrap()
}

/// `swsc`'s tensors as the runtime's matrix.
fn runtime_matrix(swsc: &Swsc) -> SwscMatrix {
    let parts = swsc.tensors("m.weight").unwrap();
    let mut parts = parts.into_iter().map(|(_, t)| t);
    let (centroids, labels) = (parts.next().unwrap(), parts.next().unwrap());
    let residual = parts.next().zip(parts.next());
    SwscMatrix::new("m.weight", centroids, &labels, residual, (swsc.cols(), swsc.rows())).unwrap()
}

/// Both products sum f32 products of the same f16 values in different orders, so they agree
/// to a few f32 roundings of the output's size.
#[test]
fn the_runtime_product_is_the_factorization_s() {
    let (rows, cols) = (96, 160);
    let mut rng = StdRng::seed_from_u64(3);
    let w = uniform(&mut rng, rows * cols, 1.0);
    for (k, r) in [(40, 0), (40, 8), (160, 16)] {
        let swsc = Swsc::builder(k, r).factor(&w, rows, cols).unwrap();
        let matrix = runtime_matrix(&swsc);
        for n in [1, 5] {
            let x = uniform(&mut rng, n * cols, 1.0);
            let mut y = vec![f32::NAN; n * rows];
            matrix.matmul(&x, n, &mut y, &mut SwscScratch::default()).unwrap();
            for (t, y) in y.chunks_exact(rows).enumerate() {
                let mut expected = vec![0.0; rows];
                swsc.matvec(&x[t * cols..(t + 1) * cols], &mut expected).unwrap();
                let scale = expected.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                for (a, b) in y.iter().zip(&expected) {
                    assert!((a - b).abs() <= 1e-5 * scale, "k {k} r {r} n {n}: {a} vs {b}");
                }
            }
        }
        // Shapes that do not fit are errors.
        assert!(matrix.matmul(&[0.0; 3], 1, &mut [0.0; 96], &mut SwscScratch::default()).is_err());
    }
}

/// A block's matrices, by their part of the tensor name.
const BLOCK_MATRICES: [&str; 7] =
    ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// The SWSC model reads each f16 factor and each input as f32 and multiplies in f32; the
/// dense model holds Ŵ = `to_dense()` in f32, summed in another order. The two differ by
/// f32 rounding (about 1e-6 relative) and by what that flips in the f16 KV cache (2^-11 of
/// a value), so 1e-3 of the logits' spread bounds their difference on this tiny model.
#[test]
fn a_swsc_model_computes_what_its_dense_matrices_compute() {
    // The runtime's tiny llama: 2 blocks, d 64, FFN 128, every tensor F32.
    let model = open(&Tiny::of(GgmlType::F32));
    let mut substitutes = Vec::new();
    let mut dense = Vec::new();
    for layer in 0..2 {
        for (i, part) in BLOCK_MATRICES.into_iter().enumerate() {
            let name = format!("blk.{layer}.{part}.weight");
            let w = model.tensor(&name).unwrap();
            let (cols, rows) = (w.row_len(), w.n_rows());
            let energies: Vec<f32> = (0..cols).map(|j| 1.0 + (j % 3) as f32).collect();
            let swsc = Swsc::builder(cols / 4, i % 3 * 4)
                .channel_energies(energies)
                .factor_tensor(&w)
                .unwrap();
            dense.push((name.clone(), f32_tensor(&swsc.to_dense(), &[cols, rows])));
            substitutes.push((name.clone(), swsc.tensors(&name).unwrap()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swsc.lantern");
    let options = WriteOptions { substitutes, ..WriteOptions::default() };
    write_container_with(&model, &path, options, |_, _| {}).unwrap();
    let file = ContainerModel::open(ModelSource::read(&path).unwrap()).unwrap();
    let swsc_model = Model::load(&file).unwrap();
    let first = &swsc_model.weights().layers[0].projections.as_ref().unwrap().wq;
    assert!(matches!(first, Matrix::SharedColumns(_)));

    let base: Arc<dyn ModelFile> = Arc::new(model);
    let dense_model = Model::load(&Replaced::new(base, dense).unwrap()).unwrap();
    for threads in [1, 2] {
        let a = prefill_then_decode(&swsc_model, 12, threads);
        let b = prefill_then_decode(&dense_model, 12, threads);
        let (diff, spread) = (max_abs_diff(&a, &b), spread(&b));
        assert!(diff <= 1e-3 * spread, "{threads} threads: {diff} of {spread}");
    }
}
