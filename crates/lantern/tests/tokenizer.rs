//! Tokenizer and streaming detokenizer: the real model's tokenizer against ids from
//! REFERENCE (llama.cpp's), and small fixtures for the error paths.

use std::sync::OnceLock;

use lantern::{Error, StreamDecoder, Tokenizer};
use lantern_io::{Gguf, GgufWriter, Metadata};
use lantern_test_support::models::{write_byte_tokenizer, CHATML};

use crate::testutil::model_metadata;

/// The default model's tokenizer, built once for all tests.
fn smollm() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| Tokenizer::from_gguf(&model_metadata()).expect("build the tokenizer"))
}

/// Strings that exercise spaces, digits, punctuation, newlines and multi-byte characters.
const SAMPLES: &[&str] = &[
    "Hello, world!",
    "  two leading spaces and trailing  ",
    "Café crème brûlée, déjà vu.",
    "日本語のテキスト、東京。",
    "emoji 🦀🚀 and 👩‍👩‍👧 family",
    "tabs\tand\nnewlines\r\n\n",
    "year 2024, pi = 3.14159",
    "",
];

#[test]
fn smollm_chat_prompt_ids_match_reference() {
    let text =
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let ids = smollm().encode(text, true).unwrap();
    assert_eq!(ids, [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]);
}

#[test]
fn smollm_special_ids_and_vocab() {
    let t = smollm();
    assert_eq!(t.vocab_size(), 49152);
    assert_eq!((t.bos(), t.eos()), (Some(1), Some(2)));
    assert_eq!(t.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(t.id_to_token(2).as_deref(), Some("<|im_end|>"));
    // <|endoftext|> (0) ends a document; llama.cpp stops on it too.
    assert_eq!(t.stop_tokens(), &[0, 2]);
    assert!(t.chat_template().is_some_and(|s| s.contains("<|im_start|>")));
    // add_bos_token is false for this model: nothing is added.
    assert_eq!(t.encode("Hi", true).unwrap(), t.encode("Hi", false).unwrap());
}

#[test]
fn smollm_digits_are_split_one_by_one() {
    let t = smollm();
    let ids = t.encode("2024", false).unwrap();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(t.decode(&ids, false).unwrap(), "2024");
    // No prefix space is added: "user" at the start is the token `user`, not `Ġuser`.
    assert_eq!(t.encode("user", false).unwrap(), [4093]);
}

#[test]
fn smollm_round_trips_text() {
    let t = smollm();
    for &s in SAMPLES {
        let ids = t.encode(s, false).unwrap();
        assert_eq!(t.decode(&ids, false).unwrap(), s, "ids {ids:?}");
    }
}

#[test]
fn smollm_skip_special_drops_control_tokens() {
    let t = smollm();
    let ids = t.encode("<|im_start|>assistant\nParis<|im_end|>", false).unwrap();
    assert_eq!(t.decode(&ids, true).unwrap(), "assistant\nParis");
    assert_eq!(t.decode(&ids, false).unwrap(), "<|im_start|>assistant\nParis<|im_end|>");
}

#[test]
fn smollm_out_of_range_id_is_an_error() {
    let err = smollm().decode(&[1, 49152], false).unwrap_err();
    assert!(matches!(err, Error::TokenOutOfRange { id: 49152, vocab_size: 49152 }), "{err}");
}

/// Feeds `ids` one by one; checks that every piece is whole text and that the pieces add
/// up to the full decode.
fn assert_streams(t: &Tokenizer, ids: &[u32], skip_special: bool) {
    let mut stream = StreamDecoder::new(skip_special);
    let mut text = String::new();
    for &id in ids {
        if let Some(piece) = stream.step(t, id).unwrap() {
            assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} splits a character");
            text.push_str(&piece);
        }
    }
    text.extend(stream.flush(t).unwrap());
    assert_eq!(text, t.decode(ids, skip_special).unwrap());
}

#[test]
fn smollm_stream_decoder_never_splits_characters() {
    let t = smollm();
    for &s in SAMPLES {
        let ids = t.encode(s, false).unwrap();
        assert_streams(t, &ids, false);
    }
    // The emoji takes several byte-level tokens, so some steps must return nothing.
    let ids = t.encode("🦀", false).unwrap();
    assert!(ids.len() > 1, "{ids:?}");
    let ids = t.encode("<|im_start|>assistant\n日本🦀<|im_end|>", false).unwrap();
    assert_streams(t, &ids, true);
    assert_streams(t, &ids, false);
}

/// The byte-level fixture tokenizer (`write_byte_tokenizer`), edited.
fn fixture(edit: impl FnOnce(&mut GgufWriter)) -> Metadata {
    let mut w = GgufWriter::new();
    write_byte_tokenizer(&mut w);
    edit(&mut w);
    Gguf::parse(&w.to_bytes().unwrap()).unwrap().metadata().clone()
}

#[test]
fn fixture_encodes_bytes_merges_and_specials() {
    let t = Tokenizer::from_gguf(&fixture(|_| {})).unwrap();
    assert_eq!(t.vocab_size(), 260);
    assert_eq!(t.encode("<|im_start|>hey<tool>", false).unwrap(), [257, 256, u32::from(b'y'), 259]);
    assert_eq!(t.stop_tokens(), &[258]);
    assert_eq!(t.chat_template(), Some(CHATML));
    // User-defined tokens are text when decoding, control tokens are skipped.
    let ids = t.encode("<|im_start|>x<tool><|im_end|>", false).unwrap();
    assert_eq!(t.decode(&ids, true).unwrap(), "x<tool>");
}

#[test]
fn fixture_adds_bos_only_when_asked() {
    let t = Tokenizer::from_gguf(&fixture(|w| {
        w.metadata("tokenizer.ggml.add_bos_token", true);
    }))
    .unwrap();
    assert_eq!(t.encode("h", true).unwrap(), [257, u32::from(b'h')]);
    assert_eq!(t.encode("h", false).unwrap(), [u32::from(b'h')]);
}

#[test]
fn fixture_stream_decoder_waits_for_whole_characters() {
    let t = Tokenizer::from_gguf(&fixture(|_| {})).unwrap();
    let ids = t.encode("é日🦀", false).unwrap();
    assert_eq!(ids.len(), 2 + 3 + 4, "one token per byte");
    let mut stream = StreamDecoder::new(false);
    let pieces: Vec<Option<String>> = ids.iter().map(|&id| stream.step(&t, id).unwrap()).collect();
    let expected = [None, Some("é"), None, None, Some("日"), None, None, None, Some("🦀")];
    assert_eq!(pieces, expected.map(|p| p.map(String::from)));
    assert_eq!(stream.flush(&t).unwrap(), None);

    // A sequence cut inside a character is not lost: flush returns it, lossily.
    let mut stream = StreamDecoder::new(false);
    assert_eq!(stream.step(&t, ids[0]).unwrap(), None);
    assert_eq!(stream.flush(&t).unwrap().as_deref(), Some("\u{FFFD}"));
    // An id outside the vocabulary is an error, not a dropped token.
    assert!(matches!(stream.step(&t, 999), Err(Error::TokenOutOfRange { id: 999, .. })));
}

/// The error's message, which must name `needle`.
fn err_naming(metadata: &Metadata, needle: &str) -> Error {
    let err = Tokenizer::from_gguf(metadata).unwrap_err();
    assert!(err.to_string().contains(needle), "{err} does not name {needle}");
    err
}

#[test]
fn from_gguf_errors_name_the_key() {
    let no_tokens = {
        let mut m = GgufWriter::new();
        m.metadata("tokenizer.ggml.model", "gpt2").metadata("tokenizer.ggml.pre", "smollm");
        Gguf::parse(&m.to_bytes().unwrap()).unwrap().metadata().clone()
    };
    assert!(matches!(err_naming(&no_tokens, "tokenizer.ggml.tokens"), Error::Io(_)));
    assert!(matches!(err_naming(&Metadata::new(), "tokenizer.ggml.model"), Error::Io(_)));

    let t5 = fixture(|w| {
        w.metadata("tokenizer.ggml.model", "t5");
    });
    assert!(matches!(err_naming(&t5, "t5"), Error::UnsupportedTokenizer { .. }));
    let pre = fixture(|w| {
        w.metadata("tokenizer.ggml.pre", "no-such-split");
    });
    assert!(matches!(err_naming(&pre, "no-such-split"), Error::UnsupportedTokenizer { .. }));
    let bos = fixture(|w| {
        w.metadata("tokenizer.ggml.bos_token_id", 260u32);
    });
    assert!(matches!(err_naming(&bos, "bos_token_id"), Error::InvalidTokenizer { .. }));
    let merges = fixture(|w| {
        w.metadata("tokenizer.ggml.merges", vec!["he"]);
    });
    assert!(matches!(err_naming(&merges, "tokenizer.ggml.merges"), Error::InvalidTokenizer { .. }));
    let wrong_type = fixture(|w| {
        w.metadata("tokenizer.ggml.tokens", 7u32);
    });
    assert!(matches!(err_naming(&wrong_type, "tokenizer.ggml.tokens"), Error::Io(_)));
}

/// The default model's vocabulary as a `tokenizer.json`: byte-level BPE with SmolLM's
/// split (digits one by one, then GPT-2's), its control tokens special.
fn smollm_json() -> String {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::AddedToken;

    let metadata = model_metadata();
    let tokens = metadata.strings("tokenizer.ggml.tokens").unwrap();
    let types = metadata.i32s("tokenizer.ggml.token_type").unwrap();
    let vocab: tokenizers::models::bpe::Vocab =
        tokens.iter().enumerate().map(|(i, t)| ((*t).to_owned(), i as u32)).collect();
    let merges = metadata.strings("tokenizer.ggml.merges").unwrap();
    let merges =
        merges.iter().map(|m| m.split_once(' ').unwrap()).map(|(a, b)| (a.into(), b.into()));
    let bpe = BPE::builder().vocab_and_merges(vocab, merges.collect()).build().unwrap();
    let mut inner = tokenizers::Tokenizer::new(bpe);
    let gpt2 = ByteLevel::new(false, false, true);
    inner.with_pre_tokenizer(Some(Sequence::new(vec![Digits::new(true).into(), gpt2.into()])));
    inner.with_decoder(Some(ByteLevel::default()));
    let control = tokens.iter().zip(&types).filter(|(_, &ty)| ty == 3);
    let added: Vec<_> =
        control.map(|(t, _)| AddedToken::from(*t, true).normalized(false)).collect();
    inner.add_special_tokens(added).unwrap();
    inner.to_string(false).unwrap()
}

#[test]
fn from_json_agrees_with_the_gguf_tokenizer() {
    let t = smollm();
    assert!(t.inner().is_none(), "a GGUF vocabulary is encoded by lantern itself");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, smollm_json()).unwrap();
    let from_file = Tokenizer::from_file(&path).unwrap();
    assert_eq!(from_file.kind(), "tokenizer.json");
    assert_eq!(from_file.stop_tokens(), &[0, 2]);
    assert_eq!(from_file.bos(), None, "tokenizer.json does not record BOS");
    for &s in SAMPLES {
        assert_eq!(from_file.encode(s, false).unwrap(), t.encode(s, false).unwrap());
        let ids = t.encode(s, false).unwrap();
        assert_eq!(from_file.decode(&ids, false).unwrap(), t.decode(&ids, false).unwrap());
        assert_streams(&from_file, &ids, false);
    }
    let prompt =
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(from_file.encode(prompt, true).unwrap(), t.encode(prompt, true).unwrap());
    assert!(from_file.tokenize(prompt, false, false).is_err(), "it cannot leave specials unparsed");
}

#[test]
fn from_json_rejects_bad_input_without_panicking() {
    let err = Tokenizer::from_json(b"{\"model\": \xff}").unwrap_err();
    assert!(matches!(err, Error::TokenizerUtf8 { path: None, .. }), "{err}");
    let err = Tokenizer::from_json(b"{\"model\": ").unwrap_err();
    assert!(matches!(err, Error::TokenizerJson { path: None, .. }), "{err}");
    let err = Tokenizer::from_json(b"{\"version\": \"1.0\"}").unwrap_err();
    assert!(matches!(err, Error::TokenizerJson { .. }), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, b"\xfe\xff not utf-8").unwrap();
    let err = Tokenizer::from_file(&path).unwrap_err();
    assert!(matches!(err, Error::TokenizerUtf8 { path: Some(_), .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    std::fs::write(&path, b"[1, 2").unwrap();
    let err = Tokenizer::from_file(&path).unwrap_err();
    assert!(matches!(err, Error::TokenizerJson { path: Some(_), .. }), "{err}");
    let err = Tokenizer::from_file(dir.path().join("missing.json")).unwrap_err();
    assert!(matches!(err, Error::File { .. }), "{err}");
}

/// A small SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte tokens, then
/// `▁` (259), `h`, `e`, `▁h` (score -1), `he` (score -0.5) and a control token `<ctrl>`
/// (264).
fn spm_fixture() -> Tokenizer {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(["▁", "h", "e", "▁h", "he", "<ctrl>"].map(String::from));
    let mut types = vec![6i32; tokens.len()];
    types[..3].copy_from_slice(&[2, 3, 3]);
    types[259..].copy_from_slice(&[1, 1, 1, 1, 1, 3]);
    let mut scores = vec![0f32; tokens.len()];
    scores[262] = -1.0;
    scores[263] = -0.5;
    let mut w = GgufWriter::new();
    w.metadata("tokenizer.ggml.model", "llama")
        .metadata("tokenizer.ggml.tokens", tokens)
        .metadata("tokenizer.ggml.scores", scores)
        .metadata("tokenizer.ggml.token_type", types);
    let metadata = Gguf::parse(&w.to_bytes().unwrap()).unwrap().metadata().clone();
    Tokenizer::from_gguf(&metadata).unwrap()
}

#[test]
fn spm_merges_by_score_with_byte_fallback() {
    let t = spm_fixture();
    assert_eq!(t.kind(), "spm");
    // llama.cpp's defaults: BOS 1, EOS 2 (a stop token), BOS added.
    assert_eq!((t.bos(), t.eos(), t.add_bos()), (Some(1), Some(2), true));
    assert_eq!(t.stop_tokens(), &[2]);
    // `he` (-0.5) beats `▁h` (-1): the space prefix stays alone.
    assert_eq!(t.encode("he", false).unwrap(), [259, 263]);
    // `é` has no token: its two UTF-8 bytes.
    let ids = t.encode("hé", false).unwrap();
    assert_eq!(ids, [262, 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(t.decode(&ids, false).unwrap(), "hé");
    // A space goes before text that follows a special token too.
    assert_eq!(t.encode("<ctrl>he", true).unwrap(), [1, 264, 259, 263]);
    assert_eq!(t.tokenize("<ctrl>", false, false).unwrap()[..2], [259, 3 + b'<' as u32]);
    assert_eq!(t.decode(&[1, 264, 259, 263], true).unwrap(), " he");
    assert_eq!(t.decode(&[1, 264, 259, 263], false).unwrap(), "<s><ctrl> he");
}

#[test]
fn spm_stream_decoder_joins_byte_tokens() {
    let t = spm_fixture();
    let mut stream = StreamDecoder::new(true);
    let pieces: Vec<Option<String>> =
        [262, 3 + 0xC3, 3 + 0xA9, 1].iter().map(|&id| stream.step(&t, id).unwrap()).collect();
    assert_eq!(pieces, [Some(" h".to_owned()), None, Some("é".to_owned()), None]);
    // A byte that can never start a character comes out as U+FFFD at once.
    assert_eq!(stream.step(&t, 3 + 0xFF).unwrap().as_deref(), Some("\u{FFFD}"));
    assert_eq!(stream.step(&t, 3 + 0xC3).unwrap(), None);
    assert_eq!(stream.flush(&t).unwrap().as_deref(), Some("\u{FFFD}"));
}
