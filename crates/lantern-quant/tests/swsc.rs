//! SWSC factorizations of random matrices: the product without the dense matrix, exact
//! cases, recovery of planted clusters, the residual's rank, determinism and bad input.

use half::f16;
use lantern_quant::{Error, Precision, Swsc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn uniform(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn dense_product(w: &[f32], cols: usize, x: &[f32]) -> Vec<f32> {
    w.chunks_exact(cols).map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum()).collect()
}

fn norm(v: impl IntoIterator<Item = f32>) -> f64 {
    v.into_iter().map(|x| f64::from(x).powi(2)).sum::<f64>().sqrt()
}

/// ‖W − Ŵ‖_F / ‖W‖_F.
fn relative_error(w: &[f32], swsc: &Swsc) -> f64 {
    let dense = swsc.to_dense();
    norm(w.iter().zip(&dense).map(|(a, b)| a - b)) / norm(w.iter().copied())
}

#[test]
fn the_product_equals_the_dense_matrix_times_x() {
    let (rows, cols) = (48, 96);
    let mut rng = StdRng::seed_from_u64(1);
    let w = uniform(&mut rng, rows * cols);
    let x = uniform(&mut rng, cols);
    let energies: Vec<f32> = (0..cols).map(|j| (j % 5) as f32).collect();
    for (k, r) in [(1, 0), (12, 0), (12, 5), (30, 48), (96, 48)] {
        for precision in [Precision::F16, Precision::F32] {
            for weighed in [false, true] {
                let mut builder = Swsc::builder(k, r).precision(precision);
                if weighed {
                    builder = builder.channel_energies(energies.clone());
                }
                let swsc = builder.factor(&w, rows, cols).unwrap();
                let expected = dense_product(&swsc.to_dense(), cols, &x);
                let mut y = vec![f32::NAN; rows];
                swsc.matvec(&x, &mut y).unwrap();
                let diff = norm(y.iter().zip(&expected).map(|(a, b)| a - b));
                assert!(diff <= 1e-5 * norm(expected.iter().copied()), "k {k} r {r}: {diff}");
            }
        }
    }
}

#[test]
fn every_channel_its_own_cluster_is_the_matrix_exactly() {
    let (rows, cols) = (24, 40);
    let mut rng = StdRng::seed_from_u64(2);
    let w = uniform(&mut rng, rows * cols);
    // Some channels no input reaches: they weigh nothing, yet keep their own cluster.
    let energies: Vec<f32> = (0..cols).map(|j| if j % 3 == 0 { 0.0 } else { j as f32 }).collect();
    for builder in [Swsc::builder(cols, 0), Swsc::builder(cols, 0).channel_energies(energies)] {
        let exact = builder.clone().precision(Precision::F32).factor(&w, rows, cols).unwrap();
        assert_eq!(exact.to_dense(), w);
        let mut labels = exact.labels().to_vec();
        labels.sort_unstable();
        assert_eq!(labels, (0..cols as u16).collect::<Vec<_>>());
        let half = builder.factor(&w, rows, cols).unwrap();
        let rounded: Vec<f32> = w.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
        assert_eq!(half.to_dense(), rounded);
    }
}

#[test]
fn k_means_recovers_planted_clusters() {
    let (rows, cols, k) = (64, 200, 8);
    let mut rng = StdRng::seed_from_u64(3);
    let centres = uniform(&mut rng, k * rows);
    let truth: Vec<usize> = (0..cols).map(|_| rng.random_range(0..k)).collect();
    let noise: Vec<f32> = uniform(&mut rng, rows * cols).iter().map(|v| 0.01 * v).collect();
    let w: Vec<f32> =
        (0..rows * cols).map(|i| centres[truth[i % cols] * rows + i / cols] + noise[i]).collect();
    let noise_level = norm(noise.iter().copied()) / norm(w.iter().copied());
    for seed in 0..4 {
        let swsc = Swsc::builder(k, 0).seed(seed).precision(Precision::F32);
        let swsc = swsc.factor(&w, rows, cols).unwrap();
        let labels = swsc.labels();
        for a in 0..cols {
            for b in 0..cols {
                assert_eq!(truth[a] == truth[b], labels[a] == labels[b], "seed {seed}");
            }
        }
        // Each centroid averages its columns' noise away, leaving a little less than it.
        let error = relative_error(&w, &swsc);
        assert!(error <= noise_level, "seed {seed}: {error} vs noise {noise_level}");
    }
}

#[test]
fn the_residual_shrinks_as_the_rank_grows_and_full_rank_is_the_matrix() {
    let (rows, cols) = (40, 64);
    let mut rng = StdRng::seed_from_u64(4);
    let w = uniform(&mut rng, rows * cols);
    let errors: Vec<f64> = (0..=rows)
        .map(|r| {
            let swsc = Swsc::builder(8, r).precision(Precision::F32).factor(&w, rows, cols);
            relative_error(&w, &swsc.unwrap())
        })
        .collect();
    for (r, pair) in errors.windows(2).enumerate() {
        assert!(pair[1] <= pair[0] + 1e-6, "rank {}: {} after {}", r + 1, pair[1], pair[0]);
    }
    assert!(errors[0] > 0.5, "{}", errors[0]);
    assert!(errors[rows] < 1e-5, "full rank: {}", errors[rows]);
    // Stored in f16, the steps are still downhill and full rank is f16-close.
    let half: Vec<f64> = [0, 8, 16, 32, rows]
        .iter()
        .map(|&r| relative_error(&w, &Swsc::builder(8, r).factor(&w, rows, cols).unwrap()))
        .collect();
    assert!(half.windows(2).all(|p| p[1] < p[0]), "{half:?}");
    assert!(half[4] < 1e-3, "{half:?}");
}

#[test]
fn the_same_seed_gives_the_same_factors() {
    let (rows, cols) = (32, 80);
    let mut rng = StdRng::seed_from_u64(5);
    let w = uniform(&mut rng, rows * cols);
    let factor = |seed| Swsc::builder(10, 4).seed(seed).factor(&w, rows, cols).unwrap();
    let (a, b) = (factor(7), factor(7));
    assert_eq!((a.labels(), a.to_dense()), (b.labels(), b.to_dense()));
    assert_eq!(a.iterations(), b.iterations());
    assert!(factor(8).labels().iter().all(|&l| l < 10));
}

#[test]
fn bytes_count_the_stored_values() {
    let (rows, cols, k, r) = (16, 48, 6, 3);
    let w = vec![0.25; rows * cols];
    for (precision, width) in [(Precision::F16, 2), (Precision::F32, 4)] {
        let swsc = Swsc::builder(k, r).precision(precision).factor(&w, rows, cols).unwrap();
        assert_eq!((swsc.rows(), swsc.cols(), swsc.clusters(), swsc.rank()), (rows, cols, k, r));
        assert_eq!(swsc.bytes(), (rows * k + rows * r + r * cols) * width + cols * 2);
    }
}

#[test]
fn bad_input_is_an_error() {
    let (rows, cols) = (4, 6);
    let w = vec![1.0; rows * cols];
    let factor = |k, r| Swsc::builder(k, r).factor(&w, rows, cols).unwrap_err();
    assert!(matches!(factor(0, 0), Error::Clusters { clusters: 0, channels: 6 }));
    assert!(matches!(factor(7, 0), Error::Clusters { clusters: 7, channels: 6 }));
    assert!(matches!(factor(2, 5), Error::Rank { rank: 5, rows: 4, cols: 6 }));
    let short = Swsc::builder(2, 0).factor(&w[1..], rows, cols).unwrap_err();
    assert!(matches!(short, Error::Length { what: "weights", expected: 24, actual: 23 }));
    let energies = |e: Vec<f32>| Swsc::builder(2, 0).channel_energies(e).factor(&w, rows, cols);
    assert!(matches!(energies(vec![1.0; 5]), Err(Error::Length { expected: 6, .. })));
    let negative = energies(vec![1.0, 1.0, -1.0, 1.0, 1.0, 1.0]).unwrap_err();
    assert!(matches!(negative, Error::NotFinite { index: 2, .. }), "{negative}");
    let mut nan = w.clone();
    nan[9] = f32::NAN;
    let nan = Swsc::builder(2, 0).factor(&nan, rows, cols).unwrap_err();
    assert!(matches!(nan, Error::NotFinite { what: "weight", index: 9, .. }), "{nan}");
    assert!(factor(2, 5).to_string().contains("rank 5 for a 4×6 matrix: at most 4"));

    let swsc = Swsc::builder(2, 1).factor(&w, rows, cols).unwrap();
    let mut y = vec![0.0; rows];
    let err = swsc.matvec(&[1.0; 5], &mut y).unwrap_err();
    assert!(matches!(err, Error::Length { what: "input", .. }));
    let err = swsc.matvec(&[1.0; 6], &mut y[1..]).unwrap_err();
    assert!(matches!(err, Error::Length { what: "output", .. }));
    // No outputs is an empty product, not a failure.
    let empty = Swsc::builder(2, 0).factor(&[], 0, cols).unwrap();
    empty.matvec(&[1.0; 6], &mut []).unwrap();
    assert_eq!(empty.to_dense(), Vec::<f32>::new());
}

#[test]
fn weighing_by_channel_energy_moves_loud_channels_least() {
    let (rows, cols) = (32, 128);
    let mut rng = StdRng::seed_from_u64(6);
    let w = uniform(&mut rng, rows * cols);
    // A quarter of the inputs a hundred times louder, as outlier channels are.
    let energies: Vec<f32> = (0..cols).map(|j| if j % 4 == 0 { 100.0 } else { 1.0 }).collect();
    // Σ_j e_j ‖w_j − ŵ_j‖²: the output error for independent inputs.
    let weighed_error = |swsc: &Swsc| -> f64 {
        let dense = swsc.to_dense();
        (0..rows * cols).map(|i| f64::from(energies[i % cols] * (w[i] - dense[i]).powi(2))).sum()
    };
    let plain = Swsc::builder(32, 0).factor(&w, rows, cols).unwrap();
    let weighed =
        Swsc::builder(32, 0).channel_energies(energies.clone()).factor(&w, rows, cols).unwrap();
    let (p, q) = (weighed_error(&plain), weighed_error(&weighed));
    assert!(q < 0.5 * p, "weighed {q} vs plain {p}");
}
