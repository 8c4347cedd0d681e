//! Causal grouped-query attention of a batch of tokens over a layer's f16 KV cache, and the
//! choice of path for each batch length.
//!
//! - One token (decoding) and short batches: [`decode`], llama.cpp's flash attention with an
//!   f16 accumulator, token by token.
//! - Batches of [`LONG_BATCH`] tokens or more: [`batch`], llama.cpp's tiled f32 path, a run
//!   of tokens per task.
//!
//! `q` holds `n` tokens of `n_heads` heads; token `t` sits at position `pos0 + t` and sees
//! the positions up to its own, or in a sliding-window layer the last `window` of them.
//! Outputs have `q`'s layout.

mod batch;
mod decode;

use crate::kv_cache::LayerView;
use crate::workers::Workers;
use crate::Result;

pub(crate) use decode::Scratch;

/// Batches at least this long use the tiled path (the peer's `GGML_FA_TILE_Q`).
pub(crate) const LONG_BATCH: usize = 64;

/// Head geometry shared by every attention call of a model, and the factor applied to
/// every score (1/√head_dim, or 1 where the queries were scaled instead).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) scale: f32,
}

impl Heads {
    /// Offset of the kv head that query head `h` reads, within a cache row.
    pub(crate) fn kv_offset(&self, h: usize) -> usize {
        (h / (self.n_heads / self.n_kv_heads)) * self.head_dim
    }

    /// Values in one cache row: every kv head of one position.
    pub(crate) fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The factor applied to every score.
    pub(crate) fn scale(&self) -> f32 {
        self.scale
    }
}

/// Attention tasks per thread for a long batch: later tokens see more of the cache, so
/// several tasks each let the threads even out.
const TASKS_PER_THREAD: usize = 4;

/// Attention of `n` query tokens at positions `pos0..pos0 + n` over the cached positions
/// each sees in `layer` (up to its own, or the last `window` of them in a sliding-window
/// layer), into `out` (`n` tokens of `n_heads · head_dim` values), split over the workers;
/// `scratch` serves a single token.
pub(crate) fn attend(
    workers: &Workers,
    heads: Heads,
    q: &[f32],
    layer: LayerView<'_>,
    pos0: usize,
    scratch: &mut Scratch,
    out: &mut [f32],
) -> Result<()> {
    let q_dim = heads.n_heads * heads.head_dim;
    let n = q.len() / q_dim.max(1);
    if n == 1 {
        decode::attend(heads, q, layer.seen(pos0 + 1), scratch, out);
    } else if n < LONG_BATCH {
        // Short batches take the f16 path of decoding, token by token.
        workers.for_each_chunk(out, q_dim, |t, out| {
            let q = &q[t * q_dim..(t + 1) * q_dim];
            decode::attend(heads, q, layer.seen(pos0 + t + 1), &mut Scratch::default(), out);
            Ok(())
        })?;
    } else {
        // Long batches take the tiled f32 path, a run of tokens per task: the more tokens,
        // the more rows share each tile of the cache. A sliding-window layer's span starts
        // where the first token's window does.
        let span = layer.span(pos0 + 1, pos0 + n);
        let (keys, values) = span.rows();
        let first_len = pos0 + 1 - span.first;
        let window = layer.window().unwrap_or(usize::MAX);
        let per_task = n.div_ceil(workers.threads() * TASKS_PER_THREAD);
        workers.for_each_chunk(out, per_task * q_dim, |i, out| {
            let t0 = i * per_task;
            let q = &q[t0 * q_dim..t0 * q_dim + out.len()];
            let mut scratch = batch::TileScratch::default();
            batch::attend_batch(heads, q, keys, values, first_len + t0, window, &mut scratch, out);
            Ok(())
        })?;
    }
    Ok(())
}
