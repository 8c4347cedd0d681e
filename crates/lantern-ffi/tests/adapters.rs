//! Adapters through the C ABI: a session's adapter gives the Rust API's text with the same
//! adapter, leaves other sessions of the engine on the base model, and a bad adapter is
//! refused with LANTERN_MODEL or LANTERN_IO and the session left as it was.

use std::path::Path;
use std::ptr;
use std::sync::Arc;

use lantern::{BlockMatrix, Engine, GenerateConfig, LoraAdapter, LowRank, SessionConfig};
use lantern_ffi::lantern_status::*;
use lantern_ffi::*;
use lantern_test_support::models::Tiny;

use crate::testutil::*;

const PROMPT: &str = "The capital of France is";

/// A deterministic adapter on every block's value and down matrices of `engine`'s model.
fn wavy_adapter(engine: &Engine, rank: usize) -> LoraAdapter {
    let c = engine.config();
    let mut adapter = LoraAdapter::new(c.architecture.clone(), rank as f32);
    let wave =
        |n: usize, phase: f32| (0..n).map(|i| 0.05 * (i as f32 * 0.37 + phase).sin()).collect();
    for l in 0..c.n_layers {
        let (d, kv, ff) = (c.d_model, c.kv_dim(), c.ffn_widths[l]);
        for (m, inputs, outputs) in [(BlockMatrix::AttnV, d, kv), (BlockMatrix::FfnDown, ff, d)] {
            let a = wave(rank * inputs, l as f32);
            let b = wave(outputs * rank, 1.0 + l as f32);
            adapter.insert(l, m, LowRank::new(rank, inputs, outputs, a, b).unwrap());
        }
    }
    adapter
}

fn set_adapter(session: *mut lantern_session, path: Option<&Path>, scale: f32) -> lantern_status {
    let path = path.map(c_path);
    let ptr = path.as_ref().map_or(ptr::null(), |p| p.as_ptr());
    unsafe { lantern_session_set_adapter(session, ptr, scale) }
}

#[test]
fn a_sessions_adapter_gives_the_rust_apis_text_and_leaves_other_sessions_alone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::load(model_path()).unwrap();
    let adapter = Arc::new(wavy_adapter(&engine, 4));
    let file = dir.path().join("adapter.gguf");
    adapter.write(&file).unwrap();
    let rust = |config: SessionConfig| {
        let config = config.threads(2).ctx_len(256);
        let mut session = engine.session(config).unwrap();
        session.generate(PROMPT, &GenerateConfig::greedy(16)).unwrap().complete().unwrap().text
    };
    let base = rust(SessionConfig::default());
    let adapted = rust(SessionConfig::default().adapter(adapter, 2.0));
    assert_ne!(adapted, base, "the adapter changes nothing");

    let ffi_engine = default_engine();
    let (plain, tuned) = (session(ffi_engine, 256), session(ffi_engine, 256));
    assert_eq!(set_adapter(tuned, Some(&file), 2.0), LANTERN_OK, "{}", last_error());
    assert_eq!(complete_text(tuned, PROMPT, &greedy(16)), adapted);
    assert_eq!(complete_text(plain, PROMPT, &greedy(16)), base);
    // NULL: the base model again.
    assert_eq!(set_adapter(tuned, None, 1.0), LANTERN_OK);
    assert_eq!(complete_text(tuned, PROMPT, &greedy(16)), base);

    // An adapter for another model, a missing file: refused, the session as it was.
    let tiny_engine = Engine::load(tiny_model_file(dir.path(), &Tiny::with_tokenizer())).unwrap();
    let foreign = dir.path().join("foreign.gguf");
    wavy_adapter(&tiny_engine, 2).write(&foreign).unwrap();
    assert_fails(set_adapter(tuned, Some(&foreign), 1.0), LANTERN_MODEL, "does not fit this model");
    assert_fails(
        set_adapter(tuned, Some(&dir.path().join("none.gguf")), 1.0),
        LANTERN_IO,
        "none.gguf",
    );
    assert_eq!(lantern_session_reset(tuned), LANTERN_OK);
    assert_eq!(complete_text(tuned, PROMPT, &greedy(16)), base);
    lantern_session_free(plain);
    lantern_session_free(tuned);
    lantern_engine_free(ffi_engine);
}
