//! Every function with bad arguments: NULL pointers, strings that are not UTF-8, freed and
//! foreign handles, bad files and settings, a prompt too long, buffers too small. Each
//! returns its status and names the argument or file in `lantern_last_error`; none crashes.

use std::ffi::{c_char, CStr};
use std::path::Path;
use std::ptr;

use lantern_ffi::lantern_status::*;
use lantern_ffi::*;
use lantern_test_support::models::Tiny;

use crate::testutil::*;

/// A tiny model's engine and a session on it, with the tempdir holding its file.
struct Tiny2 {
    _dir: tempfile::TempDir,
    engine: *mut lantern_engine,
    session: *mut lantern_session,
}

impl Tiny2 {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engine = load(&tiny_model_file(dir.path(), &Tiny::with_tokenizer()));
        let session = session(engine, 64);
        Self { _dir: dir, engine, session }
    }
}

impl Drop for Tiny2 {
    fn drop(&mut self) {
        lantern_session_free(self.session);
        lantern_engine_free(self.engine);
    }
}

#[test]
fn versions_and_status_names() {
    assert_eq!(lantern_abi_version(), LANTERN_ABI_VERSION);
    let version = unsafe { CStr::from_ptr(lantern_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    let name = |s| unsafe { CStr::from_ptr(lantern_status_name(s)) }.to_str().unwrap();
    assert_eq!(name(LANTERN_OK as StatusCode), "LANTERN_OK");
    assert_eq!(name(LANTERN_IO as StatusCode), "LANTERN_IO");
    assert_eq!(name(LANTERN_INTERNAL as StatusCode), "LANTERN_INTERNAL");
    // Any int C passes is answered.
    assert_eq!(name(13), "LANTERN_UNKNOWN_STATUS");
    assert_eq!(name(-1), "LANTERN_UNKNOWN_STATUS");
}

#[test]
fn defaults_fill_the_structs_and_ignore_null() {
    let mut engine =
        lantern_engine_options { budget: c"x".as_ptr(), storage: ptr::null(), depth: 9 };
    unsafe { lantern_engine_options_default(&mut engine) };
    assert!(engine.budget.is_null() && engine.storage.is_null() && engine.depth == 0);
    let mut session = lantern_session_options { threads: 3, ctx_len: 3 };
    unsafe { lantern_session_options_default(&mut session) };
    assert_eq!((session.threads, session.ctx_len), (0, 0));
    let mut generate = greedy(1);
    generate.temperature = 0.7;
    unsafe { lantern_generate_options_default(&mut generate) };
    assert_eq!(generate.max_tokens, 256);
    assert_eq!((generate.temperature, generate.top_p, generate.repeat_penalty), (0.0, 1.0, 1.0));
    assert!(generate.stop.is_null() && generate.n_stop == 0);
    unsafe {
        lantern_engine_options_default(ptr::null_mut());
        lantern_session_options_default(ptr::null_mut());
        lantern_generate_options_default(ptr::null_mut());
    }
}

#[test]
fn engine_load_checks_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let model = c_path(&tiny_model_file(dir.path(), &Tiny::with_tokenizer()));
    let mut engine = ptr::null_mut();
    let load = |path: *const c_char, options: *const lantern_engine_options, out| unsafe {
        lantern_engine_load(path, options, out)
    };
    assert_fails(load(ptr::null(), ptr::null(), &mut engine), LANTERN_NULL_ARGUMENT, "path");
    assert_fails(load(model.as_ptr(), ptr::null(), ptr::null_mut()), LANTERN_NULL_ARGUMENT, "out");
    assert_fails(load(NOT_UTF8.as_ptr(), ptr::null(), &mut engine), LANTERN_INVALID_UTF8, "path");
    let options = |budget: *const c_char, storage: *const c_char| lantern_engine_options {
        budget,
        storage,
        depth: 0,
    };
    let bad = options(NOT_UTF8.as_ptr(), ptr::null());
    assert_fails(load(model.as_ptr(), &bad, &mut engine), LANTERN_INVALID_UTF8, "options->budget");
    let bad = options(ptr::null(), NOT_UTF8.as_ptr());
    assert_fails(load(model.as_ptr(), &bad, &mut engine), LANTERN_INVALID_UTF8, "options->storage");
    let bad = options(c"lots".as_ptr(), ptr::null());
    assert_fails(
        load(model.as_ptr(), &bad, &mut engine),
        LANTERN_INVALID_ARGUMENT,
        "options->budget",
    );
    let bad = options(c"64MB".as_ptr(), c"floppy".as_ptr());
    assert_fails(
        load(model.as_ptr(), &bad, &mut engine),
        LANTERN_INVALID_ARGUMENT,
        "options->storage",
    );
    // Even for a resident model: a mistyped setting is never ignored.
    let bad = options(ptr::null(), c"floppy".as_ptr());
    assert_fails(load(model.as_ptr(), &bad, &mut engine), LANTERN_INVALID_ARGUMENT, "floppy");
    assert!(engine.is_null(), "*out is set only on LANTERN_OK");

    let missing = dir.path().join("missing.gguf");
    let (status, message) = try_load(&missing, None).unwrap_err();
    assert_eq!(status, LANTERN_IO, "{message}");
    assert!(message.contains("missing.gguf"), "{message}");

    // A GGUF file cannot be streamed: the message says what can.
    let budget = options(c"64MB".as_ptr(), ptr::null());
    let (status, message) =
        try_load(Path::new(model.to_str().unwrap()), Some(&budget)).unwrap_err();
    assert_eq!(status, LANTERN_IO, "{message}");
    assert!(message.contains("tiny.gguf") && message.contains(".lantern container"), "{message}");
}

#[test]
fn truncated_models_give_io_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = lantern_test_support::models::tiny_model(&Tiny::with_tokenizer());
    let real = std::fs::read(model_path()).unwrap();
    for (name, bytes) in
        [("tiny-cut.gguf", &tiny[..tiny.len() / 2]), ("real-cut.gguf", &real[..real.len() / 3])]
    {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (status, message) = try_load(&path, None).unwrap_err();
        assert_eq!(status, LANTERN_IO, "{message}");
        assert!(message.contains(name), "{message}");
    }
    let path = dir.path().join("garbage.gguf");
    std::fs::write(&path, b"not a model at all").unwrap();
    let (status, message) = try_load(&path, None).unwrap_err();
    assert_eq!(status, LANTERN_IO, "{message}");
    assert!(message.contains("garbage.gguf") && message.contains("GGUF"), "{message}");
}

#[test]
fn a_budget_too_small_to_stream_gives_budget() {
    let options = lantern_engine_options { budget: c"1kB".as_ptr(), ..Default::default() };
    let (status, message) = try_load(default_container(), Some(&options)).unwrap_err();
    assert_eq!(status, LANTERN_BUDGET, "{message}");
    assert!(message.contains("model.lantern") && message.contains("budget"), "{message}");
}

#[test]
fn freed_and_foreign_handles_are_invalid() {
    let tiny = Tiny2::new();
    let dir = tempfile::tempdir().unwrap();
    let engine = load(&tiny_model_file(dir.path(), &Tiny::with_tokenizer()));
    let session = session(engine, 64);
    lantern_session_free(session);
    lantern_engine_free(engine);
    // Freeing again, or NULL, does nothing.
    lantern_session_free(session);
    lantern_engine_free(engine);
    lantern_session_free(ptr::null_mut());
    lantern_engine_free(ptr::null_mut());

    // A session where an engine belongs, and an address lantern never made.
    let foreign_engine = tiny.session.cast::<lantern_engine>();
    let made_up = 0x1000 as *mut lantern_session;
    let mut out = ptr::null_mut();
    let mut n = 0;
    let mut stats = std::mem::MaybeUninit::uninit();
    for engine in [engine, foreign_engine] {
        let status = unsafe { lantern_session_new(engine, ptr::null(), &mut out) };
        assert_fails(status, LANTERN_INVALID_HANDLE, "engine");
        let status =
            unsafe { lantern_tokenize(engine, c"hi".as_ptr(), 0, ptr::null_mut(), 0, &mut n) };
        assert_fails(status, LANTERN_INVALID_HANDLE, "lantern_engine");
        let status =
            unsafe { lantern_detokenize(engine, ptr::null(), 0, ptr::null_mut(), 0, &mut n) };
        assert_fails(status, LANTERN_INVALID_HANDLE, "engine");
    }
    for session in [session, made_up, tiny.engine.cast()] {
        assert_fails(lantern_session_reset(session), LANTERN_INVALID_HANDLE, "session");
        assert_fails(lantern_session_cancel(session), LANTERN_INVALID_HANDLE, "session");
        let status = unsafe { lantern_session_stats(session, stats.as_mut_ptr()) };
        assert_fails(status, LANTERN_INVALID_HANDLE, "lantern_session");
        let mut pieces = Pieces::default();
        assert_fails(
            complete(session, "hi", &greedy(1), &mut pieces),
            LANTERN_INVALID_HANDLE,
            "session",
        );
        assert_fails(
            chat(session, &[("user", "hi")], &greedy(1), &mut pieces),
            LANTERN_INVALID_HANDLE,
            "session",
        );
        assert!(pieces.pieces.is_empty());
    }
    // The live handles still work.
    let mut pieces = Pieces::default();
    assert_eq!(complete(tiny.session, "he", &greedy(2), &mut pieces), LANTERN_OK);
}

#[test]
fn null_handles_and_outputs_are_named() {
    let tiny = Tiny2::new();
    let mut out = ptr::null_mut();
    let mut n = 0;
    let status = unsafe { lantern_session_new(ptr::null(), ptr::null(), &mut out) };
    assert_fails(status, LANTERN_NULL_ARGUMENT, "engine");
    let status = unsafe { lantern_session_new(tiny.engine, ptr::null(), ptr::null_mut()) };
    assert_fails(status, LANTERN_NULL_ARGUMENT, "out");
    assert_fails(lantern_session_reset(ptr::null_mut()), LANTERN_NULL_ARGUMENT, "session");
    assert_fails(lantern_session_cancel(ptr::null()), LANTERN_NULL_ARGUMENT, "session");
    let mut stats = std::mem::MaybeUninit::uninit();
    let status = unsafe { lantern_session_stats(ptr::null(), stats.as_mut_ptr()) };
    assert_fails(status, LANTERN_NULL_ARGUMENT, "session");
    let status = unsafe { lantern_session_stats(tiny.session, ptr::null_mut()) };
    assert_fails(status, LANTERN_NULL_ARGUMENT, "out");

    // Tokens.
    let tokenize = |engine, text: *const c_char, tokens: *mut u32, capacity, n: *mut usize| unsafe {
        lantern_tokenize(engine, text, 1, tokens, capacity, n)
    };
    let mut ids = [0u32; 8];
    assert_fails(
        tokenize(ptr::null(), c"he".as_ptr(), ids.as_mut_ptr(), 8, &mut n),
        LANTERN_NULL_ARGUMENT,
        "engine",
    );
    assert_fails(
        tokenize(tiny.engine, ptr::null(), ids.as_mut_ptr(), 8, &mut n),
        LANTERN_NULL_ARGUMENT,
        "text",
    );
    assert_fails(
        tokenize(tiny.engine, NOT_UTF8.as_ptr(), ids.as_mut_ptr(), 8, &mut n),
        LANTERN_INVALID_UTF8,
        "text",
    );
    assert_fails(
        tokenize(tiny.engine, c"he".as_ptr(), ptr::null_mut(), 8, &mut n),
        LANTERN_NULL_ARGUMENT,
        "tokens",
    );
    assert_fails(
        tokenize(tiny.engine, c"he".as_ptr(), ids.as_mut_ptr(), 8, ptr::null_mut()),
        LANTERN_NULL_ARGUMENT,
        "n_tokens",
    );
    let detokenize = |tokens: *const u32, n_tokens, out: *mut c_char, capacity, len: *mut usize| unsafe {
        lantern_detokenize(tiny.engine, tokens, n_tokens, out, capacity, len)
    };
    let mut text = [0 as c_char; 8];
    assert_fails(
        detokenize(ptr::null(), 2, text.as_mut_ptr(), 8, &mut n),
        LANTERN_NULL_ARGUMENT,
        "tokens",
    );
    assert_fails(
        detokenize(ids.as_ptr(), 1, ptr::null_mut(), 8, &mut n),
        LANTERN_NULL_ARGUMENT,
        "out",
    );
    assert_fails(
        detokenize(ids.as_ptr(), 1, text.as_mut_ptr(), 8, ptr::null_mut()),
        LANTERN_NULL_ARGUMENT,
        "len",
    );
    // An id outside the vocabulary.
    let bad = [0u32, 100_000];
    assert_fails(
        detokenize(bad.as_ptr(), 2, text.as_mut_ptr(), 8, &mut n),
        LANTERN_INVALID_ARGUMENT,
        "100000",
    );
    // No tokens: the empty string.
    assert_eq!(detokenize(ptr::null(), 0, text.as_mut_ptr(), 8, &mut n), LANTERN_OK);
    assert_eq!((n, text[0]), (0, 0));
}

#[test]
fn buffers_too_small_report_what_is_needed() {
    let tiny = Tiny2::new();
    let mut n = usize::MAX;
    // "hello" is he, l, l, o in the byte tokenizer.
    let status =
        unsafe { lantern_tokenize(tiny.engine, c"hello".as_ptr(), 0, ptr::null_mut(), 0, &mut n) };
    assert_fails(status, LANTERN_BUFFER_TOO_SMALL, "tokens");
    assert_eq!(n, 4);
    let mut ids = [0u32; 4];
    let status =
        unsafe { lantern_tokenize(tiny.engine, c"hello".as_ptr(), 0, ids.as_mut_ptr(), 3, &mut n) };
    assert_fails(status, LANTERN_BUFFER_TOO_SMALL, "need");
    assert_eq!(n, 4);
    let status =
        unsafe { lantern_tokenize(tiny.engine, c"hello".as_ptr(), 0, ids.as_mut_ptr(), 4, &mut n) };
    assert_eq!((status, n, last_error()), (LANTERN_OK, 4, String::new()));

    let mut len = 0;
    let status =
        unsafe { lantern_detokenize(tiny.engine, ids.as_ptr(), 4, ptr::null_mut(), 0, &mut len) };
    assert_fails(status, LANTERN_BUFFER_TOO_SMALL, "out");
    assert_eq!(len, 5, "the length without the NUL");
    // Room for the text but not its NUL.
    let mut text = [0x7f as c_char; 5];
    let status =
        unsafe { lantern_detokenize(tiny.engine, ids.as_ptr(), 4, text.as_mut_ptr(), 5, &mut len) };
    assert_fails(status, LANTERN_BUFFER_TOO_SMALL, "6");
    assert_eq!(len, 5);
    let mut text = [0x7f as c_char; 6];
    let status =
        unsafe { lantern_detokenize(tiny.engine, ids.as_ptr(), 4, text.as_mut_ptr(), 6, &mut len) };
    assert_eq!(status, LANTERN_OK);
    assert_eq!(unsafe { CStr::from_ptr(text.as_ptr()) }, c"hello");
}

#[test]
fn generation_checks_its_arguments() {
    let tiny = Tiny2::new();
    let mut pieces = Pieces::default();
    let options = greedy(2);
    let complete_raw =
        |session, prompt: *const c_char, options: *const lantern_generate_options| unsafe {
            lantern_complete(session, prompt, options, None, ptr::null_mut())
        };
    assert_fails(
        complete_raw(ptr::null_mut(), c"he".as_ptr(), &options),
        LANTERN_NULL_ARGUMENT,
        "session",
    );
    assert_fails(
        complete_raw(tiny.session, ptr::null(), &options),
        LANTERN_NULL_ARGUMENT,
        "prompt",
    );
    assert_fails(
        complete_raw(tiny.session, NOT_UTF8.as_ptr(), &options),
        LANTERN_INVALID_UTF8,
        "prompt",
    );
    // NULL options: greedy, 256 tokens (the tiny model's context stops it first).
    assert_eq!(
        complete_raw(tiny.session, c"he".as_ptr(), ptr::null()),
        LANTERN_OK,
        "{}",
        last_error()
    );

    // Stop strings.
    let with_stops =
        |stop: *const *const c_char, n_stop| lantern_generate_options { stop, n_stop, ..greedy(2) };
    let status = complete(tiny.session, "he", &with_stops(ptr::null(), 1), &mut pieces);
    assert_fails(status, LANTERN_NULL_ARGUMENT, "options->stop");
    let stops = [c"ok".as_ptr(), ptr::null()];
    let status = complete(tiny.session, "he", &with_stops(stops.as_ptr(), 2), &mut pieces);
    assert_fails(status, LANTERN_NULL_ARGUMENT, "options->stop[1]");
    let stops = [c"ok".as_ptr(), NOT_UTF8.as_ptr()];
    let status = complete(tiny.session, "he", &with_stops(stops.as_ptr(), 2), &mut pieces);
    assert_fails(status, LANTERN_INVALID_UTF8, "options->stop[1]");
    let status = chat(tiny.session, &[("user", "he")], &with_stops(stops.as_ptr(), 2), &mut pieces);
    assert_fails(status, LANTERN_INVALID_UTF8, "options->stop[1]");
    // Sampler settings out of range.
    let hot = lantern_generate_options { temperature: -1.0, ..greedy(2) };
    assert_fails(
        complete(tiny.session, "he", &hot, &mut pieces),
        LANTERN_INVALID_ARGUMENT,
        "temperature",
    );

    // Messages.
    let chat_raw = |messages: *const lantern_message, n| unsafe {
        lantern_chat(tiny.session, messages, n, &options, None, ptr::null_mut())
    };
    assert_fails(chat_raw(ptr::null(), 1), LANTERN_NULL_ARGUMENT, "messages");
    assert_fails(chat_raw(ptr::null(), 0), LANTERN_INVALID_ARGUMENT, "n_messages");
    let message = |role: *const c_char, content: *const c_char| lantern_message { role, content };
    let user = c"user".as_ptr();
    let two = [message(user, c"he".as_ptr()), message(ptr::null(), c"he".as_ptr())];
    assert_fails(chat_raw(two.as_ptr(), 2), LANTERN_NULL_ARGUMENT, "messages[1].role");
    let two = [message(user, c"he".as_ptr()), message(user, ptr::null())];
    assert_fails(chat_raw(two.as_ptr(), 2), LANTERN_NULL_ARGUMENT, "messages[1].content");
    let one = [message(NOT_UTF8.as_ptr(), c"he".as_ptr())];
    assert_fails(chat_raw(one.as_ptr(), 1), LANTERN_INVALID_UTF8, "messages[0].role");
    let one = [message(user, NOT_UTF8.as_ptr())];
    assert_fails(chat_raw(one.as_ptr(), 1), LANTERN_INVALID_UTF8, "messages[0].content");
    let one = [message(user, c"he".as_ptr())];
    assert_eq!(chat_raw(one.as_ptr(), 1), LANTERN_OK, "{}", last_error());
    assert_eq!(last_error(), "");
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let tiny = Tiny2::new();
    let long = "he ".repeat(100);
    let mut pieces = Pieces::default();
    let status = complete(tiny.session, &long, &greedy(2), &mut pieces);
    assert_fails(status, LANTERN_PROMPT_TOO_LONG, "context of 64");
    assert_fails(
        chat(tiny.session, &[("user", &long)], &greedy(2), &mut pieces),
        LANTERN_PROMPT_TOO_LONG,
        "64",
    );
    assert!(pieces.pieces.is_empty());
    // Nothing was computed: the session still works.
    assert_eq!(complete(tiny.session, "he", &greedy(2), &mut pieces), LANTERN_OK);
}

#[test]
fn session_settings_out_of_range_are_invalid() {
    let tiny = Tiny2::new();
    let mut out = ptr::null_mut();
    // More context than a u32 of positions' cache can be allocated for a 64-wide model is
    // not worth testing here; a context of 1 cannot hold a prompt and its reply.
    let options = lantern_session_options { threads: 1, ctx_len: 1 };
    let status = unsafe { lantern_session_new(tiny.engine, &options, &mut out) };
    if status == LANTERN_OK {
        let mut pieces = Pieces::default();
        assert_fails(
            complete(out, "h", &greedy(2), &mut pieces),
            LANTERN_PROMPT_TOO_LONG,
            "prompt",
        );
        lantern_session_free(out);
    } else {
        assert_fails(status, LANTERN_INVALID_ARGUMENT, "options");
    }
}

#[test]
fn chat_with_a_broken_template_gives_template() {
    let dir = tempfile::tempdir().unwrap();
    // A template that does not compile: the model loads, and only chat fails.
    let broken = ("tokenizer.chat_template", lantern_io::Value::from("{% for %}"));
    let tiny = Tiny { set_keys: vec![broken], ..Tiny::with_tokenizer() };
    let engine = load(&tiny_model_file(dir.path(), &tiny));
    let session = session(engine, 64);
    let mut pieces = Pieces::default();
    assert_fails(
        chat(session, &[("user", "he")], &greedy(2), &mut pieces),
        LANTERN_TEMPLATE,
        "chat template",
    );
    // Completion still works.
    assert_eq!(complete(session, "he", &greedy(2), &mut pieces), LANTERN_OK);
    lantern_session_free(session);
    lantern_engine_free(engine);
}
