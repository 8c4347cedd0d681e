//! [`Tokenizer`]: text to token ids and back, built from a GGUF model's metadata or from a
//! HuggingFace `tokenizer.json`.
//!
//! A GGUF vocabulary encodes and decodes as llama.cpp does (`src/llama-vocab.cpp`), token
//! for token: SentencePiece-style vocabularies (`tokenizer.ggml.model = "llama"`: Llama 2,
//! Mistral, Phi-3, Gemma 3) merge characters by score with `<0xXX>` byte fallback;
//! byte-level BPE vocabularies (`gpt2`: GPT-2, Llama 3, Qwen 2/3.5, SmolLM; and Gemma 4's
//! `gemma4`) cut text with the pre-tokenizer llama.cpp names in `tokenizer.ggml.pre`,
//! then merge by rank. Both merge loops are this module's own rather than the `tokenizers`
//! crate's: llama.cpp's SentencePiece merges by the score of the merged token (the crate's
//! BPE ranks merge *pairs*, and a score order would first have to be turned into a pair
//! list over the whole vocabulary), and its BPE merges pairs whose result need not be a
//! token (the crate's builder refuses such merges). The `tokenizers` crate still reads
//! `tokenizer.json` files.
//!
//! Files: `vocab` (tokens, scores, attributes), `special` (special tokens, end of
//! generation, the split around special tokens), `spm` and `bpe` (the merge loops),
//! `pre_split` (llama.cpp's pre-tokenizers by name), `symbol` (the merge list), `gguf`
//! (encoding), `detokenize` (decoding).

mod bpe;
mod detokenize;
mod gguf;
mod pre_split;
mod special;
mod spm;
mod symbol;
mod vocab;

use std::fmt;
use std::path::Path;

use lantern_io::Metadata;

use self::gguf::{GgufTokenizer, Kind};
#[cfg(doc)]
use crate::StreamDecoder;
use crate::{Error, Result};

/// Where the ids come from: a GGUF vocabulary, or a `tokenizer.json`.
#[derive(Clone)]
pub(crate) enum Backend {
    Gguf(Box<GgufTokenizer>),
    Json(Box<tokenizers::Tokenizer>),
}

/// A tokenizer: encodes text to token ids and decodes ids to text.
///
/// Ids are `u32` indices into the model's vocabulary (`0..vocab_size()`). Built from a GGUF
/// model ([`Tokenizer::from_gguf`]), it gives llama.cpp's ids for every text, and special
/// tokens written in the text (`<|im_start|>`) are single tokens unless
/// [`Tokenizer::tokenize`] is told otherwise; `add_special` only controls whether BOS/EOS
/// are added around the text. Decoding is lossless for byte-level BPE:
/// `decode(encode(s, false), false) == s` for any UTF-8 string. To turn ids into text one
/// at a time while generating, use [`StreamDecoder`], which never splits a UTF-8
/// character across pieces.
///
/// Cheap to share (`Send + Sync`); clone it only if you need an owned copy, the vocabulary is
/// copied.
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
    backend: Backend,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    stop_tokens: Vec<u32>,
    chat_template: Option<String>,
}

impl Tokenizer {
    /// Builds the tokenizer a GGUF model describes in its `tokenizer.*` metadata, as
    /// llama.cpp does.
    ///
    /// Supported `tokenizer.ggml.model` values: `llama` (SentencePiece: `tokens`, `scores`,
    /// `<0xXX>` byte tokens, a space prefix unless `add_space_prefix` is false), `gpt2`
    /// (byte-level BPE: `tokens`, `merges`, and a pre-tokenizer `tokenizer.ggml.pre` among
    /// llama.cpp's names: `llama-bpe`, `qwen2`, `qwen35`, `gpt-2`, `smollm`, `starcoder`,
    /// `falcon`, `deepseek-llm`, … or none, for llama.cpp's default split) and `gemma4`.
    ///
    /// Token types (`tokenizer.ggml.token_type`): control (3) and unknown (2) tokens are
    /// matched in text only when special tokens are parsed and decode to text only when
    /// special tokens are kept; user-defined (4) ones are always matched and always text;
    /// unused (5) ones decode to nothing; byte (6) ones decode to their byte.
    ///
    /// BOS/EOS/unknown ids come from `tokenizer.ggml.*_token_id`, with llama.cpp's defaults
    /// per kind (SentencePiece: BOS 1, EOS 2, unknown 0). BOS is added by default for
    /// SentencePiece, Llama 3's split and Gemma 4, EOS never; `tokenizer.ggml.add_bos_token`
    /// and `add_eos_token` override that. Stop tokens are EOS, `eot_token_id`,
    /// `eom_token_id` and every token llama.cpp recognises by text as ending generation
    /// (`<|im_end|>`, `<|eot_id|>`, `<end_of_turn>`, …).
    ///
    /// # Errors
    /// - [`Error::Io`] naming the key when a required key (`tokenizer.ggml.model`, `tokens`,
    ///   `merges`) is missing, or any key has the wrong type;
    /// - [`Error::UnsupportedTokenizer`] for other tokenizer models (`bert`, `t5`, …) and
    ///   pre-tokenizers;
    /// - [`Error::InvalidTokenizer`] naming the key for values that do not fit together
    ///   (a merge without a space, a BOS id past the vocabulary, …).
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn from_gguf(metadata: &Metadata) -> Result<Self> {
        let gguf = GgufTokenizer::from_metadata(metadata)?;
        let chat_template = metadata.opt_str("tokenizer.chat_template")?.map(str::to_owned);
        Ok(Self {
            bos: gguf.bos,
            eos: gguf.eos,
            add_bos: gguf.add_bos,
            stop_tokens: gguf.eog.clone(),
            chat_template,
            backend: Backend::Gguf(Box::new(gguf)),
        })
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
        let mut stop_tokens: Vec<u32> =
            special::END_OF_GENERATION.iter().filter_map(|t| inner.token_to_id(t)).collect();
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        Ok(Self {
            backend: Backend::Json(Box::new(inner)),
            bos: None,
            eos: None,
            add_bos: false,
            stop_tokens,
            chat_template: None,
        })
    }

    /// Encodes `text` to token ids, special tokens written in it recognised.
    ///
    /// The same as [`Tokenizer::tokenize`]`(text, add_special, true)`. With `add_special`,
    /// BOS is prepended (and EOS appended) when the model asks for it; for a
    /// `tokenizer.json`, its post-processor runs.
    ///
    /// A chat template usually writes the BOS token into the prompt itself: encode a
    /// rendered template with `add_special = false`, or BOS appears twice.
    ///
    /// # Errors
    /// See [`Tokenizer::tokenize`].
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.tokenize(text, add_special, true)
    }

    /// Encodes `text` to token ids as llama.cpp's `llama_tokenize(text, add_special,
    /// parse_special)` does.
    ///
    /// With `parse_special`, control tokens written in the text (`<|im_start|>`, `<s>`) are
    /// single tokens; without it they are text like any other. User-defined tokens are
    /// always single tokens. With `add_special`, BOS is prepended (and EOS appended) when
    /// the model asks for it.
    ///
    /// # Errors
    /// [`Error::TextSplit`] if a pre-tokenizer pattern gives up on the text (its
    /// backtracking limit); [`Error::Tokenizer`] if a `tokenizer.json` tokenizer fails, or
    /// is asked not to parse special tokens, which it cannot do.
    pub fn tokenize(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        match &self.backend {
            Backend::Gguf(gguf) => gguf.encode(text, add_special, parse_special),
            Backend::Json(_) if !parse_special => Err(Error::Tokenizer {
                source: "a tokenizer.json always parses its special tokens".into(),
            }),
            Backend::Json(inner) => {
                let encoding = inner
                    .encode_fast(text, add_special)
                    .map_err(|source| Error::Tokenizer { source })?;
                Ok(encoding.get_ids().to_vec())
            }
        }
    }

    /// Decodes token ids to text. With `skip_special`, control tokens produce no text, and
    /// a leading BOS or trailing EOS the model adds is dropped.
    ///
    /// For a GGUF vocabulary this is llama.cpp's `llama_detokenize(ids, remove_special =
    /// skip_special, unparse_special = !skip_special)`: a SentencePiece text loses the
    /// space its encoding put first, and vocabularies that clean up spaces (GPT-2's and
    /// Llama 3's, not Qwen's or SmolLM's) remove those before `.,!?` and some
    /// contractions. Decoding a prefix of a sequence can end in the middle of a UTF-8
    /// character, which comes out as U+FFFD; to decode while generating, use
    /// [`StreamDecoder`].
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for an id outside the vocabulary (rather than silently
    /// dropping it, as `tokenizers` does).
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.check_ids(ids)?;
        match &self.backend {
            Backend::Gguf(gguf) => {
                let bytes = gguf.detokenize(ids, skip_special, !skip_special);
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Backend::Json(inner) => {
                inner.decode(ids, skip_special).map_err(|source| Error::Tokenizer { source })
            }
        }
    }

    pub(crate) fn check_ids(&self, ids: &[u32]) -> Result<()> {
        let n = self.vocab_size();
        match ids.iter().find(|&&id| id as usize >= n) {
            Some(&id) => Err(Error::TokenOutOfRange { id, vocab_size: n }),
            None => Ok(()),
        }
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
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

    /// Tokens that end generation, sorted: EOS, the model's end-of-turn and end-of-message
    /// tokens (`tokenizer.ggml.eot_token_id`, `eom_token_id`), and every token llama.cpp
    /// recognises by text as ending generation (`<|im_end|>`, `<|eot_id|>`,
    /// `<end_of_turn>`, `<|endoftext|>`, …).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Whether `id` is one of [`Tokenizer::stop_tokens`].
    pub fn is_stop_token(&self, id: u32) -> bool {
        self.stop_tokens.binary_search(&id).is_ok()
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        match &self.backend {
            Backend::Gguf(gguf) => gguf.vocab.len(),
            Backend::Json(inner) => inner.get_vocab_size(true),
        }
    }

    /// The id of a token given in its vocabulary form (byte-level BPE writes a leading space
    /// as `Ġ`: `"Ġthe"`; SentencePiece as `▁`: `"▁the"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        match &self.backend {
            Backend::Gguf(gguf) => gguf.vocab.id(token),
            Backend::Json(inner) => inner.token_to_id(token),
        }
    }

    /// The vocabulary form of a token id (see [`Tokenizer::token_to_id`]); use
    /// [`Tokenizer::decode`] for its text.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        match &self.backend {
            Backend::Gguf(gguf) => {
                ((id as usize) < gguf.vocab.len()).then(|| gguf.vocab.text(id).to_owned())
            }
            Backend::Json(inner) => inner.id_to_token(id),
        }
    }

    /// The kind of tokenizer: `"spm"` (SentencePiece-style GGUF vocabulary), `"bpe"`
    /// (byte-level BPE GGUF vocabulary) or `"tokenizer.json"`.
    pub fn kind(&self) -> &'static str {
        match &self.backend {
            Backend::Gguf(gguf) => match gguf.kind {
                Kind::Spm => "spm",
                Kind::Bpe { .. } => "bpe",
            },
            Backend::Json(_) => "tokenizer.json",
        }
    }

    /// The Jinja chat template stored in the model (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }

    /// The wrapped `tokenizers` tokenizer of a `tokenizer.json`, for what this type does
    /// not expose; `None` for a GGUF vocabulary, which this crate encodes itself.
    pub fn inner(&self) -> Option<&tokenizers::Tokenizer> {
        match &self.backend {
            Backend::Gguf(_) => None,
            Backend::Json(inner) => Some(inner),
        }
    }
}

// The derived Debug would print the whole vocabulary.
impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .field("stop_tokens", &self.stop_tokens)
            .field("chat_template", &self.chat_template.as_ref().map(|_| ".."))
            .finish()
    }
}
