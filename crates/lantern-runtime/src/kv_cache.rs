//! The key/value cache: f16 rows, preallocated for the session's context length.
//!
//! Layout: for each layer, `ctx_len` positions of `kv_dim` keys, and the same for values.
//! f16 halves the cache's memory and matches llama.cpp's default cache type, so attention
//! sees the same rounded keys and values.

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::state::try_filled;
use crate::{Error, Result};

/// Keys and values of every layer for positions `0..len`.
#[derive(Debug)]
pub(crate) struct KvCache {
    keys: Vec<f16>,
    values: Vec<f16>,
    n_layers: usize,
    kv_dim: usize,
    ctx_len: usize,
    len: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` layers of `ctx_len` positions of `kv_dim` values.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when the cache's size overflows or cannot be allocated.
    pub(crate) fn new(n_layers: usize, ctx_len: usize, kv_dim: usize) -> Result<Self> {
        let too_big = |reason: String| Error::InvalidSetting { name: "ctx_len", reason };
        let size = n_layers
            .checked_mul(ctx_len)
            .and_then(|n| n.checked_mul(kv_dim))
            .ok_or_else(|| too_big(format!("a KV cache of {ctx_len} positions overflows")))?;
        let alloc = || {
            try_filled(size, f16::ZERO).ok_or_else(|| {
                too_big(format!("a KV cache of {} bytes cannot be allocated", 4 * size as u128))
            })
        };
        Ok(Self { keys: alloc()?, values: alloc()?, n_layers, kv_dim, ctx_len, len: 0 })
    }

    /// Layers it holds.
    pub(crate) fn layers(&self) -> usize {
        self.n_layers
    }

    /// Positions filled.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache can hold.
    pub(crate) fn capacity(&self) -> usize {
        self.ctx_len
    }

    /// Forgets positions from `len` on (keeps a common prefix for reuse).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Marks positions `..len` as filled.
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.ctx_len);
        self.len = len;
    }

    fn range(&self, layer: usize, pos: usize, n: usize) -> std::ops::Range<usize> {
        let start = (layer * self.ctx_len + pos) * self.kv_dim;
        start..start + n * self.kv_dim
    }

    /// Stores `n` consecutive positions' keys and values of `layer`, starting at `pos`.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let range = self.range(layer, pos, k.len() / self.kv_dim);
        self.keys[range.clone()].convert_from_f32_slice(k);
        self.values[range].convert_from_f32_slice(v);
    }

    /// Keys and values of `layer` for positions `0..n`.
    pub(crate) fn layer(&self, layer: usize, n: usize) -> (&[f16], &[f16]) {
        let range = self.range(layer, 0, n);
        (&self.keys[range.clone()], &self.values[range])
    }
}
