//! AdamW (Loshchilov and Hutter 2019) over the LoRA factors, with moments that a checkpoint
//! can hold. candle_nn's `AdamW` keeps its moments and step count private, so an interrupted
//! run could not resume where it stopped; this one keeps them beside each factor.
//!
//! Each factor counts its own steps for the bias correction: a window's factors are only
//! stepped while their window trains, so a shared count would under-correct them.

use candle_core::{Tensor, Var};

use crate::twin;
use crate::Result;

/// One trained tensor with its moments.
#[derive(Debug)]
pub(crate) struct Param {
    pub(crate) var: Var,
    /// Mean of the gradients, decayed by β₁.
    pub(crate) m: Vec<f32>,
    /// Mean of the squared gradients, decayed by β₂.
    pub(crate) v: Vec<f32>,
    /// Steps taken.
    pub(crate) steps: u32,
}

impl Param {
    /// `values` (`[rows, cols]`) to train, with no step taken.
    pub(crate) fn new(values: Vec<f32>, rows: usize, cols: usize) -> Result<Self> {
        let n = values.len();
        let var = Var::from_tensor(&twin::matrix(values, rows, cols)?)?;
        Ok(Self { var, m: vec![0.0; n], v: vec![0.0; n], steps: 0 })
    }

    /// The current values.
    pub(crate) fn values(&self) -> Result<Vec<f32>> {
        twin::values(self.var.as_tensor())
    }
}

/// AdamW's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdamW {
    pub(crate) lr: f64,
    pub(crate) weight_decay: f64,
}

impl AdamW {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    /// One step of `p` down `grad`.
    pub(crate) fn step(&self, p: &mut Param, grad: &Tensor) -> Result<()> {
        let grad = twin::values(grad)?;
        let mut values = p.values()?;
        p.steps += 1;
        let t = i32::try_from(p.steps).unwrap_or(i32::MAX);
        let m_hat = 1.0 / (1.0 - Self::BETA1.powi(t));
        let v_hat = 1.0 / (1.0 - Self::BETA2.powi(t));
        let (b1, b2) = (Self::BETA1 as f32, Self::BETA2 as f32);
        let decay = (1.0 - self.lr * self.weight_decay) as f32;
        let (lr, eps, m_hat, v_hat) =
            (self.lr as f32, Self::EPS as f32, m_hat as f32, v_hat as f32);
        for (((w, m), v), g) in values.iter_mut().zip(&mut p.m).zip(&mut p.v).zip(&grad) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w = *w * decay - lr * (*m * m_hat) / ((*v * v_hat).sqrt() + eps);
        }
        let shape = p.var.as_tensor().shape().clone();
        p.var.set(&Tensor::from_vec(values, shape, p.var.as_tensor().device())?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_step_moves_each_value_by_the_learning_rate() {
        let mut p = Param::new(vec![1.0, -2.0, 0.5], 1, 3).unwrap();
        let grad = twin::matrix(vec![0.3, -4.0, 0.0], 1, 3).unwrap();
        AdamW { lr: 0.1, weight_decay: 0.0 }.step(&mut p, &grad).unwrap();
        let v = p.values().unwrap();
        assert!((v[0] - 0.9).abs() < 1e-5 && (v[1] + 1.9).abs() < 1e-5 && v[2] == 0.5, "{v:?}");
        assert_eq!(p.steps, 1);
    }
}
