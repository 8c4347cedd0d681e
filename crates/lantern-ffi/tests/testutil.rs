//! Helpers shared by the tests: where the real model is, tiny models, and safe wrappers
//! around the calls that the tests make many times.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

use lantern_ffi::*;
use lantern_io::container::{write_container_with, WriteOptions};
use lantern_test_support::models::{tiny_model, Tiny};

pub(crate) use lantern_test_support::real_model::model_path;

/// The ChatML prompt of the reference question, as the Rust API's tests write it.
pub(crate) const PARIS_PROMPT: &str =
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

pub(crate) fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in test strings")
}

pub(crate) fn c_path(path: &Path) -> CString {
    c(path.to_str().expect("test paths are UTF-8"))
}

/// Bytes that are not UTF-8 (a lone continuation byte), NUL-terminated.
pub(crate) const NOT_UTF8: &CStr = c"caf\xe9";

/// This thread's last error message.
pub(crate) fn last_error() -> String {
    // SAFETY: the pointer is valid until this thread's next call.
    unsafe { CStr::from_ptr(lantern_last_error()) }.to_str().expect("UTF-8 message").to_owned()
}

/// Asserts that `status` is `expected` and the last error names `names`.
#[track_caller]
pub(crate) fn assert_fails(status: lantern_status, expected: lantern_status, names: &str) {
    let message = last_error();
    assert_eq!(status, expected, "message: {message}");
    assert!(message.contains(names), "{message:?} does not name {names:?}");
}

/// Loads `path` with `options`, or gives the failure's status and message.
pub(crate) fn try_load(
    path: &Path,
    options: Option<&lantern_engine_options>,
) -> Result<*mut lantern_engine, (lantern_status, String)> {
    let path = c_path(path);
    let mut engine = ptr::null_mut();
    let options = options.map_or(ptr::null(), ptr::from_ref);
    let status = unsafe { lantern_engine_load(path.as_ptr(), options, &mut engine) };
    match status {
        lantern_status::LANTERN_OK => Ok(engine),
        _ => Err((status, last_error())),
    }
}

pub(crate) fn load(path: &Path) -> *mut lantern_engine {
    try_load(path, None).unwrap_or_else(|e| panic!("load {}: {e:?}", path.display()))
}

/// The real default model, resident.
pub(crate) fn default_engine() -> *mut lantern_engine {
    load(&model_path())
}

/// A tiny random model with a byte tokenizer and a ChatML template, in `dir`.
pub(crate) fn tiny_model_file(dir: &Path, tiny: &Tiny) -> PathBuf {
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, tiny_model(tiny)).unwrap();
    path
}

pub(crate) fn session(engine: *const lantern_engine, ctx_len: u32) -> *mut lantern_session {
    let options = lantern_session_options { threads: 2, ctx_len };
    let mut session = ptr::null_mut();
    let status = unsafe { lantern_session_new(engine, &options, &mut session) };
    assert_eq!(status, lantern_status::LANTERN_OK, "{}", last_error());
    session
}

pub(crate) fn greedy(max_tokens: u32) -> lantern_generate_options {
    lantern_generate_options { max_tokens, ..lantern_generate_options::default() }
}

/// What a generation streamed: each piece's bytes.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    pub(crate) pieces: Vec<Vec<u8>>,
    /// Stop (return nonzero) after this many pieces.
    pub(crate) stop_after: Option<usize>,
}

impl Pieces {
    /// The pieces concatenated, each checked to be UTF-8 on its own.
    pub(crate) fn text(&self) -> String {
        self.pieces
            .iter()
            .map(|p| std::str::from_utf8(p).expect("each piece is UTF-8 on its own"))
            .collect()
    }
}

/// A `lantern_piece_fn` that appends to the `Pieces` at `user_data`.
pub(crate) unsafe extern "C" fn collect(
    piece: *const c_char,
    len: usize,
    user_data: *mut c_void,
) -> c_int {
    let pieces = unsafe { &mut *user_data.cast::<Pieces>() };
    let bytes = unsafe { std::slice::from_raw_parts(piece.cast::<u8>(), len) };
    pieces.pieces.push(bytes.to_vec());
    c_int::from(pieces.stop_after.is_some_and(|n| pieces.pieces.len() >= n))
}

/// Completes `prompt` on `session`, collecting the pieces.
pub(crate) fn complete(
    session: *mut lantern_session,
    prompt: &str,
    options: &lantern_generate_options,
    pieces: &mut Pieces,
) -> lantern_status {
    let prompt = c(prompt);
    let user_data = ptr::from_mut(pieces).cast();
    unsafe { lantern_complete(session, prompt.as_ptr(), options, Some(collect), user_data) }
}

/// Completes `prompt` and returns the text, asserting success.
pub(crate) fn complete_text(
    session: *mut lantern_session,
    prompt: &str,
    options: &lantern_generate_options,
) -> String {
    let mut pieces = Pieces::default();
    let status = complete(session, prompt, options, &mut pieces);
    assert_eq!(status, lantern_status::LANTERN_OK, "{}", last_error());
    pieces.text()
}

/// Chats `(role, content)` messages on `session`, collecting the pieces.
pub(crate) fn chat(
    session: *mut lantern_session,
    messages: &[(&str, &str)],
    options: &lantern_generate_options,
    pieces: &mut Pieces,
) -> lantern_status {
    let strings: Vec<(CString, CString)> = messages.iter().map(|(r, t)| (c(r), c(t))).collect();
    let messages: Vec<lantern_message> = strings
        .iter()
        .map(|(role, content)| lantern_message { role: role.as_ptr(), content: content.as_ptr() })
        .collect();
    let user_data = ptr::from_mut(pieces).cast();
    unsafe {
        lantern_chat(session, messages.as_ptr(), messages.len(), options, Some(collect), user_data)
    }
}

pub(crate) fn stats(session: *const lantern_session) -> lantern_stats {
    let mut stats = std::mem::MaybeUninit::uninit();
    let status = unsafe { lantern_session_stats(session, stats.as_mut_ptr()) };
    assert_eq!(status, lantern_status::LANTERN_OK, "{}", last_error());
    unsafe { stats.assume_init() }
}

/// The ids of `text`.
pub(crate) fn tokenize(engine: *const lantern_engine, text: &str) -> Vec<u32> {
    let text = c(text);
    let mut ids = vec![0u32; 4096];
    let mut n = 0;
    let status =
        unsafe { lantern_tokenize(engine, text.as_ptr(), 0, ids.as_mut_ptr(), ids.len(), &mut n) };
    assert_eq!(status, lantern_status::LANTERN_OK, "{}", last_error());
    ids.truncate(n);
    ids
}

/// The default model as a `.lantern` container, written once for the tests that stream.
pub(crate) fn default_container() -> &'static Path {
    static CONTAINER: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    let (_, path) = CONTAINER.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.lantern");
        let source = lantern_io::ModelSource::read(model_path()).unwrap();
        let gguf = lantern_io::GgufModel::open(source).unwrap();
        write_container_with(&gguf, &path, WriteOptions::default(), |_, _| {}).unwrap();
        (dir, path)
    });
    path
}
