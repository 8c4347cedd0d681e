//! The `lantern` binary end to end: bad input gives a clear message and a failing exit
//! status, never a panic. (The research commands' tests are `lantern-lab`'s.)

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use lantern_io::GgufWriter;
use lantern_test_support::models::{tiny_model, Tiny};
use proptest::prelude::*;

fn lantern(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lantern")).args(args).output().expect("run lantern")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A GGUF with metadata and one tensor, but no model in it.
fn write_small_gguf(path: &Path) {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    w.metadata("general.name", "tiny");
    w.tensor_f32("output_norm.weight", &[4], &[1.0, 1.0, 1.0, 1.0]).unwrap();
    w.write_file(path).unwrap();
}

#[test]
fn inspect_lists_metadata_and_bytes_by_type() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_small_gguf(&path);
    let out = lantern(&["inspect", path.to_str().unwrap(), "--tensors"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("GGUF v3, 2 metadata keys, 1 tensors"), "{text}");
    assert!(text.contains("general.name = \"tiny\""), "{text}");
    assert!(text.contains("output_norm.weight"), "{text}");
}

#[test]
fn broken_models_fail_with_a_message_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("tiny.gguf");
    write_small_gguf(&small);
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&small).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // The small file has neither a vocabulary nor weights: the tokenizer, read first, says so.
    let cases = [
        (small.to_str().unwrap(), "tokenizer.ggml.model"),
        (truncated.to_str().unwrap(), "truncated"),
        ("/nonexistent/model.gguf", "/nonexistent/model.gguf"),
    ];
    for (model, expected) in cases {
        let out = lantern(&["run", "-m", model, "-p", "Hi", "-n", "1"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{model}");
        assert!(!err.contains("panicked"), "{model}: {err}");
        assert!(err.to_lowercase().contains(expected), "{model}: expected {expected:?} in {err}");
    }
}

#[test]
fn a_text_that_is_not_utf8_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("latin1.txt");
    std::fs::write(&text, b"caf\xe9").unwrap();
    let model = dir.path().join("tiny.gguf");
    write_small_gguf(&model);
    let out = lantern(&["ppl", "-m", model.to_str().unwrap(), "-f", text.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
}

#[test]
fn convert_writes_a_container_and_refuses_a_device_before_any_work() {
    use std::os::unix::fs::FileTypeExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (gguf, out) = (dir.path().join("tiny.gguf"), dir.path().join("tiny.lantern"));
    write_small_gguf(&gguf);
    let (gguf, out) = (gguf.to_str().unwrap(), out.to_str().unwrap());
    let run = lantern(&["convert", gguf, "-o", out, "-q", "--no-compress"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let listing = lantern(&["inspect", out, "--tensors"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains(".lantern container") && text.contains("output_norm.weight"), "{text}");

    let is_device = || std::fs::metadata("/dev/null").unwrap().file_type().is_char_device();
    assert!(is_device());
    let refused = lantern(&["convert", gguf, "-o", "/dev/null"]);
    let err = stderr(&refused);
    assert!(!refused.status.success());
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("refusing to write /dev/null: it is a character device"), "{err}");
    assert!(is_device(), "/dev/null is no longer a character device");
    // Calibrating refuses it before loading the model (this one could not load).
    let refused = lantern(&["calibrate", "-m", gguf, "--target", "0.5", "-o", "/dev/null"]);
    let err = stderr(&refused);
    assert!(err.contains("refusing to write /dev/null") && !err.contains("token_embd"), "{err}");
    assert!(is_device(), "/dev/null is no longer a character device");
    // Compression options are the lab's.
    let lab = lantern(&["convert", gguf, "-o", out, "--quantize", "Q4_0"]);
    assert!(!lab.status.success() && stderr(&lab).contains("--quantize"), "{}", stderr(&lab));
}

#[test]
fn chat_leaves_out_old_turns_when_the_context_is_full() {
    // Five questions in a context of 160 positions: the later ones only fit without the
    // first turns, and each still gets a reply, not an error.
    let model = std::env::var("LANTERN_MODEL").expect("LANTERN_MODEL (scripts/test.sh sets it)");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lantern"))
        .args(["chat", "-m", &model, "-c", "160", "-n", "24", "--temp", "0", "-t", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lantern chat");
    let questions = "What is the capital of France?\nAnd of Germany?\nAnd of Italy?\n\
                     And of Spain?\nAnd of Portugal?\n";
    child.stdin.take().unwrap().write_all(questions.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("the context was full"), "{err}");
    assert!(!err.contains("error"), "{err}");
    // A prompt marker per question and one at the end of input, each reply on its line.
    let replies = String::from_utf8_lossy(&out.stdout);
    assert_eq!(replies.matches("> ").count(), 6, "{replies}");
    assert!(replies.lines().take(5).all(|l| l.len() > 2), "{replies}");
}

#[test]
fn a_mapped_model_cut_short_while_chatting_ends_with_a_message() {
    // The file is truncated after the model is mapped and before the first reply.
    let model = std::env::var("LANTERN_MODEL").expect("LANTERN_MODEL (scripts/test.sh sets it)");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    std::fs::copy(model, &path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lantern"))
        .args(["chat", "-m", path.to_str().unwrap(), "-n", "8", "--temp", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr_lines = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("loaded in") {
        banner.clear();
        assert_ne!(std::io::BufRead::read_line(&mut stderr_lines, &mut banner).unwrap(), 0);
    }
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1_000_000).unwrap();
    child.stdin.take().unwrap().write_all(b"Hi\n").unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr_lines, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(rest.contains("cut short") && rest.contains("--no-mmap"), "{rest}");
}

/// What a user might type for a size: small and edge values, any `u64`, one past it,
/// negatives, decimals and units, and junk.
fn size_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..600).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551616".to_owned()),
        (-1000i64..0).prop_map(|n| n.to_string()),
        "([0-9]{1,5}|[0-9]{13,30})(\\.[0-9]{0,3})?(|k|M|MB|MiB|GB|TiB|e9|%)",
        "[^\\x00]{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any values of the size flags of `run` (context, batch, threads, tokens to predict)
    /// give a run, or an error (exit status 1) or a usage error (2) that says what is wrong
    /// first, never a panic, an abort or a hang.
    #[test]
    fn size_flags_give_a_run_or_a_clear_error(
        sizes in proptest::collection::vec((0..4usize, size_text()), 1..4)
    ) {
        static MODEL: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
            std::sync::OnceLock::new();
        let (_, model) = MODEL.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("tiny.gguf");
            std::fs::write(&path, tiny_model(&Tiny::with_tokenizer())).unwrap();
            (dir, path)
        });
        // A long context filled by a long reply is a long run, not a fault: left out.
        let size = |flag| sizes.iter().filter(|(f, _)| *f == flag).find_map(|(_, v)| v.parse().ok());
        prop_assume!(size(0).unwrap_or(0usize).min(size(3).unwrap_or(0)) <= 1024);
        let mut args = vec!["run", "-m", model.to_str().unwrap(), "-p", "hello", "--temp", "0"];
        for (flag, value) in &sizes {
            args.extend([["-c", "-b", "-t", "-n"][*flag], value.as_str()]);
        }
        let out = within_a_minute(Command::new(env!("CARGO_BIN_EXE_lantern")).args(&args));
        let err = stderr(&out);
        prop_assert!(matches!(out.status.code(), Some(0..=2)), "{args:?}: {err}");
        prop_assert!(!err.contains("panicked") && !err.contains("backtrace"), "{args:?}: {err}");
        if !out.status.success() {
            prop_assert!(err.to_lowercase().starts_with("error: "), "{args:?}: {err}");
        }
    }
}

/// Runs `command` and returns its output; fails if it takes over a minute.
fn within_a_minute(command: &mut Command) -> Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut command = std::mem::replace(command, Command::new(""));
    std::thread::spawn(move || tx.send(command.output().unwrap()));
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("done within a minute")
}
