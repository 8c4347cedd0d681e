//! [`Input`]: the activation vectors a matrix kernel reads, and [`QuantizedInput`], the
//! reusable buffers that quantize them once for every tensor that reads them.
//!
//! # Layout contract
//! `n` vectors of one length `len` lie one after another: `x` holds `n · len` values, `q8`
//! holds `len.div_ceil(32)` blocks per vector and `q8k` `len.div_ceil(256)` per vector, each
//! vector quantized on its own. `q8k` is empty unless a K-quant tensor will read the input.

use std::convert::Infallible;

use crate::{quantize_activation, quantize_activation_k, BlockQ8, BlockQ8K, ThreadPool, QK8, QK_K};

/// `n` activation vectors of one length, as f32 and in the 8-bit forms the kernels read.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    x: &'a [f32],
    q8: &'a [BlockQ8],
    q8k: &'a [BlockQ8K],
    n: usize,
}

impl<'a> Input<'a> {
    /// `n` vectors: `x` holds their values and `q8` their
    /// [`quantize_activation`](crate::quantize_activation) blocks (see the module docs).
    pub fn new(x: &'a [f32], q8: &'a [BlockQ8], n: usize) -> Self {
        Self { x, q8, q8k: &[], n }
    }

    /// The same input with its [`quantize_activation_k`](crate::quantize_activation_k)
    /// blocks, which Q4_K and Q6_K tensors read.
    pub fn with_q8k(self, q8k: &'a [BlockQ8K]) -> Self {
        Self { q8k, ..self }
    }

    /// Number of vectors.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Vectors `range` of this input (as many of them as there are).
    pub fn vectors(&self, range: std::ops::Range<usize>) -> Self {
        let end = range.end.min(self.n);
        let start = range.start.min(end);
        Self {
            x: parts(self.x, self.n, start..end),
            q8: parts(self.q8, self.n, start..end),
            q8k: parts(self.q8k, self.n, start..end),
            n: end - start,
        }
    }

    /// The f32 values of every vector, one after another.
    pub fn values(&self) -> &'a [f32] {
        self.x
    }

    /// The f32 values of vector `t` (empty when out of range).
    pub fn x(&self, t: usize) -> &'a [f32] {
        part(self.x, self.n, t)
    }

    /// The 32-value blocks of vector `t` (empty when out of range).
    pub fn q8(&self, t: usize) -> &'a [BlockQ8] {
        part(self.q8, self.n, t)
    }

    /// The 256-value blocks of vector `t` (empty when out of range or not quantized).
    pub fn q8k(&self, t: usize) -> &'a [BlockQ8K] {
        part(self.q8k, self.n, t)
    }

    /// All 32-value blocks.
    pub(crate) fn q8_all(&self) -> &'a [BlockQ8] {
        self.q8
    }

    /// All 256-value blocks.
    pub(crate) fn q8k_all(&self) -> &'a [BlockQ8K] {
        self.q8k
    }

    /// Total lengths of the values, the 32-value blocks and the 256-value blocks.
    pub(crate) fn lens(&self) -> (usize, usize, usize) {
        (self.x.len(), self.q8.len(), self.q8k.len())
    }
}

/// Part `t` of `n` equal parts of `all`.
fn part<T>(all: &[T], n: usize, t: usize) -> &[T] {
    parts(all, n, t..t + 1)
}

/// Parts `range` of `n` equal parts of `all`.
fn parts<T>(all: &[T], n: usize, range: std::ops::Range<usize>) -> &[T] {
    let len = all.len() / n.max(1);
    all.get(range.start * len..range.end * len).unwrap_or_default()
}

/// Buffers that quantize activation vectors into an [`Input`]; they grow to the largest
/// input seen and are then reused, so a steady decode loop allocates nothing.
///
/// # Example
/// ```
/// use lantern_core::kernels::QuantizedInput;
///
/// let mut q = QuantizedInput::new(false);
/// let x = vec![0.5f32; 2 * 64];
/// let input = q.quantize(&x, 2); // two vectors of 64 values
/// assert_eq!(input.q8(1).len(), 2);
/// assert!(input.q8k(0).is_empty());
/// ```
#[derive(Debug, Default)]
pub struct QuantizedInput {
    q8: Vec<BlockQ8>,
    q8k: Vec<BlockQ8K>,
    k_quants: bool,
}

impl QuantizedInput {
    /// Empty buffers; with `k_quants` they also produce the 256-value blocks.
    pub fn new(k_quants: bool) -> Self {
        Self { k_quants, ..Self::default() }
    }

    /// Quantizes `n` vectors held one after another in `x` (`x.len()` a multiple of `n`).
    pub fn quantize<'a>(&'a mut self, x: &'a [f32], n: usize) -> Input<'a> {
        self.quantize_on(None, x, n)
    }

    /// [`quantize`](Self::quantize), with the vectors spread over `pool`'s threads.
    pub fn quantize_on<'a>(
        &'a mut self,
        pool: Option<&ThreadPool>,
        x: &'a [f32],
        n: usize,
    ) -> Input<'a> {
        let len = x.len() / n.max(1);
        let x = &x[..len * n];
        quantize_each(pool, (x, len), (&mut self.q8, QK8), quantize_activation);
        let mut input = Input::new(x, &self.q8, n);
        if self.k_quants {
            quantize_each(pool, (x, len), (&mut self.q8k, QK_K), quantize_activation_k);
            input = input.with_q8k(&self.q8k);
        }
        input
    }
}

/// Quantizes each `len`-value vector of `x` into its own run of `out` blocks of
/// `block_values` values (`out` is resized to fit), one vector per task on `pool` if any.
fn quantize_each<B: Clone + Default + Send>(
    pool: Option<&ThreadPool>,
    (x, len): (&[f32], usize),
    (out, block_values): (&mut Vec<B>, usize),
    quantize: impl Fn(&[f32], &mut [B]) + Sync,
) {
    let n = x.len() / len.max(1);
    let blocks = len.div_ceil(block_values);
    out.resize(blocks * n, B::default());
    if blocks == 0 {
        return;
    }
    let one = |t: usize, q: &mut [B]| {
        quantize(&x[t * len..(t + 1) * len], q);
        Ok::<(), Infallible>(())
    };
    let Ok(()) = match pool {
        Some(pool) => pool.for_each_chunk(out, blocks, one),
        None => out.chunks_mut(blocks).enumerate().try_for_each(|(t, q)| one(t, q)),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_select_whole_vectors() {
        let x: Vec<f32> = (0..4 * 64).map(|i| i as f32).collect();
        let mut buffers = QuantizedInput::new(false);
        let input = buffers.quantize(&x, 4);
        let middle = input.vectors(1..3);
        assert_eq!(middle.n(), 2);
        assert_eq!(middle.x(0), input.x(1));
        assert_eq!(middle.q8(1), input.q8(2));
        assert!(middle.x(2).is_empty());
        // Beyond the end: what there is.
        assert_eq!(input.vectors(3..9).n(), 1);
        assert_eq!(input.vectors(5..9).n(), 0);
    }
}
