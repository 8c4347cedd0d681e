//! `Model::forward` contracts: batching does not change results, `logits_from` selects rows,
//! the KV cache can be truncated and reused, and bad calls fail without touching the state.

use lantern_core::GgmlType;
use lantern_runtime::{Error, StateConfig};

use lantern_test_support::models::{
    decode_one_by_one, load, max_abs_diff, prompt, spread, state, Tiny, WEIGHT_TYPES,
};

/// Prefill and one-token decode give every (weight row, token) pair the same lanes and the
/// same order of operations, however many inputs a kernel tile takes, and attention reads
/// the same f16 cache, so today they are bit-identical. The slack (relative to the logits'
/// spread) only leaves room for a future kernel that sums a batch in another order.
const SAME_KERNELS_REL_TOL: f32 = 1e-5;

/// A batch of N tokens gives the logits of feeding them one at a time, for every weight
/// type, tied and untied heads, 1 and 2 threads, and batches smaller than N (split path).
#[test]
fn prefill_matches_one_token_decode() {
    let tokens = prompt(11, 96);
    let mut worst = 0.0f32;
    for ty in WEIGHT_TYPES {
        for tied in [false, true] {
            let model = load(&Tiny { tied, ..Tiny::of(ty) });
            let decoded = decode_one_by_one(&model, &tokens);
            let tol = SAME_KERNELS_REL_TOL * spread(&decoded);
            for threads in [1, 2] {
                for batch_size in [16, 11, 4, 1] {
                    let mut s = state(&model, 64, batch_size, threads);
                    let prefill = model.forward(&mut s, &tokens, 0).unwrap();
                    let err = max_abs_diff(prefill, &decoded);
                    worst = worst.max(err / spread(&decoded));
                    assert!(
                        err <= tol,
                        "{ty:?} tied={tied} threads={threads} batch={batch_size}: {err} > {tol}"
                    );
                    assert_eq!(s.len(), tokens.len());
                }
            }
        }
    }
    eprintln!("prefill vs decode: worst relative error {worst:e}");
}

/// `forward(.., logits_from)` returns exactly rows `logits_from..` of the full logits,
/// including when `logits_from` falls inside or after a later batch, or past the end.
#[test]
fn logits_from_returns_the_tail_rows() {
    let model = load(&Tiny::of(GgmlType::Q8_0));
    let vocab = model.config().vocab_size;
    let tokens = prompt(10, vocab);
    for batch_size in [16, 4] {
        let full =
            model.forward(&mut state(&model, 32, batch_size, 1), &tokens, 0).unwrap().to_vec();
        assert_eq!(full.len(), tokens.len() * vocab);
        for from in [0, 1, 3, 4, 5, 9, 10, 13] {
            let mut s = state(&model, 32, batch_size, 1);
            let tail = model.forward(&mut s, &tokens, from).unwrap();
            let start = from.min(tokens.len()) * vocab;
            assert_eq!(tail, &full[start..], "batch {batch_size}, logits_from {from}");
            assert_eq!(s.len(), tokens.len(), "every token enters the cache");
        }
    }
}

/// Truncating the cache and feeding a suffix again reproduces the first run exactly, and
/// prompt-then-suffix equals one prefill of the concatenation.
#[test]
fn truncate_and_refeed_reuses_the_cache() {
    let model = load(&Tiny::of(GgmlType::Q4_0));
    let vocab = model.config().vocab_size;
    let all = prompt(14, vocab);
    let (head, tail) = all.split_at(9);
    let mut s = state(&model, 32, 4, 2);
    model.forward(&mut s, head, 0).unwrap();
    let first = model.forward(&mut s, tail, 0).unwrap().to_vec();

    // Overwrite the tail positions with other tokens, then rewind and refeed.
    s.truncate(head.len());
    assert_eq!(s.len(), head.len());
    let other: Vec<u32> = tail.iter().map(|t| (t + 1) % vocab as u32).collect();
    let diverted = model.forward(&mut s, &other, 0).unwrap().to_vec();
    assert!(max_abs_diff(&diverted, &first) > 0.0, "other tokens give other logits");
    s.truncate(head.len());
    assert_eq!(model.forward(&mut s, tail, 0).unwrap(), &first[..]);

    // Truncating past the end keeps everything.
    s.truncate(1000);
    assert_eq!(s.len(), all.len());

    let one_pass = model.forward(&mut state(&model, 32, 4, 2), &all, head.len()).unwrap().to_vec();
    let err = max_abs_diff(&one_pass, &first);
    assert!(err <= SAME_KERNELS_REL_TOL * spread(&first), "split vs one pass: {err}");

    // A full rewind is a fresh start.
    s.truncate(0);
    assert!(s.is_empty());
    assert_eq!(model.forward(&mut s, &all, head.len()).unwrap(), &one_pass[..]);
}

/// A forward that would overflow `ctx_len` is `ContextFull` with the right counts, computes
/// nothing and leaves the cache as it was; the context can still be filled to the brim.
#[test]
fn context_overflow_is_an_error_and_changes_nothing() {
    let model = load(&Tiny::default());
    let tokens = prompt(8, model.config().vocab_size);
    let mut s = state(&model, 8, 4, 1);
    let err = model.forward(&mut s, &prompt(9, 96), 0).unwrap_err();
    assert!(matches!(err, Error::ContextFull { needed: 9, used: 0, ctx_len: 8 }), "{err:?}");
    assert_eq!(s.len(), 0);

    model.forward(&mut s, &tokens[..5], 0).unwrap();
    let err = model.forward(&mut s, &tokens[5..], 0).unwrap();
    let expected = err.to_vec();
    s.truncate(5);
    let err = model.forward(&mut s, &prompt(4, 96), 0).unwrap_err();
    assert!(matches!(err, Error::ContextFull { needed: 4, used: 5, ctx_len: 8 }), "{err:?}");
    assert_eq!(s.len(), 5);
    assert_eq!(model.forward(&mut s, &tokens[5..], 0).unwrap(), &expected[..]);
    assert_eq!(s.len(), 8);
    let err = model.forward(&mut s, &[0], 0).unwrap_err();
    assert!(matches!(err, Error::ContextFull { needed: 1, used: 8, ctx_len: 8 }), "{err:?}");
    assert_eq!(s.len(), 8);
}

/// A token id ≥ vocab is `InvalidToken`, even after valid ids in the same batch, and the
/// state is left as it was.
#[test]
fn out_of_vocabulary_token_is_rejected() {
    let model = load(&Tiny::default());
    let vocab = model.config().vocab_size;
    let mut s = state(&model, 16, 4, 1);
    let before = model.forward(&mut s, &[1, 2, 3], 0).unwrap().to_vec();
    s.truncate(2);
    for bad in [vocab as u32, u32::MAX] {
        let err = model.forward(&mut s, &[5, 6, bad, 7], 0).unwrap_err();
        assert!(
            matches!(err, Error::InvalidToken { id, vocab_size } if id == bad && vocab_size == vocab),
            "{err:?}"
        );
        assert_eq!(s.len(), 2);
    }
    assert_eq!(model.forward(&mut s, &[3], 0).unwrap(), &before[2 * vocab..]);
}

/// Zero context, batch or thread counts are rejected by name.
#[test]
fn zero_state_settings_are_rejected() {
    let model = load(&Tiny::default());
    let base = StateConfig { ctx_len: 8, batch_size: 4, threads: 1 };
    for (name, config) in [
        ("ctx_len", StateConfig { ctx_len: 0, ..base }),
        ("batch_size", StateConfig { batch_size: 0, ..base }),
        ("threads", StateConfig { threads: 0, ..base }),
    ] {
        let err = model.new_state(config).unwrap_err();
        assert!(matches!(err, Error::InvalidSetting { name: n, .. } if n == name), "{err:?}");
    }
}

/// A context too large to allocate is an error, not a panic.
#[test]
fn huge_context_is_an_error() {
    let model = load(&Tiny::default());
    let config = StateConfig { ctx_len: usize::MAX / 2, batch_size: 4, threads: 1 };
    assert!(model.new_state(config).is_err());
}
