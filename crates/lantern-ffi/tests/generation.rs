//! Generation through the C ABI with the real default model: the same tokens as the Rust
//! API, streaming, stop strings, cancellation, reset, statistics.

use std::ffi::c_char;
use std::ptr;

use lantern::{Engine, GenerateConfig, Message, SessionConfig, StopReason};
use lantern_ffi::lantern_status::*;
use lantern_ffi::lantern_stop_reason::*;
use lantern_ffi::*;

use crate::testutil::*;

const SYSTEM: &str = "You are a helpful assistant.";
const QUESTION: &str = "What is the capital of France?";

fn rust_session(engine: &Engine) -> lantern::Session {
    engine.session(SessionConfig::default().threads(2).ctx_len(512)).unwrap()
}

#[test]
fn chat_gives_the_tokens_and_text_of_the_rust_api() {
    let engine = Engine::load(model_path()).unwrap();
    let messages = [Message::system(SYSTEM), Message::user(QUESTION)];
    let expected = rust_session(&engine)
        .chat(&messages, &GenerateConfig::greedy(64))
        .unwrap()
        .complete()
        .unwrap();
    assert!(expected.text.contains("Paris"), "{expected:?}");

    let ffi_engine = default_engine();
    let session = session(ffi_engine, 512);
    let mut pieces = Pieces::default();
    let status = chat(session, &[("system", SYSTEM), ("user", QUESTION)], &greedy(64), &mut pieces);
    assert_eq!(status, LANTERN_OK, "{}", last_error());
    assert_eq!(last_error(), "");
    let text = pieces.text();
    assert_eq!(text, expected.text);
    // The same ids: the text's tokens, as many as the Rust API generated.
    assert_eq!(tokenize(ffi_engine, &text), expected.tokens);
    let stats = stats(session);
    assert_eq!(stats.generated_tokens as usize, expected.tokens.len());
    assert_eq!(stats.stop_reason, LANTERN_STOP_END_OF_TEXT);
    assert_eq!(expected.stop_reason, StopReason::EndOfTurn);
    lantern_session_free(session);
    lantern_engine_free(ffi_engine);
}

#[test]
fn complete_gives_the_tokens_and_text_of_the_rust_api() {
    let engine = Engine::load(model_path()).unwrap();
    let expected = rust_session(&engine)
        .generate(PARIS_PROMPT, &GenerateConfig::greedy(64))
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(expected.text, "The capital of France is Paris.");

    let ffi_engine = default_engine();
    let session = session(ffi_engine, 512);
    assert_eq!(complete_text(session, PARIS_PROMPT, &greedy(64)), expected.text);
    assert_eq!(tokenize(ffi_engine, &expected.text), expected.tokens);
    let stats = stats(session);
    assert_eq!(stats.generated_tokens, 7);
    assert_eq!(stats.prompt_tokens, 16);
    // The prompt, the answer and the end-of-turn token.
    assert_eq!(stats.context_used, 16 + 7 + 1);
    assert_eq!(stats.context_size, 512);
    assert_eq!(stats.stop_reason, LANTERN_STOP_END_OF_TEXT);
    assert!(stats.load_seconds > 0.0);
    assert!(stats.generate_tokens_per_second > 0.0 && stats.prompt_tokens_per_second > 0.0);
    assert_eq!(stats.bytes_streamed, 0, "a resident model streams nothing");
    if cfg!(target_os = "linux") {
        // At least the model's 80 MB of weights were resident at some point.
        assert!(stats.peak_resident_bytes > 50_000_000, "{}", stats.peak_resident_bytes);
    }
    lantern_session_free(session);
    lantern_engine_free(ffi_engine);
}

#[test]
fn streamed_pieces_are_utf8_and_concatenate_to_the_completion() {
    // Accents and a non-Latin script: pieces must never split a character.
    let prompt = "<|im_start|>user\nWrite three French words with accents, then the word \
                  for 'water' in Japanese.<|im_end|>\n<|im_start|>assistant\n";
    let engine = Engine::load(model_path()).unwrap();
    let expected =
        rust_session(&engine).generate(prompt, &GenerateConfig::greedy(48)).unwrap().complete();
    let expected = expected.unwrap();
    assert!(!expected.text.is_ascii(), "the reply should hold non-ASCII text: {expected:?}");

    let ffi_engine = default_engine();
    let session = session(ffi_engine, 512);
    let mut pieces = Pieces::default();
    assert_eq!(complete(session, prompt, &greedy(48), &mut pieces), LANTERN_OK);
    // `text` checks each piece is UTF-8 on its own.
    assert_eq!(pieces.text(), expected.text);
    assert!(pieces.pieces.len() > 1);
    lantern_session_free(session);
    lantern_engine_free(ffi_engine);
}

#[test]
fn a_stop_string_ends_the_generation_without_being_streamed() {
    let engine = default_engine();
    let session = session(engine, 512);
    let stops = [c"Paris".as_ptr()];
    let options = lantern_generate_options { stop: stops.as_ptr(), n_stop: 1, ..greedy(64) };
    assert_eq!(complete_text(session, PARIS_PROMPT, &options), "The capital of France is ");
    assert_eq!(stats(session).stop_reason, LANTERN_STOP_STOP_STRING);
    lantern_session_free(session);
    lantern_engine_free(engine);
}

#[test]
fn max_tokens_and_a_null_callback() {
    let engine = default_engine();
    let session = session(engine, 512);
    let options = greedy(3);
    let prompt = c("The history of the Roman Empire");
    let status =
        unsafe { lantern_complete(session, prompt.as_ptr(), &options, None, ptr::null_mut()) };
    assert_eq!(status, LANTERN_OK, "{}", last_error());
    let stats = stats(session);
    assert_eq!((stats.generated_tokens, stats.stop_reason), (3, LANTERN_STOP_MAX_TOKENS));
    lantern_session_free(session);
    lantern_engine_free(engine);
}

#[test]
fn a_callback_returning_nonzero_stops_the_generation() {
    let engine = default_engine();
    let session = session(engine, 512);
    let mut pieces = Pieces { stop_after: Some(2), ..Pieces::default() };
    let status = complete(session, "The history of the Roman Empire", &greedy(64), &mut pieces);
    assert_eq!(status, LANTERN_OK, "{}", last_error());
    assert_eq!(pieces.pieces.len(), 2, "no piece after the callback said stop");
    let stopped = stats(session);
    assert_eq!(stopped.stop_reason, LANTERN_STOP_CANCELLED);
    assert!(stopped.generated_tokens <= 3, "{stopped:?}");
    // The next generation runs normally: the stop is not remembered.
    let mut pieces = Pieces::default();
    assert_eq!(complete(session, " and", &greedy(4), &mut pieces), LANTERN_OK);
    assert_eq!(stats(session).stop_reason, LANTERN_STOP_MAX_TOKENS);
    lantern_session_free(session);
    lantern_engine_free(engine);
}

#[test]
fn reset_empties_the_context() {
    let engine = default_engine();
    let session = session(engine, 512);
    let first = complete_text(session, PARIS_PROMPT, &greedy(64));
    assert!(stats(session).context_used > 0);
    assert_eq!(lantern_session_reset(session), LANTERN_OK);
    assert_eq!(stats(session).context_used, 0);
    // Without the first conversation in the context, the same prompt gives the same answer
    // and computes all of its tokens again.
    assert_eq!(complete_text(session, PARIS_PROMPT, &greedy(64)), first);
    assert_eq!(stats(session).prompt_tokens, 16);
    lantern_session_free(session);
    lantern_engine_free(engine);
}

#[test]
fn tokenize_and_detokenize_round_trip() {
    let engine = default_engine();
    let text = "Héllo, wörld! <|im_start|>";
    let ids = tokenize(engine, text);
    assert_eq!(ids.last(), Some(&1), "special tokens in the text are single tokens: {ids:?}");
    let mut out = vec![0 as c_char; 256];
    let mut len = 0;
    let status = unsafe {
        lantern_detokenize(engine, ids.as_ptr(), ids.len(), out.as_mut_ptr(), out.len(), &mut len)
    };
    assert_eq!(status, LANTERN_OK, "{}", last_error());
    let bytes: Vec<u8> = out[..=len].iter().map(|&b| b as u8).collect();
    assert_eq!(bytes[len], 0, "NUL-terminated");
    assert_eq!(std::str::from_utf8(&bytes[..len]).unwrap(), text);
    lantern_engine_free(engine);
}

#[test]
fn freeing_the_engine_before_its_session_is_safe() {
    let engine = default_engine();
    let session = session(engine, 512);
    lantern_engine_free(engine);
    assert_eq!(
        complete_text(session, PARIS_PROMPT, &greedy(64)),
        "The capital of France is Paris."
    );
    lantern_session_free(session);
}

#[test]
fn a_streamed_container_gives_the_resident_tokens_and_counts_its_reads() {
    let options =
        lantern_engine_options { budget: c"25%".as_ptr(), storage: c"none".as_ptr(), depth: 1 };
    let streamed = try_load(default_container(), Some(&options)).unwrap();
    let session = session(streamed, 512);
    assert_eq!(
        complete_text(session, PARIS_PROMPT, &greedy(64)),
        "The capital of France is Paris."
    );
    assert!(stats(session).bytes_streamed > 0);
    lantern_session_free(session);
    lantern_engine_free(streamed);
}
