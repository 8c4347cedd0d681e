//! Tokenizing and detokenizing with an engine's tokenizer.

use std::ffi::{c_char, c_int};

use crate::engine::{lantern_engine, ENGINES};
use crate::status::{call, lantern_status, Failure, FfiResult};
use crate::strings::{out_arg, utf8_arg};

/// Fails with LANTERN_BUFFER_TOO_SMALL unless `capacity` holds `needed`.
fn check_capacity(what: &str, needed: usize, capacity: usize, unit: &str) -> FfiResult {
    if needed <= capacity {
        return Ok(());
    }
    Err(Failure::new(
        lantern_status::LANTERN_BUFFER_TOO_SMALL,
        format!("{what} has room for {capacity} {unit}; {needed} are needed"),
    ))
}

/// Encodes `text` into token ids (special tokens written in the text, such as
/// "<|im_start|>", are single tokens; with `add_special`, BOS is added when the model asks
/// for it). `*n_tokens` receives the count written, or with LANTERN_BUFFER_TOO_SMALL the
/// count needed (`tokens` may then be NULL with `capacity` 0). Thread-safe on one engine.
///
/// # Safety
/// `text` is NULL or NUL-terminated; `tokens` holds `capacity` writable ids;
/// `n_tokens` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lantern_tokenize(
    engine: *const lantern_engine,
    text: *const c_char,
    add_special: c_int,
    tokens: *mut u32,
    capacity: usize,
    n_tokens: *mut usize,
) -> lantern_status {
    call("lantern_tokenize", || {
        let engine = ENGINES.get(engine, "engine")?;
        // SAFETY: the caller passes NULL or a NUL-terminated string valid for the call.
        let text = unsafe { utf8_arg(text, "text") }?;
        let n_tokens = out_arg(n_tokens, "n_tokens")?;
        if capacity > 0 {
            out_arg(tokens, "tokens (with capacity > 0)")?;
        }
        let ids = engine
            .engine
            .tokenizer()
            .encode(text, add_special != 0)
            .map_err(|e| Failure::from_error("text", &e))?;
        // SAFETY: `n_tokens` is not NULL and the caller passes a writable pointer.
        unsafe { n_tokens.write(ids.len()) };
        check_capacity("tokens", ids.len(), capacity, "tokens")?;
        if !ids.is_empty() {
            // SAFETY: `tokens` is not NULL (capacity >= ids.len() > 0) and the caller
            // passes `capacity` writable ids there; `ids` is a separate allocation.
            unsafe { tokens.copy_from_nonoverlapping(ids.as_ptr(), ids.len()) };
        }
        Ok(())
    })
}

/// Decodes token ids into UTF-8 text (special tokens are written as their text) followed
/// by a NUL terminator. `*len` receives the text's length in bytes without the NUL, or
/// with LANTERN_BUFFER_TOO_SMALL the length needed (`capacity` must be at least `*len + 1`;
/// `out` may then be NULL with `capacity` 0). Thread-safe on one engine.
///
/// # Safety
/// `tokens` holds `n_tokens` ids; `out` holds `capacity` writable bytes; `len` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lantern_detokenize(
    engine: *const lantern_engine,
    tokens: *const u32,
    n_tokens: usize,
    out: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> lantern_status {
    call("lantern_detokenize", || {
        let engine = ENGINES.get(engine, "engine")?;
        let ids: &[u32] = if n_tokens == 0 {
            &[]
        } else if tokens.is_null() {
            return Err(Failure::null("tokens (with n_tokens > 0)"));
        } else {
            // SAFETY: not NULL, and the caller passes `n_tokens` ids there.
            unsafe { std::slice::from_raw_parts(tokens, n_tokens) }
        };
        if capacity > 0 {
            out_arg(out, "out (with capacity > 0)")?;
        }
        let len = out_arg(len, "len")?;
        let text = engine
            .engine
            .tokenizer()
            .decode(ids, false)
            .map_err(|e| Failure::from_error("tokens", &e))?;
        // SAFETY: `len` is not NULL and the caller passes a writable pointer.
        unsafe { len.write(text.len()) };
        check_capacity("out", text.len() + 1, capacity, "bytes (the text and its NUL)")?;
        // SAFETY: `out` is not NULL (capacity > text.len()) and the caller passes
        // `capacity` writable bytes there; `text` is a separate allocation.
        unsafe {
            out.cast::<u8>().copy_from_nonoverlapping(text.as_ptr(), text.len());
            out.add(text.len()).write(0);
        }
        Ok(())
    })
}
