//! The session's worker threads and the row-parallel linear layer built on them.
//!
//! A linear layer splits its weight rows into contiguous ranges, one task each, so every
//! thread streams its own part of the matrix; with one thread no pool exists and work runs
//! inline, with no hand-off at all.

use lantern_core::{BlockQ8, QTensor};
use rayon::prelude::*;

use crate::{Error, Result};

/// Tasks per thread: a few, so an unlucky thread does not hold the others up.
const TASKS_PER_THREAD: usize = 1;
/// Rows below which splitting costs more than it saves.
const MIN_ROWS_PER_TASK: usize = 16;

/// A fixed set of worker threads owned by one session.
#[derive(Debug)]
pub(crate) struct Workers {
    pool: Option<rayon::ThreadPool>,
    threads: usize,
}

impl Workers {
    /// Starts `threads` workers (none for one thread: the caller's thread does the work).
    pub(crate) fn new(threads: usize) -> Result<Self> {
        if threads == 0 {
            return Err(Error::InvalidSetting {
                name: "threads",
                reason: "must be at least 1".into(),
            });
        }
        let pool = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("lantern-worker-{i}"))
                .build()
                .map_err(|e| Error::ThreadPool { threads, reason: e.to_string() })?;
            Some(pool)
        } else {
            None
        };
        Ok(Self { pool, threads })
    }

    /// Number of threads computing.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// Calls `f(index, chunk)` for each `chunk_len`-sized chunk of `data`, on the workers.
    pub(crate) fn for_each_chunk<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) -> Result<()> + Send + Sync,
    ) -> Result<()> {
        match &self.pool {
            Some(pool) => pool.install(|| {
                data.par_chunks_mut(chunk_len).enumerate().try_for_each(|(i, c)| f(i, c))
            }),
            None => data.chunks_mut(chunk_len).enumerate().try_for_each(|(i, c)| f(i, c)),
        }
    }

    fn rows_per_task(&self, rows: usize) -> usize {
        rows.div_ceil(self.threads * TASKS_PER_THREAD).max(MIN_ROWS_PER_TASK)
    }

    /// `out = W·x` for `n` inputs: `out` is token-major, `n` rows of `w.n_rows()` values.
    ///
    /// `scratch` holds the weight-row-major intermediate of a batch; it only grows.
    pub(crate) fn linear(
        &self,
        w: &QTensor,
        x: &[f32],
        xq: &[BlockQ8],
        n: usize,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        let rows = w.n_rows();
        let chunk = self.rows_per_task(rows);
        if n == 1 {
            return self.for_each_chunk(out, chunk, |i, part| {
                let start = i * chunk;
                Ok(w.matvec(start..start + part.len(), x, xq, part)?)
            });
        }
        scratch.resize(rows * n, 0.0);
        self.for_each_chunk(scratch, chunk * n, |i, part| {
            let start = i * chunk;
            Ok(w.matmul(start..start + part.len() / n, x, xq, n, part)?)
        })?;
        for (t, out_t) in out.chunks_exact_mut(rows).enumerate() {
            for (r, o) in out_t.iter_mut().enumerate() {
                *o = scratch[r * n + t];
            }
        }
        Ok(())
    }
}
