//! Sessions: a conversation's KV cache over a shared engine.
//!
//! The session sits behind a mutex that a generating call holds for its whole length, so
//! a second call on the same session from another thread gets `LANTERN_BUSY` (`try_lock`)
//! rather than waiting. Cancelling does not take the lock: the cancel handle is outside it.

use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use lantern::{CancelHandle, Engine, LoraAdapter, Session, SessionConfig};

use crate::engine::{lantern_engine, ENGINES};
use crate::handles::Registry;
use crate::stats::{count, lantern_stats, peak_resident_bytes, LastGeneration};
use crate::status::{call, call_infallible, lantern_status, Failure, FfiResult};
use crate::strings::{optional_utf8_arg, options_or, out_arg};

/// A conversation (opaque): its own KV cache and threads. One thread at a time.
#[derive(Debug)]
pub struct lantern_session {
    session: Mutex<Session>,
    /// Stops the generation running on `session`, without its lock.
    cancel: CancelHandle,
    /// Keeps the model alive after `lantern_engine_free`, and answers the stats.
    engine: Engine,
    ctx_len: usize,
    last: Mutex<LastGeneration>,
}

pub(crate) static SESSIONS: Registry<lantern_session> = Registry::new("lantern_session");

impl lantern_session {
    /// The session, unless another thread is using it.
    pub(crate) fn lock(&self) -> FfiResult<MutexGuard<'_, Session>> {
        self.session.try_lock().map_err(|e| match e {
            TryLockError::WouldBlock => Failure::new(
                lantern_status::LANTERN_BUSY,
                "session is in use by another thread (one thread at a time per session)",
            ),
            // A panic caught while generating: the KV cache may be half-written.
            TryLockError::Poisoned(_) => Failure::new(
                lantern_status::LANTERN_INTERNAL,
                "session is unusable after an internal error; free it and open another",
            ),
        })
    }

    pub(crate) fn cancel_handle(&self) -> &CancelHandle {
        &self.cancel
    }

    /// Records what `lantern_session_stats` reports of the last generation.
    pub(crate) fn record(&self, last: LastGeneration) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = last;
    }

    fn last(&self) -> LastGeneration {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Settings of `lantern_session_new`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct lantern_session_options {
    /// Worker threads; 0: all CPUs.
    pub threads: u32,
    /// Context length in tokens; 0: the model's, capped at 4096.
    pub ctx_len: u32,
}

/// Writes the default session options (also what a NULL options pointer means).
/// NULL `out`: nothing.
///
/// # Safety
/// `out` is NULL or points to writable options.
#[no_mangle]
pub unsafe extern "C" fn lantern_session_options_default(out: *mut lantern_session_options) {
    call_infallible((), || {
        if !out.is_null() {
            // SAFETY: not NULL; the caller passes a pointer to writable options.
            unsafe { out.write(lantern_session_options::default()) };
        }
    });
}

/// Opens a session on `engine`, with its own KV cache and threads. `*out` is set only on
/// LANTERN_OK. `options` may be NULL.
///
/// # Safety
/// `options` is NULL or valid; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lantern_session_new(
    engine: *const lantern_engine,
    options: *const lantern_session_options,
    out: *mut *mut lantern_session,
) -> lantern_status {
    call("lantern_session_new", || {
        let engine = ENGINES.get(engine, "engine")?;
        // SAFETY: the caller passes NULL or valid options.
        let options = unsafe { options_or(options, lantern_session_options::default()) };
        let out = out_arg(out, "out")?;
        let mut config = SessionConfig::default();
        if options.threads != 0 {
            config = config.threads(options.threads as usize);
        }
        if options.ctx_len != 0 {
            config = config.ctx_len(options.ctx_len as usize);
        }
        let session =
            engine.engine.session(config).map_err(|e| Failure::from_error("options", &e))?;
        let handle = SESSIONS.insert(lantern_session {
            cancel: session.cancel_handle(),
            engine: engine.engine.clone(),
            ctx_len: session.ctx_len(),
            session: Mutex::new(session),
            last: Mutex::new(LastGeneration::default()),
        });
        // SAFETY: `out` is not NULL and the caller passes a writable pointer.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Frees a session. NULL or a handle that is not live: nothing. A generation running on
/// it in another thread (a misuse) runs to its end; the session is freed after it.
#[no_mangle]
pub extern "C" fn lantern_session_free(session: *mut lantern_session) {
    call_infallible((), || SESSIONS.remove(session));
}

/// Forgets the conversation: the context is emptied (its memory is kept).
#[no_mangle]
pub extern "C" fn lantern_session_reset(session: *mut lantern_session) -> lantern_status {
    call("lantern_session_reset", || {
        let session = SESSIONS.get(session, "session")?;
        session.lock()?.reset();
        session.record(LastGeneration { context_used: 0, ..session.last() });
        Ok(())
    })
}

/// Applies the LoRA adapter at `path` (llama.cpp's GGUF adapter format) at `scale` to this
/// session alone, in place of any it had; NULL `path`: the base model again. The engine's
/// weights are shared and unchanged. The conversation is forgotten. LANTERN_MODEL for an
/// adapter made for another model; the session is unchanged on any error.
///
/// # Safety
/// `path` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn lantern_session_set_adapter(
    session: *mut lantern_session,
    path: *const c_char,
    scale: f32,
) -> lantern_status {
    call("lantern_session_set_adapter", || {
        let session = SESSIONS.get(session, "session")?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = unsafe { optional_utf8_arg(path, "path") }?;
        let adapters = match path {
            None => Vec::new(),
            Some(path) => {
                let adapter = LoraAdapter::read(path).map_err(|e| {
                    Failure::from_error(&format!("reading the adapter {path}"), &e.into())
                })?;
                vec![(Arc::new(adapter), scale)]
            }
        };
        session.lock()?.set_adapters(adapters).map_err(|e| Failure::from_error("adapter", &e))?;
        session.record(LastGeneration { context_used: 0, ..session.last() });
        Ok(())
    })
}

/// Stops the generation running on `session` in another thread (its call returns
/// LANTERN_OK with stop reason LANTERN_STOP_CANCELLED); no effect when none runs.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn lantern_session_cancel(session: *const lantern_session) -> lantern_status {
    call("lantern_session_cancel", || {
        let session = SESSIONS.get(session, "session")?;
        session.cancel.cancel();
        Ok(())
    })
}

/// The statistics of the session's last generation, its context and its engine. Does
/// not wait for a running generation (it reports the one before).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lantern_session_stats(
    session: *const lantern_session,
    out: *mut lantern_stats,
) -> lantern_status {
    call("lantern_session_stats", || {
        let session = SESSIONS.get(session, "session")?;
        let out = out_arg(out, "out")?;
        let last = session.last();
        let engine = &session.engine;
        let stats = lantern_stats {
            load_seconds: engine.info().load_time.as_secs_f64(),
            prompt_tokens: count(last.timings.prompt_tokens),
            prompt_tokens_per_second: last.timings.prompt_tokens_per_second(),
            generated_tokens: count(last.timings.generated_tokens),
            generate_tokens_per_second: last.timings.generate_tokens_per_second(),
            bytes_streamed: engine.stream_stats().map_or(0, |s| s.bytes_read),
            peak_resident_bytes: peak_resident_bytes(),
            stop_reason: last.stop_reason,
            context_used: count(last.context_used),
            context_size: count(session.ctx_len),
        };
        // SAFETY: `out` is not NULL and the caller passes a writable pointer.
        unsafe { out.write(stats) };
        Ok(())
    })
}
