//! Re-quantization objectives on a random matrix with correlated, unevenly scaled inputs:
//! the calibrated objectives lower the output error that nearest rounding leaves.

use lantern_core::{GgmlType, QTensor, TensorBytes};
use lantern_quant::{requantize, Error, Gram, Objective};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COLS: usize = 128;
const ROWS: usize = 48;
const VECTORS: usize = 4096;

fn uniform(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Inputs whose channels mix a few shared sources (through `mixing`) and differ in scale,
/// as activations do.
fn inputs(rng: &mut StdRng, mixing: &[f32]) -> Vec<f32> {
    let channel_scale: Vec<f32> = (0..COLS).map(|c| 0.2 + (c % 7) as f32).collect();
    let mut x = Vec::with_capacity(VECTORS * COLS);
    for _ in 0..VECTORS {
        let sources = uniform(rng, 8);
        let noise = uniform(rng, COLS);
        for c in 0..COLS {
            let mixed: f32 = (0..8).map(|s| sources[s] * mixing[s * COLS + c]).sum();
            x.push((mixed + 0.1 * noise[c]) * channel_scale[c]);
        }
    }
    x
}

fn f32_matrix(values: &[f32]) -> QTensor {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    QTensor::new(GgmlType::F32, &[COLS, ROWS], TensorBytes::from_vec(bytes)).unwrap()
}

/// Σ over input vectors of |(W − Ŵ)x|².
fn output_error(w: &[f32], q: &QTensor, x: &[f32]) -> f64 {
    let q = q.dequantize().unwrap();
    let delta: Vec<f32> = w.iter().zip(&q).map(|(a, b)| a - b).collect();
    x.chunks_exact(COLS)
        .map(|x| {
            delta
                .chunks_exact(COLS)
                .map(|row| f64::from(row.iter().zip(x).map(|(d, v)| d * v).sum::<f32>()).powi(2))
                .sum::<f64>()
        })
        .sum()
}

#[test]
fn calibrated_objectives_cut_the_output_error_of_nearest_rounding() {
    let mut rng = StdRng::seed_from_u64(3);
    let w = uniform(&mut rng, ROWS * COLS);
    let mixing = uniform(&mut rng, 8 * COLS);
    let x = inputs(&mut rng, &mixing);
    // Other inputs of the same kind: what the matrix meets after calibration.
    let held_out = inputs(&mut rng, &mixing);
    let mut gram = Gram::new(COLS);
    for batch in x.chunks(COLS * 512) {
        gram.add(batch, batch.len() / COLS);
    }
    assert_eq!(gram.vectors(), VECTORS as u64);
    let matrix = f32_matrix(&w);
    for ty in [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0] {
        let error = |objective| {
            let q = requantize(&matrix, ty, objective, Some(&gram)).unwrap();
            assert_eq!((q.ty(), q.dims()), (ty, matrix.dims()));
            (output_error(&w, &q, &x), output_error(&w, &q, &held_out))
        };
        let nearest = error(Objective::Nearest);
        let search = error(Objective::ScaleSearch);
        let feedback = error(Objective::ErrorFeedback);
        for (seen, name) in [(0, "calibration"), (1, "held-out")] {
            let pick = |e: (f64, f64)| if seen == 0 { e.0 } else { e.1 };
            let (n, s, f) = (pick(nearest), pick(search), pick(feedback));
            assert!(s < n * 0.95, "{ty:?} {name}: search {s} vs nearest {n}");
            assert!(f < n * 0.5, "{ty:?} {name}: feedback {f} vs nearest {n}");
        }
    }
}

#[test]
fn a_gram_matrix_sums_the_outer_products() {
    let x = [1.0f32, 2.0, -1.0, 0.5];
    let mut gram = Gram::new(2);
    gram.add(&x, 2);
    let mean = gram.mean();
    assert_eq!((mean[(0, 0)], mean[(0, 1)], mean[(1, 1)]), (1.0, 0.75, 2.125));
    assert_eq!(gram.diagonal(), vec![1.0, 2.125]);
}

#[test]
fn calibrated_objectives_need_fitting_inputs_and_a_grid() {
    let matrix = f32_matrix(&vec![0.5; ROWS * COLS]);
    let err = |ty, gram: Option<&Gram>| {
        requantize(&matrix, ty, Objective::ErrorFeedback, gram).unwrap_err().to_string()
    };
    assert!(err(GgmlType::Q4_0, None).contains("no calibration inputs"));
    assert!(err(GgmlType::Q4_0, Some(&Gram::new(64))).contains("64 channels for rows of 128"));
    assert!(err(GgmlType::Q6_K, Some(&Gram::new(COLS))).contains("no block grid"));
    // Inputs that never reach a channel leave it nothing to weigh: still a valid matrix.
    let q = requantize(&matrix, GgmlType::Q4_0, Objective::ErrorFeedback, Some(&Gram::new(COLS)));
    assert!(q.unwrap().dequantize().unwrap().iter().all(|&v| v == 0.0));
    assert!(matches!("gptq".parse::<Objective>(), Err(Error::UnknownObjective(_))));
    assert_eq!("scale-search".parse::<Objective>().unwrap(), Objective::ScaleSearch);
}
