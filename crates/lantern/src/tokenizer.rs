//! [`Tokenizer`]: text to token ids and back, built from a GGUF model's metadata or from a
//! HuggingFace `tokenizer.json`.

use std::fmt;
use std::path::Path;

use lantern_io::Metadata;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

#[cfg(doc)]
use crate::StreamDecoder;
use crate::{Error, Result};

/// GGUF `token_type` of a control token (`<|im_start|>`): parsed in text, skipped by
/// `decode(.., skip_special = true)`.
const TOKEN_TYPE_CONTROL: i32 = 3;
/// GGUF `token_type` of a user-defined token: parsed in text as one token, but it is
/// ordinary text when decoding.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Tokens that end a turn or a document, whichever model family they come from. The same list
/// as llama.cpp's end-of-generation detection (`llama-vocab.cpp`), so both stop at the same
/// place.
const TURN_ENDERS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
];

/// A tokenizer: encodes text to token ids and decodes ids to text.
///
/// Ids are `u32` indices into the model's vocabulary (`0..vocab_size()`). Special tokens
/// written in the input text (`<|im_start|>`) are always recognized as single tokens,
/// whatever `add_special` says; `add_special` only controls whether BOS/EOS are added around
/// the text. Decoding byte-level BPE is lossless for any UTF-8 string:
/// `decode(encode(s, false), false) == s`. To turn ids into text one at a time while
/// generating, use [`StreamDecoder`], which never splits a UTF-8 character across pieces.
///
/// Cheap to share (`Send + Sync`); clone it only if you need an owned copy, the vocabulary is
/// copied. [`Tokenizer::inner`] exposes the wrapped `tokenizers::Tokenizer` for anything this
/// type does not cover.
///
/// # Example
///
/// ```no_run
/// # fn main() -> lantern::Result<()> {
/// let tokenizer = lantern::Tokenizer::from_file("tokenizer.json")?;
/// let ids = tokenizer.encode("Hello, world", false)?;
/// assert_eq!(tokenizer.decode(&ids, false)?, "Hello, world");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    stop_tokens: Vec<u32>,
    chat_template: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF model describes in its `tokenizer.*` metadata.
    ///
    /// Supported: `tokenizer.ggml.model = "gpt2"` (byte-level BPE from `tokenizer.ggml.tokens`
    /// and `tokenizer.ggml.merges`) with `tokenizer.ggml.pre` one of `smollm` (digits split one
    /// by one, then the GPT-2 regex) or `gpt-2`/`gpt2` (GPT-2 regex). Tokens whose
    /// `tokenizer.ggml.token_type` is control (3) become special tokens, user-defined (4)
    /// become added, non-special tokens. BOS/EOS come from `tokenizer.ggml.bos_token_id` /
    /// `eos_token_id`; BOS is prepended only if `tokenizer.ggml.add_bos_token` is true. By
    /// default (no `add_bos_token` key), nothing is added.
    ///
    /// # Errors
    /// - [`Error::Io`] naming the key when a required key (`tokenizer.ggml.model`, `tokens`,
    ///   `merges`) is missing, or any key has the wrong type;
    /// - [`Error::UnsupportedTokenizer`] for other tokenizer models (SentencePiece `llama`,
    ///   for now) and pre-tokenizers (`llama-bpe`, `qwen2`, … are not mapped yet);
    /// - [`Error::InvalidTokenizer`] naming the key for values that do not fit together
    ///   (a merge without a space, a BOS id past the vocabulary, …).
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn from_gguf(metadata: &Metadata) -> Result<Self> {
        let model = metadata.str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(Error::UnsupportedTokenizer {
                key: "tokenizer.ggml.model",
                value: model.to_owned(),
            });
        }
        let pre = match metadata.opt_str("tokenizer.ggml.pre")? {
            Some(pre) => pre,
            None => {
                // llama.cpp warns and uses its own "default" split here, which differs from
                // GPT-2's; files this old are rare, and GPT-2's split is the better guess.
                tracing::warn!("no tokenizer.ggml.pre in the model, using the GPT-2 split");
                "gpt2"
            }
        };
        let tokens = metadata.strings("tokenizer.ggml.tokens")?;
        let merges = metadata.strings("tokenizer.ggml.merges")?;
        let token_types = match metadata.get("tokenizer.ggml.token_type") {
            Some(_) => Some(metadata.i32s("tokenizer.ggml.token_type")?),
            None => None,
        };
        let inner = build_byte_level_bpe(&tokens, &merges, token_types.as_deref(), pre)?;

        let vocab_size = tokens.len();
        let special_id = |key: &'static str| -> Result<Option<u32>> {
            match metadata.opt_u32(key)? {
                Some(id) if id as usize >= vocab_size => Err(Error::InvalidTokenizer {
                    key,
                    reason: format!("id {id} is past the vocabulary of {vocab_size} tokens"),
                }),
                id => Ok(id),
            }
        };
        let bos = special_id("tokenizer.ggml.bos_token_id")?;
        let eos = special_id("tokenizer.ggml.eos_token_id")?;
        let add_bos = metadata.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(false);
        let add_eos = metadata.opt_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        if add_bos && bos.is_none() {
            return Err(Error::InvalidTokenizer {
                key: "tokenizer.ggml.add_bos_token",
                reason: "true, but there is no tokenizer.ggml.bos_token_id".to_owned(),
            });
        }
        if add_eos && eos.is_none() {
            return Err(Error::InvalidTokenizer {
                key: "tokenizer.ggml.add_eos_token",
                reason: "true, but there is no tokenizer.ggml.eos_token_id".to_owned(),
            });
        }
        let chat_template = metadata.opt_str("tokenizer.chat_template")?.map(str::to_owned);
        Ok(Self::assemble(inner, bos, eos, add_bos, add_eos, chat_template))
    }

    /// Loads a HuggingFace `tokenizer.json` file.
    ///
    /// BOS/EOS are whatever the file's post-processor adds; [`Tokenizer::bos`],
    /// [`Tokenizer::eos`] and [`Tokenizer::chat_template`] return `None`, because
    /// `tokenizer.json` does not record them (`tokenizer_config.json` does).
    /// [`Tokenizer::stop_tokens`] holds the known end-of-turn tokens found in the vocabulary.
    ///
    /// # Errors
    /// [`Error::File`] if the file cannot be read, [`Error::TokenizerUtf8`] or
    /// [`Error::TokenizerJson`] (both naming the file) if it is not a valid tokenizer.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|source| Error::File { path: path.to_owned(), source })?;
        Self::from_json(&bytes).map_err(|e| match e {
            Error::TokenizerUtf8 { source, .. } => {
                Error::TokenizerUtf8 { path: Some(path.to_owned()), source }
            }
            Error::TokenizerJson { source, .. } => {
                Error::TokenizerJson { path: Some(path.to_owned()), source }
            }
            e => e,
        })
    }

    /// Parses the contents of a HuggingFace `tokenizer.json`. See [`Tokenizer::from_file`].
    ///
    /// # Errors
    /// [`Error::TokenizerUtf8`] if `bytes` is not UTF-8, [`Error::TokenizerJson`] if it is
    /// not JSON describing a tokenizer.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|source| Error::TokenizerUtf8 { path: None, source })?;
        let inner: tokenizers::Tokenizer =
            text.parse().map_err(|source| Error::TokenizerJson { path: None, source })?;
        Ok(Self::assemble(inner, None, None, false, false, None))
    }

    fn assemble(
        inner: tokenizers::Tokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
        add_bos: bool,
        add_eos: bool,
        chat_template: Option<String>,
    ) -> Self {
        let mut stop_tokens: Vec<u32> = eos
            .into_iter()
            .chain(TURN_ENDERS.iter().filter_map(|t| inner.token_to_id(t)))
            .collect();
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        Self { inner, bos, eos, add_bos, add_eos, stop_tokens, chat_template }
    }

    /// Encodes `text` to token ids.
    ///
    /// Special tokens written in `text` are recognized as single tokens in every case.
    /// With `add_special`, BOS is prepended (and EOS appended) when the model asks for it;
    /// for a `tokenizer.json`, its post-processor runs.
    ///
    /// A chat template usually writes the BOS token into the prompt itself: encode a
    /// rendered template with `add_special = false`, or BOS appears twice.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] if the underlying tokenizer fails (it does not for byte-level
    /// BPE).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, add_special)
            .map_err(|source| Error::Tokenizer { source })?;
        let body = encoding.get_ids();
        let mut ids = Vec::with_capacity(body.len() + 2);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(body);
        if add_special && self.add_eos {
            ids.extend(self.eos);
        }
        Ok(ids)
    }

    /// Decodes token ids to text. With `skip_special`, special (control) tokens produce no
    /// text.
    ///
    /// Decoding a prefix of a sequence can end in the middle of a UTF-8 character, which
    /// comes out as U+FFFD; to decode while generating, use [`StreamDecoder`].
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for an id outside the vocabulary (rather than silently
    /// dropping it, as `tokenizers` does).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.check_ids(ids)?;
        self.inner.decode(ids, skip_special).map_err(|source| Error::Tokenizer { source })
    }

    pub(crate) fn check_ids(&self, ids: &[u32]) -> Result<()> {
        match ids.iter().find(|&&id| self.inner.id_to_token(id).is_none()) {
            Some(&id) => Err(Error::TokenOutOfRange { id, vocab_size: self.vocab_size() }),
            None => Ok(()),
        }
    }

    /// Whether the model asks for BOS at the start of a sequence.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The beginning-of-sequence token, if the model names one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the model names one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Tokens that end generation, sorted: EOS plus every end-of-turn token in the
    /// vocabulary (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, `<|endoftext|>`, …).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Whether `id` is one of [`Tokenizer::stop_tokens`].
    pub fn is_stop_token(&self, id: u32) -> bool {
        self.stop_tokens.binary_search(&id).is_ok()
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token given in its vocabulary form (byte-level BPE writes a leading space
    /// as `Ġ`: `"Ġthe"`, not `" the"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary form of a token id (see [`Tokenizer::token_to_id`]); use
    /// [`Tokenizer::decode`] for its text.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The Jinja chat template stored in the model (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The wrapped `tokenizers` tokenizer, for what this type does not expose.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

// The derived Debug would print the whole vocabulary.
impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("add_eos", &self.add_eos)
            .field("stop_tokens", &self.stop_tokens)
            .field("chat_template", &self.chat_template.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Builds a byte-level BPE tokenizer from GGUF-style arrays: `tokens[id]` in byte-level form,
/// `merges` as `"left right"`, optional GGUF token types, and llama.cpp's pre-tokenizer name.
fn build_byte_level_bpe(
    tokens: &[&str],
    merges: &[&str],
    token_types: Option<&[i32]>,
    pre: &str,
) -> Result<tokenizers::Tokenizer> {
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        // llama.cpp's smollm split: `\p{N}` alone, then the GPT-2 regex.
        "smollm" => Sequence::new(vec![Digits::new(true).into(), gpt2_split().into()]).into(),
        "gpt2" | "gpt-2" => gpt2_split().into(),
        other => {
            return Err(Error::UnsupportedTokenizer {
                key: "tokenizer.ggml.pre",
                value: other.to_owned(),
            })
        }
    };
    if tokens.is_empty() || u32::try_from(tokens.len()).is_err() {
        return Err(Error::InvalidTokenizer {
            key: "tokenizer.ggml.tokens",
            reason: format!("{} tokens", tokens.len()),
        });
    }
    if let Some(types) = token_types {
        if types.len() != tokens.len() {
            return Err(Error::InvalidTokenizer {
                key: "tokenizer.ggml.token_type",
                reason: format!("{} entries for {} tokens", types.len(), tokens.len()),
            });
        }
    }
    // Ids fit in u32: checked above.
    let vocab: Vocab =
        tokens.iter().enumerate().map(|(id, t)| ((*t).to_owned(), id as u32)).collect();
    let merges = merges
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
            None => Err(Error::InvalidTokenizer {
                key: "tokenizer.ggml.merges",
                reason: format!("merge {i} ({m:?}) is not two tokens separated by a space"),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| {
        Error::InvalidTokenizer { key: "tokenizer.ggml.merges", reason: e.to_string() }
    })?;

    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre_tokenizer));
    inner.with_decoder(Some(ByteLevel::default()));
    if let Some(types) = token_types {
        let added = tokens.iter().zip(types).filter_map(|(t, &ty)| {
            let special = match ty {
                TOKEN_TYPE_CONTROL => true,
                TOKEN_TYPE_USER_DEFINED => false,
                _ => return None,
            };
            // Not normalized: match the text exactly as written.
            Some(AddedToken::from(*t, special).normalized(false))
        });
        // One call, because each call rebuilds the added-token matcher.
        inner.add_special_tokens(added.collect::<Vec<_>>()).map_err(|e| {
            Error::InvalidTokenizer { key: "tokenizer.ggml.token_type", reason: e.to_string() }
        })?;
    }
    Ok(inner)
}

/// The GPT-2 pre-tokenizer: its regex, bytes mapped to printable characters, no prefix
/// space (candle's GGUF tokenizer adds one, which gives `Ġuser` instead of `user`).
fn gpt2_split() -> ByteLevel {
    ByteLevel::new(false, false, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny byte-level vocabulary: the 256 byte characters, a few merges and two
    /// control tokens.
    fn tiny() -> Tokenizer {
        let bytes: Vec<String> = (0u8..=255).map(|b| byte_char(b).to_string()).collect();
        let mut tokens: Vec<&str> = bytes.iter().map(String::as_str).collect();
        tokens.extend(["he", "hel", "hell", "hello", "Ġw", "<|im_start|>", "<|im_end|>"]);
        let merges = ["h e", "he l", "hel l", "hell o", "Ġ w"];
        let mut types = vec![1; tokens.len()];
        let n = types.len();
        types[n - 2] = TOKEN_TYPE_CONTROL;
        types[n - 1] = TOKEN_TYPE_CONTROL;
        let inner = build_byte_level_bpe(&tokens, &merges, Some(&types), "smollm").unwrap();
        Tokenizer::assemble(inner, Some(261), Some(262), false, false, None)
    }

    /// GPT-2's byte to character map.
    fn byte_char(b: u8) -> char {
        let visible = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        if visible {
            return char::from(b);
        }
        let rank = (0u8..b)
            .filter(|&c| !((b'!'..=b'~').contains(&c) || (0xA1..=0xAC).contains(&c) || c >= 0xAE))
            .count() as u32;
        char::from_u32(256 + rank).unwrap()
    }

    #[test]
    fn merges_and_specials() {
        let t = tiny();
        let ids = t.encode("<|im_start|>hello w<|im_end|>", false).unwrap();
        assert_eq!(ids, vec![261, 259, 260, 262]);
        assert_eq!(t.decode(&ids, false).unwrap(), "<|im_start|>hello w<|im_end|>");
        assert_eq!(t.decode(&ids, true).unwrap(), "hello w");
        assert_eq!(t.stop_tokens(), &[262]);
        assert!(t.is_stop_token(262));
    }

    #[test]
    fn digits_are_split_one_by_one() {
        let t = tiny();
        assert_eq!(t.encode("2024", false).unwrap().len(), 4);
    }

    #[test]
    fn out_of_range_id_is_an_error() {
        let t = tiny();
        let err = t.decode(&[1, 100_000], false).unwrap_err();
        assert!(matches!(err, Error::TokenOutOfRange { id: 100_000, .. }), "{err}");
    }

    #[test]
    fn unknown_pre_tokenizer_names_the_value() {
        let err = build_byte_level_bpe(&["a"], &[], None, "llama-bpe").unwrap_err();
        assert!(err.to_string().contains("llama-bpe"), "{err}");
    }

    #[test]
    fn bad_merge_names_the_key() {
        let err = build_byte_level_bpe(&["a", "b"], &["ab"], None, "gpt2").unwrap_err();
        assert!(err.to_string().contains("tokenizer.ggml.merges"), "{err}");
        let err = build_byte_level_bpe(&["a", "b"], &["a c"], None, "gpt2").unwrap_err();
        assert!(err.to_string().contains("tokenizer.ggml.merges"), "{err}");
    }

    #[test]
    fn token_type_length_mismatch() {
        let err = build_byte_level_bpe(&["a", "b"], &[], Some(&[1]), "gpt2").unwrap_err();
        assert!(err.to_string().contains("tokenizer.ggml.token_type"), "{err}");
    }
}
