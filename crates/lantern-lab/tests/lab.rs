//! The `lantern-lab` binary end to end: bad input gives a clear message and a failing exit
//! status, never a panic, and the files it converts hold what its options asked for.

use std::path::Path;
use std::process::{Command, Output};

use lantern::{Engine, GenerateConfig, SessionConfig};
use lantern_core::GgmlType;
use lantern_io::container::ContainerModel;
use lantern_io::{GgufWriter, ModelSource};
use lantern_test_support::models::{tiny_model, Tiny};

fn lab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lantern-lab")).args(args).output().expect("run lantern-lab")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The type of each tensor of the container at `path`, by name, as `lantern inspect
/// --tensors` lists them.
fn tensor_types(path: &str) -> Vec<(String, String)> {
    let model = ContainerModel::open(ModelSource::read(path).unwrap()).unwrap();
    model.container().tensors().iter().map(|t| (t.name.clone(), format!("{:?}", t.ty))).collect()
}

/// The type of the tensor whose name contains `part`; empty when there is none.
fn type_of(types: &[(String, String)], part: &str) -> String {
    types.iter().find(|(n, _)| n.contains(part)).map_or(String::new(), |(_, t)| t.clone())
}

/// A runnable one-block llama (d 64, FFN 128, tied head) of F32 weights with the fixture's
/// byte-level tokenizer, and a calibration text of 2,000 bytes.
fn write_tiny_llama(gguf: &Path, text: &Path) {
    let tiny = Tiny {
        ty: GgmlType::F32,
        tied: true,
        layers: 1,
        set_keys: vec![("llama.context_length", 512u32.into())],
        ..Tiny::with_tokenizer()
    };
    std::fs::write(gguf, tiny_model(&tiny)).unwrap();
    let sentence = "The lamp in the harbour burned all night, and the ships came home. ";
    std::fs::write(text, sentence.repeat(30)).unwrap();
}

#[test]
fn sparsity_sweep_refuses_bad_input_before_loading_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9").unwrap();
    let eval = dir.path().join("eval.txt");
    std::fs::write(&eval, "Some text.").unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model, &dir.path().join("calibration.txt"));
    let (model, latin1, eval) =
        (model.to_str().unwrap(), latin1.to_str().unwrap(), eval.to_str().unwrap());
    let cases: [(&[&str], &str); 5] = [
        (&["--eval", eval, "--targets", "0,1.5"], "share from 0 to 1"),
        (&["--eval", latin1], "not UTF-8"),
        (&["--eval", eval, "--text", eval], "is the evaluation text"),
        (&["--eval", eval, "--thresholds", eval], "sets its own thresholds"),
        (&["--eval", eval, "--criteria", "cats,magnitude"], "magnitude"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["sparsity-sweep", "-m", model];
        all.extend_from_slice(args);
        let out = lab(&all);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: expected {expected:?} in {err}");
    }
}

#[test]
fn convert_requantizes_the_matrices_a_spec_names() {
    let dir = tempfile::tempdir().unwrap();
    let (gguf, out) = (dir.path().join("m.gguf"), dir.path().join("m.lantern"));
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", "llama");
    let ramp: Vec<f32> = (0..128).map(|i| i as f32 / 64.0 - 1.0).collect();
    w.tensor_f32("blk.0.attn_q.weight", &[64, 2], &ramp).unwrap();
    w.tensor_f32("blk.0.ffn_down.weight", &[64, 2], &ramp).unwrap();
    w.tensor_f32("blk.0.attn_norm.weight", &[64], &ramp[..64]).unwrap();
    w.write_file(&gguf).unwrap();
    let (gguf, out) = (gguf.to_str().unwrap(), out.to_str().unwrap());

    let run = lab(&["convert", gguf, "-o", out, "-q", "--quantize", "Q8_0,down=Q4_0"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let types = tensor_types(out);
    assert_eq!(type_of(&types, "attn_q"), "Q8_0", "{types:?}");
    assert_eq!(type_of(&types, "ffn_down"), "Q4_0", "{types:?}");
    assert_eq!(type_of(&types, "attn_norm"), "F32", "{types:?}");

    let bad = lab(&["convert", gguf, "-o", out, "--quantize", "mlp=Q4_0"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("unknown tensor class \"mlp\""), "{}", stderr(&bad));
    let bad = lab(&["convert", gguf, "-o", out, "--objective", "scale-search"]);
    assert!(stderr(&bad).contains("--objective applies to --quantize"), "{}", stderr(&bad));
    let bad = lab(&["convert", gguf, "-o", out, "--bits-avg", "3", "--quantize", "Q4_0"]);
    assert!(stderr(&bad).contains("cannot be used with"), "{}", stderr(&bad));
    let trained = ["--objective", "block", "--quantize", "Q4_0,down=Q3_0"];
    let bad = lab(&[&["convert", gguf, "-o", out][..], &trained].concat());
    assert!(stderr(&bad).contains("one type for every block matrix"), "{}", stderr(&bad));
    let bad = lab(&["convert", gguf, "-o", out, "--objective", "window", "--bits-avg", "3"]);
    assert!(stderr(&bad).contains("applies to --quantize only"), "{}", stderr(&bad));
    let bad = lab(&["convert", gguf, "-o", out, "--objective", "window", "--window", "0"]);
    assert!(stderr(&bad).contains("must be at least 1"), "{}", stderr(&bad));
    let bad = lab(&["convert", gguf, "-o", out, "--objective", "blocks"]);
    assert!(stderr(&bad).contains("expected nearest, scale-search"), "{}", stderr(&bad));
}

#[test]
fn convert_stores_swsc_matrices_that_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (gguf, text, out) = (path("m.gguf"), path("calibration.txt"), path("m.lantern"));
    write_tiny_llama(Path::new(&gguf), Path::new(&text));
    let convert = |extra: &[&str]| {
        let args = ["convert", &gguf, "-o", &out, "-q", "--calibration", &text];
        lab(&[&args[..], &["--calibration-chunks", "1"], extra].concat())
    };

    let run = convert(&["--swsc", "ffn:k=in/4,r=4", "--swsc", "q:k=16", "--quantize", "Q8_0"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("factored 4 matrices (SWSC)"));
    let types = tensor_types(&out);
    let ty = |part: &str| type_of(&types, part);
    assert_eq!(ty("ffn_down.swsc_centroids"), "F16", "{types:?}");
    assert_eq!(ty("ffn_down.swsc_labels"), "I16", "{types:?}");
    assert_eq!(ty("ffn_up.swsc_vt"), "F16", "{types:?}");
    assert!(ty("attn_q.swsc_us").is_empty() && ty("attn_q.swsc_labels") == "I16", "{types:?}");
    assert!(ty("ffn_down.weight").is_empty() && ty("attn_k.weight") == "Q8_0", "{types:?}");
    // The container runs, as `lantern run -m m.lantern -p "The lamp" -n 8 --temp 0 -t 2`.
    let engine = Engine::load(&out).unwrap();
    let mut session = engine.session(SessionConfig::default().threads(2)).unwrap();
    session.generate("The lamp", &GenerateConfig::greedy(8)).unwrap().complete().unwrap();

    for (spec, says) in [
        ("embd:k=8", "block matrices"),
        ("ffn:k=65", "does not fit blk.0.ffn_gate.weight"),
        ("down:k=8,r=65", "exceeds the rank"),
    ] {
        let bad = convert(&["--swsc", spec]);
        assert!(!bad.status.success() && stderr(&bad).contains(says), "{spec}: {}", stderr(&bad));
    }
    let bad = convert(&["--swsc", "k=8", "--bits-avg", "3"]);
    assert!(stderr(&bad).contains("cannot be used with"), "{}", stderr(&bad));
}
