//! [`GgufTokenizer`]: a tokenizer built from GGUF `tokenizer.*` metadata that encodes as
//! llama.cpp's `llama_vocab::impl::tokenize` does.

use lantern_io::Metadata;

use super::bpe::{Merges, WordMerger};
use super::pre_split::{byte_chars, char_bytes, PreSplit};
use super::special::{end_of_generation, Fragment, SpecialTokens};
use super::spm;
use super::vocab::{Attr, Vocab};
use crate::{Error, Result};

/// `▁` (U+2581), which SentencePiece vocabularies write for a space.
pub(crate) const SPACE_MARK: &str = "\u{2581}";

/// How text fragments become ids.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// SentencePiece merges by score (`llama`).
    Spm,
    /// BPE merges by rank after a pre-tokenizer split (`gpt2`, `gemma4`).
    Bpe { merges: Merges, split: PreSplit },
}

/// A GGUF vocabulary and everything llama.cpp derives from its metadata.
#[derive(Clone, Debug)]
pub(crate) struct GgufTokenizer {
    pub(crate) vocab: Vocab,
    pub(crate) kind: Kind,
    special: SpecialTokens,
    /// The token of each byte when a piece has no token of its own.
    byte_tokens: [Option<u32>; 256],
    /// GPT-2's byte characters (byte-level BPE only), and the way back.
    byte_chars: [char; 256],
    char_bytes: Vec<Option<u8>>,
    pub(crate) unknown: Option<u32>,
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    /// SentencePiece: a space before the first text fragment and after special tokens.
    pub(crate) add_space_prefix: bool,
    pub(crate) clean_spaces: bool,
    /// End-of-generation ids, sorted.
    pub(crate) eog: Vec<u32>,
}

impl GgufTokenizer {
    /// Reads the tokenizer from `metadata`, with llama.cpp's defaults per kind.
    ///
    /// # Errors
    /// See [`crate::Tokenizer::from_gguf`].
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Self> {
        let model = metadata.str("tokenizer.ggml.model")?;
        let pre = metadata.opt_str("tokenizer.ggml.pre")?;
        let unsupported = |key: &'static str, value: &str| Error::UnsupportedTokenizer {
            key,
            value: value.to_owned(),
        };
        if !matches!(model, "llama" | "gpt2" | "gemma4") {
            return Err(unsupported("tokenizer.ggml.model", model));
        }
        let mut vocab = Vocab::from_metadata(metadata)?;
        // llama.cpp's default special ids per kind, replaced by the metadata's.
        let (kind, default_bos, default_eos, default_unk) = match model {
            "llama" => (Kind::Spm, Some(1), Some(2), Some(0)),
            "gpt2" | "gemma4" => {
                let name = match (model, pre) {
                    ("gemma4", _) => "gemma4",
                    (_, Some(pre)) => pre,
                    (_, None) => {
                        tracing::warn!(
                            "no tokenizer.ggml.pre in the model, using llama.cpp's default split"
                        );
                        "default"
                    }
                };
                let split = PreSplit::by_name(name)?
                    .ok_or_else(|| unsupported("tokenizer.ggml.pre", name))?;
                let merges = Merges::new(&metadata.strings("tokenizer.ggml.merges")?)?;
                let kind = Kind::Bpe { merges, split };
                if model == "gemma4" {
                    (kind, None, None, None)
                } else {
                    (kind, Some(11), Some(11), None)
                }
            }
            other => return Err(unsupported("tokenizer.ggml.model", other)),
        };
        let n = vocab.len();
        let in_vocab = |id: Option<u32>| id.filter(|&id| (id as usize) < n);
        let special_id = |key: &'static str, default: Option<u32>| -> Result<Option<u32>> {
            match metadata.opt_u32(key)? {
                Some(id) if id as usize >= n => Err(Error::InvalidTokenizer {
                    key,
                    reason: format!("id {id} is past the vocabulary of {n} tokens"),
                }),
                Some(id) => Ok(Some(id)),
                None => Ok(in_vocab(default)),
            }
        };
        let bos = special_id("tokenizer.ggml.bos_token_id", default_bos)?;
        let eos = special_id("tokenizer.ggml.eos_token_id", default_eos)?;
        let unknown = special_id("tokenizer.ggml.unknown_token_id", default_unk)?;
        let eot = special_id("tokenizer.ggml.eot_token_id", None)?;
        let eom = special_id("tokenizer.ggml.eom_token_id", None)?;

        let (kind_add_bos, add_space_prefix, clean_spaces) = match &kind {
            Kind::Spm => (true, true, false),
            Kind::Bpe { split, .. } => (split.add_bos, false, split.clean_spaces),
        };
        let add_space_prefix =
            metadata.opt_bool("tokenizer.ggml.add_space_prefix")?.unwrap_or(add_space_prefix);
        let mut add_bos =
            metadata.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(kind_add_bos);
        if matches!(&kind, Kind::Bpe { split, .. } if split.whole_newlines) {
            // llama.cpp adds BOS for Gemma 4 whatever the metadata says.
            add_bos = true;
        }
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

        let eog = end_of_generation(&mut vocab, &[eos, eot, eom]);
        // Phi-3's special tokens swallow the whitespace after them (llama.cpp sets this by
        // model name, as GGUF does not store it).
        let name = metadata.opt_str("general.name")?.unwrap_or("").to_lowercase();
        let special = SpecialTokens::new(&vocab)?;
        if name.contains("phi-3") || name.contains("phi3") {
            special.mark_rstrip_phi3(&mut vocab);
        }

        let byte_chars = byte_chars();
        let byte_tokens = std::array::from_fn(|b| {
            let hex = format!("<0x{b:02X}>");
            match &kind {
                Kind::Bpe { split, .. } if split.byte_encode => {
                    // A piece's single byte, looked up as text: only ASCII can match.
                    u8::try_from(b)
                        .ok()
                        .filter(u8::is_ascii)
                        .and_then(|b| vocab.id(char::from(b).encode_utf8(&mut [0; 4])))
                }
                Kind::Bpe { .. } => vocab.id(&hex),
                Kind::Spm => vocab.id(&hex).or_else(|| {
                    u8::try_from(b)
                        .ok()
                        .filter(u8::is_ascii)
                        .and_then(|b| vocab.id(char::from(b).encode_utf8(&mut [0; 4])))
                }),
            }
        });
        Ok(Self {
            vocab,
            kind,
            special,
            byte_tokens,
            byte_chars,
            char_bytes: char_bytes(&byte_chars),
            unknown,
            bos,
            eos,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            eog,
        })
    }

    /// Encodes as llama.cpp's `llama_tokenize(text, add_special, parse_special)`.
    ///
    /// # Errors
    /// [`Error::TextSplit`] if the pre-tokenizer's pattern gives up on the text.
    pub(crate) fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let fragments = self.special.partition(&self.vocab, text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.kind {
            Kind::Spm => self.encode_spm(text, &fragments, &mut out),
            Kind::Bpe { merges, split } => {
                self.encode_bpe(text, &fragments, merges, split, &mut out)?
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    fn encode_spm(&self, text: &str, fragments: &[Fragment], out: &mut Vec<u32>) {
        // A space goes before the first fragment and after each special token.
        let mut after_special = true;
        let mut buffer = String::new();
        for fragment in fragments {
            match *fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    after_special = true;
                }
                Fragment::Text { start, end } => {
                    buffer.clear();
                    if self.add_space_prefix && after_special {
                        buffer.push_str(SPACE_MARK);
                    }
                    push_escaped(&mut buffer, &text[start..end]);
                    spm::encode(&self.vocab, &self.byte_tokens, self.unknown, &buffer, out);
                    after_special = false;
                }
            }
        }
    }

    fn encode_bpe(
        &self,
        text: &str,
        fragments: &[Fragment],
        merges: &Merges,
        split: &PreSplit,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        let merger = WordMerger {
            vocab: &self.vocab,
            merges,
            ignore_merges: split.ignore_merges,
            whole_newlines: split.whole_newlines,
            byte_tokens: &self.byte_tokens,
        };
        let mut escaped = String::new();
        let mut words = Vec::new();
        let mut word = String::new();
        for fragment in fragments {
            let (start, end) = match *fragment {
                Fragment::Token(id) => {
                    out.push(id);
                    continue;
                }
                Fragment::Text { start, end } => (start, end),
            };
            let piece = if split.escape_whitespaces {
                escaped.clear();
                push_escaped(&mut escaped, &text[start..end]);
                escaped.as_str()
            } else {
                &text[start..end]
            };
            split.split(piece, &mut words)?;
            for &(s, e) in &words {
                let raw = &piece[s..e];
                let word = if split.byte_encode {
                    word.clear();
                    word.extend(raw.bytes().map(|b| self.byte_chars[usize::from(b)]));
                    word.as_str()
                } else {
                    raw
                };
                merger.encode(word, out);
            }
        }
        Ok(())
    }

    /// The bytes of one token, as llama.cpp's `token_to_piece(id, lstrip = 0, special)`:
    /// control and unknown tokens give their text only with `special`; user-defined ones
    /// always; byte tokens their byte; normal tokens their text with `▁` as a space
    /// (SentencePiece) or mapped back from GPT-2's byte characters (byte-level BPE); other
    /// types nothing. `id` must be in range.
    pub(crate) fn piece(&self, id: u32, special: bool, out: &mut Vec<u8>) {
        let attr = self.vocab.attr(id);
        if !special && attr.has(Attr::UNKNOWN | Attr::CONTROL) {
            return;
        }
        let text = self.vocab.text(id);
        if attr.has(Attr::UNKNOWN | Attr::CONTROL | Attr::USER_DEFINED) {
            out.extend_from_slice(text.as_bytes());
        } else if attr.has(Attr::NORMAL) {
            match &self.kind {
                Kind::Bpe { split, .. } if split.byte_encode => self.unmap_bytes(text, out),
                _ => push_unescaped(out, text),
            }
        } else if attr.has(Attr::BYTE) {
            out.extend(self.vocab.byte_value(id));
        }
    }

    /// GPT-2 byte characters back to bytes; a character outside the map is written as
    /// llama.cpp does, `[UNK_BYTE_0x..]`.
    fn unmap_bytes(&self, text: &str, out: &mut Vec<u8>) {
        for c in text.chars() {
            match self.char_bytes.get(c as usize).copied().flatten() {
                Some(b) => out.push(b),
                None => {
                    let mut utf8 = [0; 4];
                    let hex: String =
                        c.encode_utf8(&mut utf8).bytes().map(|b| format!("{b:02x}")).collect();
                    out.extend_from_slice(format!("[UNK_BYTE_0x{hex}{text}]").as_bytes());
                }
            }
        }
    }
}

/// Appends `text` with each space written as `▁`.
fn push_escaped(out: &mut String, text: &str) {
    for (i, part) in text.split(' ').enumerate() {
        if i > 0 {
            out.push_str(SPACE_MARK);
        }
        out.push_str(part);
    }
}

/// Appends `text` with each `▁` written as a space.
fn push_unescaped(out: &mut Vec<u8>, text: &str) {
    for (i, part) in text.split(SPACE_MARK).enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(part.as_bytes());
    }
}
