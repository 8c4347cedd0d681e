//! The tokenizer on arbitrary text with every special token mixed in, and on arbitrary ids:
//! encoding must give ids inside the vocabulary, pieces of a stream decode must be whole
//! text, and ids outside the vocabulary must be errors. Never a panic. For a byte-level
//! vocabulary whose decoding keeps spaces as they are (SmolLM's, Qwen's), the ids must
//! also decode back to the same text (when the vocabulary has a token for each of its
//! bytes: like llama.cpp, a byte without one is left out), and the stream pieces add up to
//! the whole decode.
//!
//! The vocabulary is the default model's when `LANTERN_MODEL` names it (any GGUF model or
//! vocabulary), else the byte-level test fixture's.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use lantern::{ModelSource, StreamDecoder, Tokenizer};
use lantern_io::{Gguf, GgufModel, GgufWriter, Metadata};
use lantern_test_support::models::{byte_char, write_byte_tokenizer};
use libfuzzer_sys::fuzz_target;

/// The tokenizer and what the checks need to know of its vocabulary.
struct Vocabulary {
    tokenizer: Tokenizer,
    /// The texts of its control and user-defined tokens.
    specials: Vec<String>,
    /// Bytes without a token (byte-level vocabularies).
    missing: [bool; 256],
    /// Whether decoding gives back the encoded text: byte-level BPE with a split that
    /// leaves spaces alone when decoding.
    lossless: bool,
}

fn metadata() -> Metadata {
    match std::env::var_os("LANTERN_MODEL") {
        Some(path) => {
            let source = ModelSource::read(path).expect("read LANTERN_MODEL");
            GgufModel::open(source).expect("parse LANTERN_MODEL").metadata().clone()
        }
        None => {
            let mut w = GgufWriter::new();
            write_byte_tokenizer(&mut w);
            Gguf::parse(&w.to_bytes().unwrap()).unwrap().metadata().clone()
        }
    }
}

fn vocabulary() -> &'static Vocabulary {
    static VOCABULARY: OnceLock<Vocabulary> = OnceLock::new();
    VOCABULARY.get_or_init(|| {
        let metadata = metadata();
        let tokenizer = Tokenizer::from_gguf(&metadata).expect("build the tokenizer");
        let tokens = metadata.strings("tokenizer.ggml.tokens").unwrap();
        let types = metadata.i32s("tokenizer.ggml.token_type").unwrap_or_default();
        let specials = tokens.iter().zip(&types).filter(|(_, &ty)| ty == 3 || ty == 4);
        let specials = specials.map(|(t, _)| (*t).to_owned()).collect();
        let missing = std::array::from_fn(|b| {
            tokenizer.token_to_id(&byte_char(b as u8).to_string()).is_none()
        });
        let pre = metadata.opt_str("tokenizer.ggml.pre").ok().flatten();
        let lossless =
            tokenizer.kind() == "bpe" && matches!(pre, Some("smollm" | "qwen2" | "qwen35"));
        Vocabulary { tokenizer, specials, missing, lossless }
    })
}

#[derive(Arbitrary, Debug)]
enum Piece {
    Text(String),
    Special(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    pieces: Vec<Piece>,
    add_special: bool,
    skip_special: bool,
    ids: Vec<u32>,
}

fuzz_target!(|input: Input| {
    let Vocabulary { tokenizer: t, specials, missing, lossless } = vocabulary();
    let mut text = String::new();
    for piece in &input.pieces {
        match piece {
            Piece::Text(s) => text.push_str(s),
            Piece::Special(i) if !specials.is_empty() => {
                text.push_str(&specials[usize::from(*i) % specials.len()]);
            }
            Piece::Special(_) => {}
        }
    }
    let ids = t.encode(&text, input.add_special).expect("any text encodes");
    assert!(ids.iter().all(|&id| (id as usize) < t.vocab_size()), "{ids:?}");
    let skipped_bos = match (input.add_special, t.bos()) {
        (true, Some(bos)) if t.add_bos() && ids.first() == Some(&bos) => &ids[1..],
        _ => &ids[..],
    };
    let decoded = t.decode(skipped_bos, false).expect("own ids decode");
    if *lossless && !text.bytes().any(|b| missing[usize::from(b)]) {
        assert_eq!(decoded, text, "{ids:?}");
    }

    let mut stream = StreamDecoder::new(input.skip_special);
    let mut streamed = String::new();
    for &id in &ids {
        streamed.extend(stream.step(t, id).expect("own ids decode"));
    }
    streamed.extend(stream.flush(t).expect("own ids decode"));
    if *lossless {
        assert_eq!(streamed, t.decode(&ids, input.skip_special).unwrap());
    }

    // Arbitrary ids: text, or an error for one outside the vocabulary.
    let vocab = t.vocab_size() as u32;
    let ids: Vec<u32> = input.ids.iter().map(|&id| id % (vocab + 4)).collect();
    let decoded = t.decode(&ids, input.skip_special);
    assert_eq!(decoded.is_err(), ids.iter().any(|&id| id >= vocab));
    let mut stream = StreamDecoder::new(input.skip_special);
    for &id in &ids {
        if stream.step(t, id).is_err() {
            assert!(id >= vocab);
        }
    }
    let _ = stream.flush(t);
});
