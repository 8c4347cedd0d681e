//! The output head and the next-token cross-entropy as one differentiable step that never
//! holds a whole batch's logits.
//!
//! Through candle's own ops, `cross_entropy(x·Wᵀ)` keeps the logits, their log-softmax and
//! its intermediates for the backward pass: about nine tensors of `tokens × vocab` floats,
//! 450 MB for 256 tokens of a 49k vocabulary, more than the blocks of a small window. Here
//! the forward pass takes a few tokens at a time: their logits give both their share of the
//! loss and of its gradient `∂loss/∂x = (softmax − onehot)·W / tokens`, which is kept (it is
//! as small as `x`) for the backward pass, so the logits are computed once. The head is
//! frozen, so no gradient flows to it.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, D};

use crate::twin::op_input;

/// Tokens whose logits are held at once.
pub(crate) const TOKENS_PER_CHUNK: usize = 32;

/// The mean cross-entropy of `head`'s logits of each row of the input against `targets`.
#[derive(Debug)]
pub(crate) struct HeadCrossEntropy {
    /// `[vocab, d_model]`, f32.
    head: Tensor,
    targets: Vec<u32>,
    /// `∂loss/∂x`, from the forward pass.
    gradient: Mutex<Option<Tensor>>,
}

impl HeadCrossEntropy {
    pub(crate) fn new(head: Tensor, targets: Vec<u32>) -> Self {
        Self { head, targets, gradient: Mutex::new(None) }
    }

    /// The logits of rows `start..start + len` of `x`: `[len, vocab]`.
    fn logits(&self, x: &Tensor, start: usize, len: usize) -> candle_core::Result<Tensor> {
        x.narrow(0, start, len)?.matmul(&self.head.t()?)
    }

    /// Chunks of rows of an `n`-row input.
    fn chunks(n: usize) -> impl Iterator<Item = (usize, usize)> {
        (0..n).step_by(TOKENS_PER_CHUNK).map(move |s| (s, TOKENS_PER_CHUNK.min(n - s)))
    }

    fn check(&self, n: usize) -> candle_core::Result<()> {
        if n != self.targets.len() || n == 0 {
            candle_core::bail!("{n} rows for {} targets", self.targets.len());
        }
        Ok(())
    }
}

impl CustomOp1 for HeadCrossEntropy {
    fn name(&self) -> &'static str {
        "head-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = op_input(self.name(), storage, layout)?;
        let n = x.dim(0)?;
        self.check(n)?;
        let vocab = self.head.dim(0)?;
        let mut total = 0.0f64;
        let mut parts = Vec::with_capacity(n.div_ceil(TOKENS_PER_CHUNK));
        for (start, len) in Self::chunks(n) {
            let logits = self.logits(&x, start, len)?;
            let max = logits.max_keepdim(D::Minus1)?;
            let lse = (logits.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()? + max)?;
            let lse: Vec<f32> = lse.flatten_all()?.to_vec1()?;
            let mut p: Vec<Vec<f32>> = candle_nn::ops::softmax_last_dim(&logits)?.to_vec2()?;
            let rows: Vec<Vec<f32>> = logits.to_vec2()?;
            let targets = &self.targets[start..start + len];
            for (((row, p), lse), &t) in rows.iter().zip(&mut p).zip(lse).zip(targets) {
                total += f64::from(lse - row[t as usize]);
                p[t as usize] -= 1.0;
            }
            let dp = Tensor::from_vec(p.concat(), (len, vocab), x.device())?;
            parts.push((dp.matmul(&self.head)? / n as f64)?);
        }
        *self.gradient.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Tensor::cat(&parts, 0)?);
        Ok((CpuStorage::F32(vec![(total / n as f64) as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let gradient = self.gradient.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(gradient) = gradient.as_ref() else {
            candle_core::bail!("head-cross-entropy's backward pass before its forward pass");
        };
        let scale = grad_res.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        Ok(Some((gradient * f64::from(scale))?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn loss_and_gradient_are_candles_cross_entropy() {
        let dev = Device::Cpu;
        let (n, d, vocab) = (70, 8, 50);
        let wave = |len: usize, k: f32| (0..len).map(|i| (i as f32 * k).sin()).collect::<Vec<_>>();
        let head = Tensor::from_vec(wave(vocab * d, 0.37), (vocab, d), &dev).unwrap();
        let targets: Vec<u32> = (0..n as u32).map(|i| (i * 7) % vocab as u32).collect();
        let x = Var::from_vec(wave(n * d, 0.11), (n, d), &dev).unwrap();

        let fused = x.apply_op1(HeadCrossEntropy::new(head.clone(), targets.clone())).unwrap();
        let fused_grad = fused.backward().unwrap().get(&x).unwrap().clone();

        let t = Tensor::new(targets.as_slice(), &dev).unwrap();
        let logits = x.matmul(&head.t().unwrap()).unwrap();
        let plain = candle_nn::loss::cross_entropy(&logits, &t).unwrap();
        let plain_grad = plain.backward().unwrap().get(&x).unwrap().clone();

        let (a, b) = (fused.to_scalar::<f32>().unwrap(), plain.to_scalar::<f32>().unwrap());
        assert!((a - b).abs() < 1e-5 * b.abs(), "{a} {b}");
        let diff = (fused_grad - &plain_grad).unwrap().abs().unwrap().max_all().unwrap();
        let size = plain_grad.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5 * size);
    }
}
