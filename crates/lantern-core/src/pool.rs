//! [`ThreadPool`]: persistent worker threads with a fork/join of a few microseconds.
//!
//! A decode step runs about two hundred small matrix products, each split over the threads.
//! A pool that puts its workers to sleep between them pays a wake-up (tens of microseconds)
//! every time; this one lets idle workers spin on an atomic generation counter for a short
//! while before they block, so back-to-back jobs start without a system call. The calling
//! thread always takes part as thread 0, so a pool of `n` threads starts `n − 1` workers and
//! a pool of one runs everything inline.
//!
//! # Protocol
//! `broadcast` publishes the job, then bumps `generation` (release). A worker that sees a
//! new generation (acquire) runs the job with its index and decrements `pending` (release);
//! the caller runs index 0, then waits for `pending` to reach 0 (acquire) before returning,
//! which is what makes lending the job's borrowed closure to the workers sound. A worker
//! that spun for [`SPIN_LIMIT`] without news registers in `sleepers` and blocks on a condition
//! variable; `broadcast` only takes the lock to wake it when `sleepers` is non-zero.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it blocks: long enough to bridge the gaps between
/// the matrix products of a token and between tokens, short enough to leave an idle CPU
/// alone almost at once.
const SPIN_LIMIT: Duration = Duration::from_millis(2);

/// A job as the workers see it: the caller's closure with its lifetime erased.
type Job = *const (dyn Fn(usize) + Sync + 'static);

/// A fixed set of worker threads that run one job at a time on every thread.
///
/// # Example
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use lantern_core::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// let sum = AtomicUsize::new(0);
/// pool.broadcast(&|i| {
///     sum.fetch_add(i + 1, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 1 + 2);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Held by the thread that is broadcasting; a second broadcast runs inline instead.
    dispatch: Mutex<()>,
}

struct Shared {
    /// The current job; written only while every worker is idle (see the module docs).
    job: UnsafeCell<Option<Job>>,
    generation: AtomicU64,
    pending: AtomicUsize,
    sleepers: AtomicUsize,
    stop: AtomicBool,
    /// The first panic payload of a worker during the current job.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is the only field that is not `Sync` by itself. It is written by the
// dispatching thread only while no worker reads it (before the release store of a new
// generation, after `pending` reached zero), and read by workers only between their acquire
// load of that generation and their release decrement of `pending`. The closure it points
// to is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the raw pointer is only dereferenced under that protocol.
unsafe impl Send for Shared {}

impl ThreadPool {
    /// A pool of `threads` threads: the caller plus `threads − 1` workers.
    ///
    /// # Errors
    /// The OS error when a worker thread cannot be started.
    ///
    /// # Panics
    /// When `threads` is 0.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        assert!(threads > 0, "a pool needs at least one thread");
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            generation: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panic: Mutex::new(None),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut pool = Self { shared, workers: Vec::new(), dispatch: Mutex::new(()) };
        for index in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let handle = thread::Builder::new()
                .name(format!("lantern-worker-{index}"))
                .spawn(move || worker(&shared, index))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Number of threads that run each job, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `job(i)` once for every thread index `i` in `0..threads()`, index 0 on the
    /// calling thread, and returns when all have finished.
    ///
    /// A broadcast from inside a job, or from a second thread while one is in flight, runs
    /// every index on the calling thread instead of waiting.
    ///
    /// # Panics
    /// Re-raises the first panic of any index, after every thread has finished.
    pub fn broadcast(&self, job: &(dyn Fn(usize) + Sync)) {
        let _guard = match self.dispatch.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                (0..self.threads()).for_each(job);
                return;
            }
        };
        if self.workers.is_empty() {
            job(0);
            return;
        }
        let shared = &*self.shared;
        // SAFETY: erasing the lifetime is sound because this function does not return (nor
        // unwind) before every worker has finished with the job: see the wait below.
        let erased: Job = unsafe { std::mem::transmute::<*const (dyn Fn(usize) + Sync), Job>(job) };
        // SAFETY: no worker reads `job` now: the previous broadcast waited for `pending == 0`
        // and the generation has not moved since (see the module docs).
        unsafe { *shared.job.get() = Some(erased) };
        shared.pending.store(self.workers.len(), Relaxed);
        shared.generation.fetch_add(1, SeqCst);
        shared.wake_sleepers();

        let own = panic::catch_unwind(AssertUnwindSafe(|| job(0)));
        let mut spins = 0u32;
        while shared.pending.load(Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let theirs = shared.panic.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Err(payload) = own {
            panic::resume_unwind(payload);
        }
        if let Some(payload) = theirs {
            panic::resume_unwind(payload);
        }
    }
}

impl ThreadPool {
    /// Calls `f(i, chunk)` for every `chunk_len`-element chunk of `data` (the last one may be
    /// shorter), spread over the threads: each thread takes the next chunk not yet taken.
    ///
    /// # Errors
    /// The first error any call returned; the other chunks still run.
    ///
    /// # Panics
    /// When `chunk_len` is 0, or re-raises a panic of `f` as [`ThreadPool::broadcast`] does.
    ///
    /// # Example
    /// ```
    /// use lantern_core::ThreadPool;
    ///
    /// let pool = ThreadPool::new(2)?;
    /// let mut squares = vec![0u64; 1000];
    /// pool.for_each_chunk(&mut squares, 64, |i, chunk| {
    ///     for (j, s) in chunk.iter_mut().enumerate() {
    ///         let n = (i * 64 + j) as u64;
    ///         *s = n * n;
    ///     }
    ///     Ok::<(), ()>(())
    /// }).unwrap();
    /// assert_eq!(squares[999], 999 * 999);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn for_each_chunk<T: Send, E: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) -> Result<(), E> + Sync,
    ) -> Result<(), E> {
        assert!(chunk_len > 0, "chunks must not be empty");
        let len = data.len();
        let chunks = len.div_ceil(chunk_len);
        if chunks <= 1 || self.workers.is_empty() {
            return data.chunks_mut(chunk_len).enumerate().try_for_each(|(i, c)| f(i, c));
        }
        let base = SendPtr(data.as_mut_ptr());
        let next = AtomicUsize::new(0);
        let first_error = Mutex::new(None);
        self.broadcast(&|_| loop {
            let i = next.fetch_add(1, Relaxed);
            if i >= chunks {
                break;
            }
            let start = i * chunk_len;
            let end = len.min(start + chunk_len);
            // SAFETY: `start..end` lies within `data`, which stays mutably borrowed for the
            // whole broadcast, and each chunk index is claimed by exactly one `fetch_add`, so
            // the slices handed out never overlap.
            let chunk =
                unsafe { std::slice::from_raw_parts_mut(base.get().add(start), end - start) };
            if let Err(e) = f(i, chunk) {
                first_error.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
            }
        });
        match first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A pointer that may cross threads; see the `SAFETY` comment where it is dereferenced.
struct SendPtr<T>(*mut T);

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the field).
    fn get(&self) -> *mut T {
        self.0
    }
}

// SAFETY: the pointer is only used to build disjoint chunks of a `&mut [T]` with `T: Send`.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl Shared {
    fn wake_sleepers(&self) {
        if self.sleepers.load(SeqCst) > 0 {
            let _lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.wake.notify_all();
        }
    }

    /// Waits until the generation differs from `seen` and returns it: spins first, then
    /// blocks.
    fn wait_for_news(&self, seen: u64) -> u64 {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = self.generation.load(Acquire);
            if now != seen {
                return now;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) {
                if start.elapsed() > SPIN_LIMIT {
                    break;
                }
                // Lets a descheduled thread of the same job run when threads outnumber CPUs.
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let mut lock = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // Registering before the check pairs with `wake_sleepers`, which reads `sleepers`
        // after bumping the generation: one of the two sees the other (SeqCst).
        self.sleepers.fetch_add(1, SeqCst);
        loop {
            let now = self.generation.load(SeqCst);
            if now != seen {
                self.sleepers.fetch_sub(1, SeqCst);
                return now;
            }
            lock = self.wake.wait(lock).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0;
    loop {
        seen = shared.wait_for_news(seen);
        if shared.stop.load(Acquire) {
            return;
        }
        // SAFETY: the acquire load of the new generation ordered this read after the
        // dispatcher's write, and the dispatcher keeps the closure alive until `pending`
        // reaches zero, which this worker's decrement below precedes.
        let job = unsafe { (*shared.job.get()).map(|job| &*job) };
        if let Some(job) = job {
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| job(index))) {
                shared.panic.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(payload);
            }
        }
        shared.pending.fetch_sub(1, Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Release);
        self.shared.generation.fetch_add(1, SeqCst);
        self.shared.wake_sleepers();
        for handle in self.workers.drain(..) {
            // A worker never panics outside `catch_unwind`, so there is nothing to report.
            let _ = handle.join();
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool").field("threads", &self.threads()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_index_runs_once_per_broadcast() {
        for threads in 1..=3 {
            let pool = ThreadPool::new(threads).unwrap();
            let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..10_000 {
                pool.broadcast(&|i| {
                    hits[i].fetch_add(1, Relaxed);
                });
            }
            assert!(hits.iter().all(|h| h.load(Relaxed) == 10_000), "{threads} threads");
        }
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let pool = ThreadPool::new(2).unwrap();
        let hits = AtomicUsize::new(0);
        for _ in 0..3 {
            thread::sleep(SPIN_LIMIT * 3);
            pool.broadcast(&|_| {
                hits.fetch_add(1, Relaxed);
            });
        }
        assert_eq!(hits.into_inner(), 6);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.broadcast(&|i| assert_ne!(i, 1, "worker fails"));
        }));
        assert!(caught.is_err());
        let hits = AtomicUsize::new(0);
        pool.broadcast(&|_| {
            hits.fetch_add(1, Relaxed);
        });
        assert_eq!(hits.into_inner(), 2);
    }

    #[test]
    fn nested_broadcast_runs_inline() {
        let pool = ThreadPool::new(2).unwrap();
        let hits = AtomicUsize::new(0);
        pool.broadcast(&|_| {
            pool.broadcast(&|_| {
                hits.fetch_add(1, Relaxed);
            });
        });
        // Whichever thread won the dispatch lock ran its inner job on both threads; the
        // other ran its own inline: 2 × 2 calls either way.
        assert_eq!(hits.into_inner(), 4);
    }

    #[test]
    fn chunks_cover_the_data_once_and_errors_surface() {
        let pool = ThreadPool::new(2).unwrap();
        let mut data = vec![0usize; 1001];
        pool.for_each_chunk(&mut data, 100, |i, chunk| {
            chunk.iter_mut().for_each(|v| *v += i + 1);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert!(data.iter().enumerate().all(|(j, &v)| v == j / 100 + 1));
        let err = pool.for_each_chunk(&mut data, 7, |i, _| if i == 5 { Err(i) } else { Ok(()) });
        assert_eq!(err, Err(5));
    }
}
