//! `lantern tune` end to end on a tiny random model: it writes an adapter the runtime loads,
//! resumes from its checkpoints, and refuses bad input with a clear message, a failing exit
//! status and no half-written file. Without the `tune` feature, it says how to get it.

use std::process::{Command, Output};

fn lantern(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lantern")).args(args).output().expect("run lantern")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[cfg(not(feature = "tune"))]
#[test]
fn without_the_feature_tune_says_how_to_get_it() {
    let out = lantern(&["tune", "model.gguf", "--text", "t.txt", "-o", "a.gguf"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--features tune"), "{}", stderr(&out));
}

#[cfg(feature = "tune")]
mod with_the_feature {
    use std::path::{Path, PathBuf};

    use super::{lantern, stderr};

    /// A tiny model with a byte-level vocabulary and a ChatML template, and a text of a few
    /// hundred tokens, in `dir`.
    fn fixtures(dir: &Path) -> (String, String) {
        use lantern_test_support::models::{tiny_model, Tiny};
        let model = dir.join("tiny.gguf");
        std::fs::write(&model, tiny_model(&Tiny::with_tokenizer())).unwrap();
        let text = dir.join("text.txt");
        std::fs::write(&text, "the lamp is lit and the night is long. ".repeat(12)).unwrap();
        (model.to_str().unwrap().to_owned(), text.to_str().unwrap().to_owned())
    }

    fn path(dir: &Path, name: &str) -> String {
        dir.join(name).to_str().unwrap().to_owned()
    }

    /// The files in `dir`, to show that a refused run left nothing behind.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    }

    const SMALL: [&str; 6] = ["--seq-len", "16", "--steps", "4", "--window", "1"];

    #[test]
    fn tune_writes_an_adapter_the_runtime_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (model, text) = fixtures(dir.path());
        let adapter = path(dir.path(), "adapter.gguf");
        let mut args = vec!["tune", &model, "--text", &text, "-o", &adapter, "--report", "json"];
        args.extend(SMALL);
        let out = lantern(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["steps"], 4);
        assert_eq!(report["exits"], serde_json::json!([1, 2]));
        assert!(report["sec_per_step"].as_f64().unwrap() > 0.0, "{report}");
        assert!(report["final_loss"].as_f64().unwrap().is_finite(), "{report}");
        assert!(stderr(&out).contains("4 steps: final loss"), "{}", stderr(&out));

        let read = lantern::LoraAdapter::read(&adapter).unwrap();
        assert_eq!((read.exits(), read.updates().count()), (&[1, 2][..], 2 * 7));
        let run = lantern(&["run", "-m", &model, "--lora", &adapter, "-p", "the", "-n", "2"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }

    #[test]
    fn tune_adapts_a_lantern_container() {
        // A converted (or compressed) model is a base too, Edge-LLM's full setting.
        let dir = tempfile::tempdir().unwrap();
        let (model, text) = fixtures(dir.path());
        let container = path(dir.path(), "tiny.lantern");
        let out = lantern(&["convert", &model, "-o", &container]);
        assert!(out.status.success(), "{}", stderr(&out));
        let adapter = path(dir.path(), "adapter.gguf");
        let mut args = vec!["tune", &container, "--text", &text, "-o", &adapter];
        args.extend(SMALL);
        let out = lantern(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        let run = lantern(&["run", "-m", &container, "--lora", &adapter, "-p", "the", "-n", "2"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }

    #[test]
    fn tune_trains_on_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let (model, _) = fixtures(dir.path());
        let chat = dir.path().join("chat.jsonl");
        let line = r#"{"messages":[{"role":"user","content":"light the lamp"},{"role":"assistant","content":"the lamp is lit"}]}"#;
        std::fs::write(&chat, format!("{line}\n\n{line}\n{line}\n")).unwrap();
        let adapter = path(dir.path(), "adapter.gguf");
        let mut args = vec!["tune", &model, "--chat", chat.to_str().unwrap(), "-o", &adapter];
        args.extend(SMALL);
        let out = lantern(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(Path::new(&adapter).is_file());

        std::fs::write(&chat, format!("{line}\n{{\"messages\":[{{\"role\":\"user\"}}]}}\n"))
            .unwrap();
        let out = lantern(&args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
    }

    #[test]
    fn tune_resumes_from_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (model, text) = fixtures(dir.path());
        let checkpoint = path(dir.path(), "run.ckpt");
        let [straight, resumed] = ["straight.gguf", "resumed.gguf"].map(|n| path(dir.path(), n));
        let base = ["tune", &model, "--text", &text, "--seq-len", "16", "--window", "1"];
        let run = |extra: &[&str]| {
            let out = lantern(&[&base[..], extra].concat());
            assert!(out.status.success(), "{}", stderr(&out));
        };
        run(&["--steps", "6", "-o", &straight]);
        run(&["--steps", "3", "-o", &resumed, "--checkpoint", &checkpoint]);
        run(&["--steps", "6", "-o", &resumed, "--checkpoint", &checkpoint, "--resume"]);
        assert_eq!(std::fs::read(&straight).unwrap(), std::fs::read(&resumed).unwrap());

        let out = lantern(
            &[
                &base[..],
                &["--steps", "6", "-o", &resumed, "--checkpoint", &checkpoint, "--resume"],
            ]
            .concat()
            .iter()
            .copied()
            .chain(["--rank", "4"])
            .collect::<Vec<_>>(),
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains("was made with rank 8, this run has 4"), "{}", stderr(&out));
    }

    #[test]
    fn bad_input_is_refused_with_a_message_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let (model, text) = fixtures(dir.path());
        let short = path(dir.path(), "short.txt");
        std::fs::write(&short, "too short").unwrap();
        let adapter = path(dir.path(), "adapter.gguf");
        let before = files(dir.path());
        let missing = path(dir.path(), "missing.txt");
        let cases: [(&[&str], &str); 8] = [
            (&["--text", &missing], "missing.txt"),
            (&["--text", &short], "fewer than one sequence"),
            (&["--text", &text, "--exits", "1,3"], "exits"),
            (&["--text", &text, "--memory-budget", "1MB"], "too small to train"),
            (&["--text", &text, "--targets", "q,x"], "--targets"),
            (&["--text", &text, "--lr", "1e30", "--steps", "3"], "non-finite loss at step 2"),
            (
                &["--text", &text, "--checkpoint", &path(dir.path(), "none.ckpt"), "--resume"],
                "no checkpoint",
            ),
            (&[], "--text"),
        ];
        for (extra, expected) in cases {
            let mut args = vec!["tune", &model, "-o", &adapter, "--seq-len", "16"];
            args.extend(extra);
            let out = lantern(&args);
            let err = stderr(&out);
            assert!(!out.status.success(), "{extra:?}");
            assert!(!err.contains("panicked"), "{extra:?}: {err}");
            assert!(err.contains(expected), "{extra:?}: expected {expected:?} in {err}");
            assert_eq!(files(dir.path()), before, "{extra:?} left a file");
        }
        for output in ["/dev/null", dir.path().to_str().unwrap()] {
            let out = lantern(&["tune", &model, "--text", &text, "-o", output, "--steps", "1"]);
            assert!(!out.status.success(), "{output}");
            assert!(stderr(&out).contains("refusing to write"), "{output}: {}", stderr(&out));
        }
        assert_eq!(files(dir.path()), before);
    }
}
