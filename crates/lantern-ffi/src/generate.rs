//! Generation: options, chat and completion, and streaming pieces to a C callback.

use std::ffi::{c_char, c_int, c_void};

use lantern::{GenerateConfig, Message, SamplerConfig};

use crate::session::{lantern_session, SESSIONS};
use crate::stats::{lantern_stop_reason, LastGeneration};
use crate::status::{call, call_infallible, lantern_status, Failure, FfiResult};
use crate::strings::{options_or, utf8_arg};

/// Settings of one generation (`lantern_chat`, `lantern_complete`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lantern_generate_options {
    /// Most tokens to generate; default 256.
    pub max_tokens: u32,
    /// 0: greedy (the default).
    pub temperature: f32,
    /// 0: off.
    pub top_k: u32,
    /// 1: off.
    pub top_p: f32,
    /// 0: off.
    pub min_p: f32,
    /// 1: off.
    pub repeat_penalty: f32,
    /// Seed of the random draw: the same seed and inputs give the same tokens.
    pub seed: u64,
    /// `n_stop` UTF-8 stop strings; may be NULL when `n_stop` is 0.
    pub stop: *const *const c_char,
    /// Number of stop strings.
    pub n_stop: usize,
}

impl Default for lantern_generate_options {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            seed: 0,
            stop: std::ptr::null(),
            n_stop: 0,
        }
    }
}

/// One message of a conversation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct lantern_message {
    /// "system", "user", "assistant", or what the template accepts.
    pub role: *const c_char,
    /// What is said.
    pub content: *const c_char,
}

/// Streamed output: a UTF-8 piece of `len` bytes (never a split character, not
/// NUL-terminated, valid only during the call). Return 0 to go on, nonzero to stop (the
/// generation ends with LANTERN_STOP_CANCELLED). Called on the generating thread. NULL
/// where a callback is optional.
pub type lantern_piece_fn =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> c_int>;

/// Writes the default generation options (also what a NULL options pointer means):
/// greedy, 256 tokens, no stop strings. NULL `out`: nothing.
///
/// # Safety
/// `out` is NULL or points to writable options.
#[no_mangle]
pub unsafe extern "C" fn lantern_generate_options_default(out: *mut lantern_generate_options) {
    call_infallible((), || {
        if !out.is_null() {
            // SAFETY: not NULL; the caller passes a pointer to writable options.
            unsafe { out.write(lantern_generate_options::default()) };
        }
    });
}

/// Generates the assistant's reply to `messages` (the whole conversation; the prefix it
/// shares with the session's context is reused), streaming it to `on_piece`. `on_piece`
/// may be NULL (nothing is streamed); `options` may be NULL (greedy, 256 tokens).
///
/// # Safety
/// `messages` is NULL or holds `n_messages` messages whose strings are NULL or
/// NUL-terminated; `options` is NULL or valid, its `stop` holding `n_stop` strings.
#[no_mangle]
pub unsafe extern "C" fn lantern_chat(
    session: *mut lantern_session,
    messages: *const lantern_message,
    n_messages: usize,
    options: *const lantern_generate_options,
    on_piece: lantern_piece_fn,
    user_data: *mut c_void,
) -> lantern_status {
    call("lantern_chat", || {
        let session = SESSIONS.get(session, "session")?;
        // SAFETY: the caller passes `n_messages` valid messages (or NULL, which is checked).
        let messages = unsafe { read_messages(messages, n_messages) }?;
        // SAFETY: the caller passes NULL or valid options.
        let config = unsafe { generate_config(options) }?;
        run(&session, Prompt::Chat(&messages), &config, on_piece, user_data)
    })
}

/// Generates a continuation of `prompt`, appended to what the session has seen, streaming
/// it to `on_piece`. `on_piece` may be NULL; `options` may be NULL (greedy, 256 tokens).
///
/// # Safety
/// `prompt` is NULL or NUL-terminated; `options` is NULL or valid, its `stop`
/// holding `n_stop` strings.
#[no_mangle]
pub unsafe extern "C" fn lantern_complete(
    session: *mut lantern_session,
    prompt: *const c_char,
    options: *const lantern_generate_options,
    on_piece: lantern_piece_fn,
    user_data: *mut c_void,
) -> lantern_status {
    call("lantern_complete", || {
        let session = SESSIONS.get(session, "session")?;
        // SAFETY: the caller passes NULL or a NUL-terminated string valid for the call.
        let prompt = unsafe { utf8_arg(prompt, "prompt") }?;
        // SAFETY: the caller passes NULL or valid options.
        let config = unsafe { generate_config(options) }?;
        run(&session, Prompt::Text(prompt), &config, on_piece, user_data)
    })
}

/// What a generation continues.
enum Prompt<'a> {
    Chat(&'a [Message]),
    Text(&'a str),
}

/// Runs a generation to its end, calling `on_piece` with each piece of text, and records
/// its statistics in `session`.
fn run(
    session: &lantern_session,
    prompt: Prompt<'_>,
    config: &GenerateConfig,
    on_piece: lantern_piece_fn,
    user_data: *mut c_void,
) -> FfiResult {
    let mut guard = session.lock()?;
    let generation = match prompt {
        Prompt::Chat(messages) => guard.chat(messages, config),
        Prompt::Text(text) => guard.generate(text, config),
    };
    let what = match prompt {
        Prompt::Chat(_) => "messages",
        Prompt::Text(_) => "prompt",
    };
    let mut generation = generation.map_err(|e| Failure::from_error(what, &e))?;
    let mut stopped_by_callback = false;
    let mut error = None;
    for token in generation.by_ref() {
        let token = match token {
            Ok(token) => token,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        let Some(on_piece) = on_piece.filter(|_| !token.text.is_empty() && !stopped_by_callback)
        else {
            continue;
        };
        // SAFETY: the host's callback, called as its type says; the piece is valid UTF-8
        // of `len` bytes that lives until the callback returns.
        let verdict = unsafe { on_piece(token.text.as_ptr().cast(), token.text.len(), user_data) };
        if verdict != 0 {
            // The generation stops before its next token; the callback hears no more.
            stopped_by_callback = true;
            session.cancel_handle().cancel();
        }
    }
    let stop_reason = if stopped_by_callback {
        lantern_stop_reason::LANTERN_STOP_CANCELLED
    } else {
        lantern_stop_reason::of(generation.stop_reason())
    };
    let timings = generation.timings();
    drop(generation);
    let context_used = guard.tokens().len();
    session.record(LastGeneration { timings, stop_reason, context_used });
    match error {
        Some(e) => Err(Failure::from_error("generating", &e)),
        None => Ok(()),
    }
}

/// The facade's settings for `options` (NULL: the defaults).
///
/// # Safety
/// `options` is NULL or points to valid options whose `stop` holds `n_stop` pointers to
/// NUL-terminated strings (or is NULL with `n_stop` 0).
unsafe fn generate_config(options: *const lantern_generate_options) -> FfiResult<GenerateConfig> {
    // SAFETY: as this function's contract.
    let options = unsafe { options_or(options, lantern_generate_options::default()) };
    let sampler = SamplerConfig {
        temperature: options.temperature,
        top_k: options.top_k as usize,
        top_p: options.top_p,
        min_p: options.min_p,
        repeat_penalty: options.repeat_penalty,
        seed: options.seed,
        ..SamplerConfig::default()
    };
    // Checked here so that the message names the options, not the prompt.
    sampler.validate().map_err(|e| Failure::from_error("options", &e.into()))?;
    let mut config = GenerateConfig::greedy(options.max_tokens as usize).sampler(sampler);
    if options.n_stop > 0 && options.stop.is_null() {
        let what = format!("options->stop (with options->n_stop = {})", options.n_stop);
        return Err(Failure::null(&what));
    }
    for i in 0..options.n_stop {
        // SAFETY: `stop` is not NULL and holds `n_stop` pointers, by this function's contract.
        let stop = unsafe { options.stop.add(i).read() };
        // SAFETY: each is NULL or a NUL-terminated string, by this function's contract.
        let stop = unsafe { utf8_arg(stop, &format!("options->stop[{i}]")) }?;
        config = config.stop(stop);
    }
    Ok(config)
}

/// The messages at `messages`.
///
/// # Safety
/// `messages` is NULL or points to `n` messages whose strings are NULL or NUL-terminated.
unsafe fn read_messages(messages: *const lantern_message, n: usize) -> FfiResult<Vec<Message>> {
    if n == 0 {
        return Err(Failure::new(
            lantern_status::LANTERN_INVALID_ARGUMENT,
            "n_messages is 0: a chat needs at least one message",
        ));
    }
    if messages.is_null() {
        return Err(Failure::null("messages"));
    }
    (0..n)
        .map(|i| {
            // SAFETY: `messages` is not NULL and holds `n` messages, by the contract.
            let message = unsafe { messages.add(i).read() };
            // SAFETY: the strings are NULL or NUL-terminated, by the contract.
            let role = unsafe { utf8_arg(message.role, &format!("messages[{i}].role")) }?;
            // SAFETY: as `role`.
            let content = unsafe { utf8_arg(message.content, &format!("messages[{i}].content")) }?;
            Ok(Message::new(role, content))
        })
        .collect()
}
