//! The key/value cache: f16 rows, preallocated for the session's context length.
//!
//! Each layer holds `kv_dim` keys and as many values per position it keeps: every position
//! of the context, or in a sliding-window layer the window and one batch, in a ring whose
//! oldest rows the next positions write over. f16 halves the cache's memory and matches
//! llama.cpp's default cache type, so attention sees the same rounded keys and values.

use std::borrow::Cow;

use half::f16;
use half::slice::HalfFloatSliceExt;

use crate::state::try_filled;
use crate::{Error, Result};

/// Keys and values of every layer for positions `0..len` (the last ones, in a ring layer).
#[derive(Debug)]
pub(crate) struct KvCache {
    keys: Vec<f16>,
    values: Vec<f16>,
    /// Per layer: its first row, the positions it keeps, and its window (ring layers).
    layers: Vec<LayerRows>,
    kv_dim: usize,
    ctx_len: usize,
    len: usize,
    /// One past the last position ever written since the cache was last emptied: a ring's
    /// rows of positions up to `written − slots` are gone.
    written: usize,
}

#[derive(Clone, Copy, Debug)]
struct LayerRows {
    start: usize,
    slots: usize,
    window: Option<usize>,
}

/// The rows of one layer a token at some position attends to, oldest first: one run, or two
/// where a ring wraps.
pub(crate) type Seen<'a> = [(&'a [f16], &'a [f16]); 2];

/// One layer's cache, as attention reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerView<'a> {
    keys: &'a [f16],
    values: &'a [f16],
    rows: LayerRows,
    kv_dim: usize,
}

impl KvCache {
    /// An empty cache of `ctx_len` positions of `kv_dim` values per layer; a layer with a
    /// window in `windows` keeps only its window and `batch` more positions.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when the cache's size overflows or cannot be allocated.
    pub(crate) fn new(
        windows: &[Option<usize>],
        ctx_len: usize,
        batch: usize,
        kv_dim: usize,
    ) -> Result<Self> {
        let too_big = |reason: String| Error::InvalidSetting { name: "ctx_len", reason };
        let overflow = || too_big(format!("a KV cache of {ctx_len} positions overflows"));
        let mut layers = Vec::with_capacity(windows.len());
        let mut rows = 0usize;
        for &window in windows {
            let slots = match window {
                Some(w) => w.saturating_add(batch).saturating_sub(1).min(ctx_len),
                None => ctx_len,
            };
            layers.push(LayerRows { start: rows, slots, window });
            rows = rows.checked_add(slots).ok_or_else(overflow)?;
        }
        let size = rows.checked_mul(kv_dim).ok_or_else(overflow)?;
        let alloc = || {
            try_filled(size, f16::ZERO).ok_or_else(|| {
                too_big(format!("a KV cache of {} bytes cannot be allocated", 4 * size as u128))
            })
        };
        Ok(Self { keys: alloc()?, values: alloc()?, layers, kv_dim, ctx_len, len: 0, written: 0 })
    }

    /// Layers it holds.
    pub(crate) fn layers(&self) -> usize {
        self.layers.len()
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

    /// Forgets positions from `len` on and returns how many it kept: `len`, or fewer when a
    /// ring layer has written over rows that position `len` would attend to (then none).
    pub(crate) fn truncate(&mut self, len: usize) -> usize {
        let len = self.len.min(len);
        // Position `len` sees the `window` positions before it; the ring has kept only the
        // last `slots` of those written.
        let lost = |r: &LayerRows| {
            let window = r.window.unwrap_or(usize::MAX);
            self.written.saturating_sub(r.slots) > len.saturating_sub(window)
        };
        self.len = if self.layers.iter().any(lost) { 0 } else { len };
        if self.len == 0 {
            self.written = 0;
        }
        self.len
    }

    /// Marks positions `..len` as filled.
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= self.ctx_len);
        self.len = len;
        self.written = self.written.max(len);
    }

    /// Stores `n` consecutive positions' keys and values of `layer`, starting at `pos`.
    pub(crate) fn store(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (d, rows) = (self.kv_dim, self.layers[layer]);
        let n = k.len() / d;
        let mut done = 0;
        while done < n {
            // A run of rows up to the end of the ring.
            let slot = (pos + done) % rows.slots;
            let run = (rows.slots - slot).min(n - done);
            let at = (rows.start + slot) * d;
            let from = done * d..(done + run) * d;
            self.keys[at..at + run * d].convert_from_f32_slice(&k[from.clone()]);
            self.values[at..at + run * d].convert_from_f32_slice(&v[from]);
            done += run;
        }
    }

    /// Layer `layer` as attention reads it.
    pub(crate) fn layer(&self, layer: usize) -> LayerView<'_> {
        let rows = self.layers[layer];
        let range = rows.start * self.kv_dim..(rows.start + rows.slots) * self.kv_dim;
        LayerView {
            keys: &self.keys[range.clone()],
            values: &self.values[range],
            rows,
            kv_dim: self.kv_dim,
        }
    }
}

impl<'a> LayerView<'a> {
    /// The window of a sliding-window layer.
    pub(crate) fn window(&self) -> Option<usize> {
        self.rows.window
    }

    /// The rows the token at position `end − 1` attends to: positions up to its own, the
    /// last `window` of them in a sliding-window layer, oldest first.
    pub(crate) fn seen(&self, end: usize) -> Seen<'a> {
        self.positions(self.first_seen(end), end)
    }

    /// The rows a run of tokens attends to, from what the token at position
    /// `first_end − 1` sees to the position `last_end − 1`, in one slice (copied where the
    /// ring wraps).
    pub(crate) fn span(&self, first_end: usize, last_end: usize) -> Span<'a> {
        let first = self.first_seen(first_end);
        let [(keys, values), (wrapped_keys, wrapped_values)] = self.positions(first, last_end);
        if wrapped_keys.is_empty() {
            return Span { first, keys: Cow::Borrowed(keys), values: Cow::Borrowed(values) };
        }
        Span {
            first,
            keys: Cow::Owned([keys, wrapped_keys].concat()),
            values: Cow::Owned([values, wrapped_values].concat()),
        }
    }

    fn first_seen(&self, end: usize) -> usize {
        self.rows.window.map_or(0, |w| end.saturating_sub(w))
    }

    /// The rows of positions `first..end`, oldest first.
    fn positions(&self, first: usize, end: usize) -> Seen<'a> {
        let (slots, d) = (self.rows.slots, self.kv_dim);
        let (start, len) = (first % slots, end - first);
        let run = |rows: std::ops::Range<usize>| {
            let range = rows.start * d..rows.end * d;
            (&self.keys[range.clone()], &self.values[range])
        };
        if start + len <= slots {
            [run(start..start + len), run(0..0)]
        } else {
            [run(start..slots), run(0..start + len - slots)]
        }
    }
}

/// Consecutive positions of one layer's cache, from position `first` on.
pub(crate) struct Span<'a> {
    pub(crate) first: usize,
    keys: Cow<'a, [f16]>,
    values: Cow<'a, [f16]>,
}

impl Span<'_> {
    /// The keys and values, one row per position.
    pub(crate) fn rows(&self) -> (&[f16], &[f16]) {
        (&self.keys, &self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys of `n` positions from `pos`, each row filled with its position.
    fn rows(pos: usize, n: usize, d: usize) -> Vec<f32> {
        (pos..pos + n).flat_map(|p| vec![p as f32; d]).collect()
    }

    fn positions(seen: Seen<'_>, d: usize) -> Vec<f32> {
        seen.iter().flat_map(|(k, _)| k.chunks_exact(d).map(|r| r[0].to_f32())).collect()
    }

    #[test]
    fn a_ring_layer_keeps_its_window_and_a_batch() {
        // Layer 0 keeps all 32 positions; layer 1 a window of 4 and batches of 3: 6 rows.
        let d = 2;
        let mut cache = KvCache::new(&[None, Some(4)], 32, 3, d).unwrap();
        assert_eq!(cache.keys.len(), (32 + 6) * d);
        for (pos, n) in [(0, 3), (3, 3), (6, 1), (7, 3), (10, 1)] {
            for layer in 0..2 {
                cache.store(layer, pos, &rows(pos, n, d), &rows(pos, n, d));
            }
            cache.set_len(pos + n);
            for end in pos + 1..=pos + n {
                let window: Vec<f32> = (end.saturating_sub(4)..end).map(|p| p as f32).collect();
                assert_eq!(positions(cache.layer(1).seen(end), d), window, "end {end}");
                let all: Vec<f32> = (0..end).map(|p| p as f32).collect();
                assert_eq!(positions(cache.layer(0).seen(end), d), all);
            }
        }
        // Back by a few positions, the ring still holds what they see; further back, its
        // rows were written over (positions 9 and 10 took those of 3 and 4), so nothing is
        // kept.
        assert_eq!(cache.truncate(9), 9);
        assert_eq!(cache.truncate(7), 0);
        assert!(cache.is_empty());
    }
}
