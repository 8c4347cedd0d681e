//! Every vocabulary-only GGUF in llama.cpp's `models/` directory that comes with test
//! vectors (`ggml-vocab-NAME.gguf.inp`: texts separated by `__ggml_vocab_test__`;
//! `.out`: llama.cpp's ids, one line per text) and whose kind lantern supports must give
//! exactly llama.cpp's ids for every text, encoded as llama.cpp's test-tokenizer-0 does
//! (no BOS/EOS added, special tokens not parsed). The test prints a table of vocabularies
//! and texts matched.
//!
//! The directory is `$LANTERN_LLAMA_MODELS` (`scripts/fetch-llama-models.sh` downloads
//! it). Without it the test fails under CI (`CI` set) and is skipped with a note locally.

use std::path::{Path, PathBuf};
use std::time::Instant;

use lantern::{Error, StreamDecoder, Tokenizer};
use lantern_io::Gguf;

/// Vocabularies that must be supported and match.
const REQUIRED: &[&str] =
    &["llama-spm", "llama-bpe", "qwen2", "qwen35", "phi-3", "gpt-2", "gemma-4"];

/// The directory of vocabularies, or `None` (skip) outside CI.
fn models_dir() -> Option<PathBuf> {
    match std::env::var_os("LANTERN_LLAMA_MODELS") {
        Some(dir) => Some(PathBuf::from(dir)),
        None if std::env::var_os("CI").is_some() => {
            panic!("LANTERN_LLAMA_MODELS is not set (scripts/fetch-llama-models.sh prints it)")
        }
        None => {
            eprintln!("skipped: set LANTERN_LLAMA_MODELS to llama.cpp's models/ directory");
            None
        }
    }
}

/// The texts of a `.inp` file and the ids of its `.out` file, as llama.cpp reads them.
fn read_vectors(inp: &Path, out: &Path) -> Vec<(String, Vec<u32>)> {
    let raw = std::fs::read_to_string(inp).expect("read .inp");
    let mut texts: Vec<&str> = raw.split("\n__ggml_vocab_test__\n").collect();
    // llama.cpp stops at the end of the file: a separator at the very end opens no text.
    if raw.ends_with("\n__ggml_vocab_test__\n") {
        texts.pop();
    }
    let ids: Vec<Vec<u32>> = std::fs::read_to_string(out)
        .expect("read .out")
        .lines()
        .map(|line| line.split_whitespace().map(|id| id.parse().expect("an id")).collect())
        .collect();
    assert_eq!(texts.len(), ids.len(), "{} texts, {} id lines", texts.len(), ids.len());
    texts.into_iter().map(str::to_owned).zip(ids).collect()
}

/// One vocabulary's row of the table.
struct Row {
    name: String,
    kind: String,
    build_ms: f64,
    matched: usize,
    total: usize,
    supported: bool,
}

fn check_vocabulary(path: &Path, inp: &Path, out: &Path, failures: &mut Vec<String>) -> Row {
    let name = path.file_name().unwrap().to_string_lossy();
    let name = name.trim_start_matches("ggml-vocab-").trim_end_matches(".gguf").to_owned();
    let bytes = std::fs::read(path).expect("read the vocabulary");
    let gguf = Gguf::parse(&bytes).expect("parse the vocabulary");
    let metadata = gguf.metadata();
    let model = metadata.str("tokenizer.ggml.model").unwrap_or("?");
    let pre = metadata.opt_str("tokenizer.ggml.pre").ok().flatten().unwrap_or("-");
    let kind = format!("{model} / {pre}");
    let started = Instant::now();
    let tokenizer = match Tokenizer::from_gguf(metadata) {
        Ok(t) => t,
        Err(Error::UnsupportedTokenizer { .. }) => {
            return Row { name, kind, build_ms: 0.0, matched: 0, total: 0, supported: false };
        }
        Err(e) => panic!("{name}: {e}"),
    };
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let vectors = read_vectors(inp, out);
    let mut matched = 0;
    for (text, expected) in &vectors {
        let ids = tokenizer.tokenize(text, false, false).expect("encode");
        if &ids == expected {
            matched += 1;
        } else if failures.len() < 40 {
            failures
                .push(format!("{name}: {text:?}\n  llama.cpp {expected:?}\n  lantern   {ids:?}"));
        }
    }
    Row { name, kind, build_ms, matched, total: vectors.len(), supported: true }
}

#[test]
fn llama_cpp_vocab_vectors_match() {
    let Some(dir) = models_dir() else { return };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("ggml-vocab-") && name.ends_with(".gguf")
        })
        .collect();
    paths.sort();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for path in &paths {
        let inp = PathBuf::from(format!("{}.inp", path.display()));
        let out = PathBuf::from(format!("{}.out", path.display()));
        if inp.exists() && out.exists() {
            rows.push(check_vocabulary(path, &inp, &out, &mut failures));
        }
    }

    println!("| vocabulary | tokenizer.ggml.model / pre | texts matched | build |");
    println!("|---|---|---|---|");
    for r in &rows {
        if r.supported {
            println!(
                "| {} | {} | {}/{} | {:.0} ms |",
                r.name, r.kind, r.matched, r.total, r.build_ms
            );
        } else {
            println!("| {} | {} | not supported | |", r.name, r.kind);
        }
    }
    for f in &failures {
        println!("{f}");
    }
    for name in REQUIRED {
        let row = rows.iter().find(|r| r.name == *name);
        assert!(row.is_some_and(|r| r.supported), "{name} is missing or not supported");
    }
    let short: Vec<_> = rows.iter().filter(|r| r.supported && r.matched < r.total).collect();
    assert!(short.is_empty(), "{} vocabularies do not match llama.cpp", short.len());
}

/// Vocabularies whose decoding gives back the text (no space clean-up).
const LOSSLESS: &[&str] =
    &["llama-spm", "phi-3", "qwen2", "qwen35", "command-r", "deepseek-llm", "deepseek-coder"];

/// The test texts decode back to themselves, and the stream decoder's pieces are whole
/// characters that add up to the same text (less the first space SentencePiece adds).
#[test]
fn llama_cpp_vocab_texts_round_trip_and_stream() {
    let Some(dir) = models_dir() else { return };
    for name in LOSSLESS {
        let path = dir.join(format!("ggml-vocab-{name}.gguf"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tokenizer = Tokenizer::from_gguf(Gguf::parse(&bytes).unwrap().metadata()).unwrap();
        let inp = PathBuf::from(format!("{}.inp", path.display()));
        let out = PathBuf::from(format!("{}.out", path.display()));
        for (text, ids) in read_vectors(&inp, &out) {
            assert_eq!(tokenizer.decode(&ids, false).unwrap(), text, "{name}: {ids:?}");
            let mut stream = StreamDecoder::new(false);
            let mut streamed = String::new();
            for &id in &ids {
                if let Some(piece) = stream.step(&tokenizer, id).unwrap() {
                    assert!(!piece.contains('\u{FFFD}'), "{name}: {piece:?} splits a character");
                    streamed.push_str(&piece);
                }
            }
            streamed.extend(stream.flush(&tokenizer).unwrap());
            let streamed = match tokenizer.kind() {
                "spm" => streamed.strip_prefix(' ').unwrap_or(&streamed).to_owned(),
                _ => streamed,
            };
            assert_eq!(streamed, text, "{name}: {ids:?}");
        }
    }
}
