//! A model streamed from a `.lantern` container computes what the resident model does, bit
//! for bit, whatever is pinned and however deep the prefetcher reads; its memory stays in
//! the budget, and a budget too small says the minimum.

use lantern_core::GgmlType;
use lantern_io::container::write_container;
use lantern_io::stream::{StorageModel, StreamedContainer};
use lantern_runtime::{Budget, Error, Model, Pin, StreamOptions};

use lantern_test_support::models::{open, prefill_then_decode, prompt, state, Tiny};

/// `t` written as a container in `dir`, opened for streaming.
fn streamed_file(t: &Tiny, dir: &tempfile::TempDir) -> StreamedContainer {
    let path = dir.path().join("m.lantern");
    write_container(&open(t), &path, |_, _| {}).unwrap();
    StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap()
}

/// The least budget `t` streams in with `pin`.
fn minimum_budget(t: &Tiny, pin: Pin) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let options = StreamOptions { budget: Budget::Bytes(1), depth: 2, pin };
    match Model::load_streamed(streamed_file(t, &dir), options) {
        Err(Error::Io(lantern_io::Error::BudgetTooSmall { minimum, .. })) => minimum,
        other => panic!("a 1-byte budget should be too small: {other:?}"),
    }
}

/// A model of K-quant rows as llama.cpp's mixed files hold them (Q4_K_M: Q4_K with Q6_K
/// for `attn_v`, `ffn_down` and the head): mostly `ty`, the tensors `mix` names in their
/// types and the head in Q6_K. Rows of 256 and 512 values (whole super-blocks) and at least
/// 16 rows per matrix, so that the resident matrices interleave.
fn k_quants(ty: GgmlType, mix: &[(&'static str, GgmlType)]) -> Tiny {
    let mix = mix.iter().copied().chain([("output.", GgmlType::Q6_K)]).collect();
    Tiny { dim: 256, ff: 512, mix, ..Tiny::of(ty) }
}

#[test]
fn streamed_logits_are_the_resident_ones() {
    // Types whose resident matrices keep the file layout, or an interleaved layout with the
    // same arithmetic (all that interleave but Q5_0, whose interleaved rows round once per
    // block and its file rows in ggml's lanes); streamed blocks are read in the file layout.
    let tiny = [
        Tiny::of(GgmlType::Q4_1),
        Tiny::of(GgmlType::Q4_0),
        Tiny::of(GgmlType::Q8_0),
        Tiny { tied: true, ..Tiny::of(GgmlType::F16) },
        // A head of 5 MB, read in runs of rows, and embedding rows from several chunks.
        Tiny { tied: true, vocab: 20_000, ..Tiny::of(GgmlType::F32) },
        k_quants(GgmlType::Q4_K, &[("attn_v", GgmlType::Q6_K), ("ffn_down", GgmlType::Q6_K)]),
        k_quants(
            GgmlType::Q5_K,
            &[("attn_v", GgmlType::Q6_K), ("ffn_down", GgmlType::Q6_K), ("attn_q", GgmlType::Q8_0)],
        ),
    ];
    let pins = [
        Pin::default(),
        Pin { embedding: true, ..Pin::default() },
        Pin { output: true, first_layers: 1, ..Pin::default() },
        Pin { last_layers: 1, ..Pin::default() },
    ];
    for t in &tiny {
        let expected = prefill_then_decode(&Model::load(&open(t)).unwrap(), 13, 2);
        for pin in pins {
            let minimum = minimum_budget(t, pin);
            for (budget, depth) in [(minimum, 0), (minimum * 3, 4)] {
                let dir = tempfile::tempdir().unwrap();
                let options = StreamOptions { budget: Budget::Bytes(budget), depth, pin };
                let model = Model::load_streamed(streamed_file(t, &dir), options).unwrap();
                let got = prefill_then_decode(&model, 13, 2);
                let what =
                    format!("{:?} {:?} tied={} {pin:?} budget={budget}", t.ty, t.mix, t.tied);
                assert!(got == expected, "{what}: logits differ");
                let stats = model.stream_stats().unwrap();
                assert!(stats.peak_resident_bytes <= budget, "{what}: {stats:?}");
                assert!(stats.bytes_read > 0 && stats.loads > 0, "{what}: {stats:?}");
                let ran = model.stream_depth().unwrap();
                assert!(ran <= depth && (depth == 0) <= (ran == 0), "{what}: depth {ran}");
            }
        }
    }
}

#[test]
fn a_budget_too_small_names_the_minimum_and_what_it_holds() {
    let t = Tiny::default();
    let dir = tempfile::tempdir().unwrap();
    let options = StreamOptions { budget: "10kB".parse().unwrap(), ..StreamOptions::default() };
    let err = Model::load_streamed(streamed_file(&t, &dir), options).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("too small") && message.contains("minimum"), "{message}");
    assert!(matches!(
        err,
        Error::Io(lantern_io::Error::BudgetTooSmall { budget: 10_000, minimum, .. }) if minimum > 10_000
    ));
    // Pinning a block raises the minimum by its size.
    let pinned = minimum_budget(&t, Pin { first_layers: 1, ..Pin::default() });
    assert!(pinned > minimum_budget(&t, Pin::default()) + 20_000);
}

#[test]
fn concurrent_sessions_take_their_passes_in_turn() {
    let t = Tiny::of(GgmlType::Q4_1);
    let expected = prefill_then_decode(&Model::load(&open(&t)).unwrap(), 13, 2);
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load_streamed(streamed_file(&t, &dir), StreamOptions::default()).unwrap();
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..3).map(|_| s.spawn(|| prefill_then_decode(&model, 13, 2))).collect();
        for run in runs {
            assert!(run.join().unwrap() == expected);
        }
    });
}

/// Runs `f` on a thread of its own and waits at most a minute for it: a hang fails the test
/// instead of stalling the run.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("no answer within a minute")
}

#[test]
fn failed_reads_are_errors_of_the_pass_never_hangs_or_other_tokens() {
    // The container is damaged under a model streaming it: bytes flipped all through it (no
    // chunk's checksum matches), or the file cut after its first page (reads come back
    // short).
    // Each pass that meets the damage fails with an I/O error, and so does every pass after
    // it; none hangs, and none returns logits.
    type Damage = fn(&std::path::Path);
    let flip: Damage = |path| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes.iter_mut().skip(4096).step_by(512).for_each(|b| *b ^= 0x55);
        std::fs::write(path, bytes).unwrap();
    };
    let cut: Damage = |path| {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_len(4096).unwrap();
    };
    for damage in [cut, flip] {
        let t = Tiny::of(GgmlType::Q4_0);
        let budget = minimum_budget(&t, Pin::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.lantern");
        write_container(&open(&t), &path, |_, _| {}).unwrap();
        let file = StreamedContainer::open(&path, StorageModel::UNTHROTTLED).unwrap();
        let options =
            StreamOptions { budget: Budget::Bytes(budget), depth: 0, pin: Pin::default() };
        let model = Model::load_streamed(file, options).unwrap();
        let tokens = prompt(4, t.vocab);
        let passes = within_a_minute(move || {
            let mut s = state(&model, 64, 16, 1);
            let first = model.forward(&mut s, &tokens, 0).map(|l| l.len());
            damage(&path);
            let later: Vec<_> =
                (0..3).map(|i| model.forward(&mut s, &tokens[i..=i], 0).map(|l| l.len())).collect();
            (first, later)
        });
        assert!(passes.0.is_ok(), "{:?}", passes.0);
        for pass in passes.1 {
            assert!(matches!(pass, Err(Error::Io(_))), "{pass:?}");
        }
    }
}

#[test]
fn every_family_streams_the_logits_it_computes_resident() {
    for arch in ["qwen2", "qwen3", "gemma3"] {
        let t = Tiny {
            arch,
            ty: GgmlType::Q8_0,
            head_dim: Some(32),
            set_keys: vec![("gemma3.attention.sliding_window", lantern_io::Value::U32(4))],
            ..Tiny::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let options = StreamOptions {
            budget: Budget::Bytes(minimum_budget(&t, Pin::default())),
            depth: 1,
            pin: Pin::default(),
        };
        let streamed = Model::load_streamed(streamed_file(&t, &dir), options).unwrap();
        let resident = Model::load(&open(&t)).unwrap();
        assert_eq!(
            prefill_then_decode(&streamed, 14, 1),
            prefill_then_decode(&resident, 14, 1),
            "{arch}"
        );
    }
}
