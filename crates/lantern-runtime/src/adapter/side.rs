//! Adapters on the hot path: after a block matrix's product `W·x`, each active adapter adds
//! `factor · B·(A·x)`, from the f32 input the matrix's quantized input was made of (as
//! llama.cpp computes its LoRA products). The base weights stay shared and untouched, so
//! sessions of one model may each run their own adapters.

use std::sync::Arc;

use crate::workers::Workers;
use crate::{BlockMatrix, LoraAdapter, Result};

/// Tokens a task takes at least: below this the products are too small to split.
const MIN_TOKENS_PER_TASK: usize = 4;

/// The adapters a state applies, each with its scale.
#[derive(Debug, Default)]
pub(crate) struct ActiveAdapters {
    adapters: Vec<(Arc<LoraAdapter>, f32)>,
    /// `A·x` of a batch: `rank` values per token.
    reduced: Vec<f32>,
}

impl ActiveAdapters {
    pub(crate) fn set(&mut self, adapters: Vec<(Arc<LoraAdapter>, f32)>) {
        self.adapters = adapters;
    }

    pub(crate) fn list(&self) -> &[(Arc<LoraAdapter>, f32)] {
        &self.adapters
    }

    /// `out += Σ factor · B·(A·x)` over the active adapters that update block `layer`'s
    /// `matrix`, for the `n` inputs of `x` (one after another), `out` holding `n` runs of
    /// the matrix's outputs; `Ok(true)` when some adapter did.
    pub(crate) fn add(
        &mut self,
        workers: &Workers,
        layer: usize,
        matrix: BlockMatrix,
        x: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<bool> {
        let mut added = false;
        for (adapter, scale) in &self.adapters {
            let Some(u) = adapter.update(layer, matrix) else { continue };
            let factor = adapter.factor(u, *scale);
            let (rank, inputs, outputs) = (u.rank(), u.inputs(), u.outputs());
            self.reduced.resize(n * rank, 0.0);
            let tokens = n.div_ceil(workers.threads()).max(MIN_TOKENS_PER_TASK);
            workers.for_each_chunk(&mut self.reduced[..n * rank], rank * tokens, |i, part| {
                let x = &x[i * tokens * inputs..];
                for (t, r) in part.chunks_exact_mut(rank).enumerate() {
                    let x = &x[t * inputs..(t + 1) * inputs];
                    for (v, a) in r.iter_mut().zip(u.a().chunks_exact(inputs)) {
                        *v = factor * dot(a, x);
                    }
                }
                Ok(())
            })?;
            let reduced = &self.reduced;
            workers.for_each_chunk(&mut out[..n * outputs], outputs * tokens, |i, part| {
                let reduced = &reduced[i * tokens * rank..];
                for (t, o) in part.chunks_exact_mut(outputs).enumerate() {
                    let r = &reduced[t * rank..(t + 1) * rank];
                    for (&r, column) in r.iter().zip(u.b_columns().chunks_exact(outputs)) {
                        o.iter_mut().zip(column).for_each(|(v, &b)| *v += r * b);
                    }
                }
                Ok(())
            })?;
            added = true;
        }
        Ok(added)
    }
}

/// `a · b`, in eight lanes so that it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LowRank;

    #[test]
    fn the_side_product_is_factor_times_b_a_x() {
        let (rank, inputs, outputs) = (2, 3, 4);
        let a: Vec<f32> = (0..rank * inputs).map(|i| i as f32 * 0.5 - 1.0).collect();
        let b: Vec<f32> = (0..outputs * rank).map(|i| 1.0 - i as f32 * 0.25).collect();
        let mut adapter = LoraAdapter::new("llama", 4.0);
        let u = LowRank::new(rank, inputs, outputs, a.clone(), b.clone()).unwrap();
        adapter.insert(1, BlockMatrix::FfnUp, u);
        let mut active = ActiveAdapters::default();
        active.set(vec![(Arc::new(adapter), 0.5)]);
        let workers = Workers::new(2).unwrap();
        let x = [1.0, -2.0, 0.5, 3.0, 0.0, -1.0];
        let mut out = vec![1.0; 2 * outputs];
        active.add(&workers, 1, BlockMatrix::FfnUp, &x, 2, &mut out).unwrap();
        // factor = 0.5 · 4 / 2 = 1.
        for t in 0..2 {
            let x = &x[t * inputs..][..inputs];
            let ax: Vec<f32> =
                a.chunks(inputs).map(|r| r.iter().zip(x).map(|(p, q)| p * q).sum()).collect();
            for o in 0..outputs {
                let expected = 1.0 + (0..rank).map(|r| b[o * rank + r] * ax[r]).sum::<f32>();
                assert!((out[t * outputs + o] - expected).abs() < 1e-5);
            }
        }
        // Another block or matrix is left alone.
        let before = out.clone();
        active.add(&workers, 0, BlockMatrix::FfnUp, &x, 2, &mut out).unwrap();
        active.add(&workers, 1, BlockMatrix::FfnGate, &x, 2, &mut out).unwrap();
        assert_eq!(out, before);
    }
}
