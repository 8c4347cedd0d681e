//! The session's worker threads and the row-parallel linear layer built on them.
//!
//! A linear layer splits its weight rows into contiguous ranges, one task each, so every
//! thread streams its own part of the matrix; with one thread the pool has no workers and
//! work runs inline, with no hand-off at all.

use lantern_core::kernels::Input;
use lantern_core::{QTensor, ThreadPool};

use crate::{Error, Result};

/// Tasks per thread for one input: each streams its rows from memory once, so one apiece.
const TASKS_PER_THREAD: usize = 1;
/// Tasks per thread for a batch, whose tasks are long: a few, so that a thread held up by
/// the system does not hold the others up.
const BATCH_TASKS_PER_THREAD: usize = 4;
/// Inputs below which a batch is split by rows rather than by inputs, and the granule of an
/// input task: a multiple of the inputs the kernels take per pass over the weights.
const MIN_INPUTS_PER_TASK: usize = 4;
/// Rows below which splitting costs more than it saves; also the granule of a task, a
/// multiple of the kernels' tile height.
const MIN_ROWS_PER_TASK: usize = 16;

/// Most worker threads a session may start (llama.cpp's cap too): more never helps, and a
/// mistyped count would start that many threads before the OS refused one.
pub const MAX_THREADS: usize = 512;

/// A fixed set of worker threads owned by one session.
#[derive(Debug)]
pub(crate) struct Workers {
    pool: ThreadPool,
}

impl Workers {
    /// Starts `threads` workers (none for one thread: the caller's thread does the work).
    pub(crate) fn new(threads: usize) -> Result<Self> {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(Error::InvalidSetting {
                name: "threads",
                reason: format!("must be from 1 to {MAX_THREADS}, not {threads}"),
            });
        }
        let pool = ThreadPool::new(threads)
            .map_err(|e| Error::ThreadPool { threads, reason: e.to_string() })?;
        Ok(Self { pool })
    }

    /// The pool itself, for work that is not a linear layer.
    pub(crate) fn pool(&self) -> &ThreadPool {
        &self.pool
    }

    /// Number of threads computing.
    pub(crate) fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Calls `f(index, chunk)` for each `chunk_len`-sized chunk of `data`, on the workers.
    pub(crate) fn for_each_chunk<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) -> Result<()> + Send + Sync,
    ) -> Result<()> {
        self.pool.for_each_chunk(data, chunk_len, f)
    }

    fn rows_per_task(&self, rows: usize, tasks_per_thread: usize) -> usize {
        let per_task = rows.div_ceil(self.threads() * tasks_per_thread);
        per_task.next_multiple_of(MIN_ROWS_PER_TASK)
    }

    /// `out = W·x` for `n` inputs: `out` is token-major, `n` rows of `w.n_rows()` values.
    ///
    /// A batch is split by inputs, each task computing all rows for its inputs in place. A
    /// batch too small to split so is split by rows: each task writes its rows' results to
    /// its own part of `scratch` (one run per input), which the threads then copy into
    /// place, a share of the inputs each; `scratch` only grows.
    pub(crate) fn linear(
        &self,
        w: &QTensor,
        input: Input<'_>,
        out: &mut [f32],
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        let rows = w.n_rows();
        let n = input.n();
        if self.threads() == 1 || rows == 0 {
            // One task: the results land in place.
            return Ok(w.matmul(0..rows, input, out)?);
        }
        if n == 1 {
            let chunk = self.rows_per_task(rows, TASKS_PER_THREAD);
            return self.for_each_chunk(out, chunk, |i, part| {
                let start = i * chunk;
                Ok(w.matmul(start..start + part.len(), input, part)?)
            });
        }
        if n >= MIN_INPUTS_PER_TASK * self.threads() {
            // Each task reads the whole matrix for its share of the inputs and writes their
            // results in place; the matrix comes from cache or memory once per task, which
            // matters little against the arithmetic of a batch.
            let per_task = n
                .div_ceil(self.threads() * BATCH_TASKS_PER_THREAD)
                .next_multiple_of(MIN_INPUTS_PER_TASK);
            return self.for_each_chunk(out, rows * per_task, |i, part| {
                let first = i * per_task;
                let inputs = input.vectors(first..first + part.len() / rows.max(1));
                Ok(w.matmul(0..rows, inputs, part)?)
            });
        }
        let chunk = self.rows_per_task(rows, BATCH_TASKS_PER_THREAD);
        scratch.resize(rows * n, 0.0);
        self.for_each_chunk(scratch, chunk * n, |i, part| {
            let start = i * chunk;
            Ok(w.matmul(start..start + part.len() / n, input, part)?)
        })?;
        if out.len() != rows * n {
            return Err(lantern_core::Error::ShapeMismatch {
                op: "linear",
                detail: format!("{rows} rows × {n} inputs into {} outputs", out.len()),
            }
            .into());
        }
        let scratch = &scratch[..];
        let inputs_per_task = n.div_ceil(self.threads());
        self.for_each_chunk(out, rows * inputs_per_task, |i, out| {
            for (t, out_t) in (i * inputs_per_task..).zip(out.chunks_exact_mut(rows)) {
                for (j, part) in scratch.chunks(chunk * n).enumerate() {
                    let len = part.len() / n;
                    let start = j * chunk;
                    out_t[start..start + len].copy_from_slice(&part[t * len..(t + 1) * len]);
                }
            }
            Ok(())
        })
    }
}
