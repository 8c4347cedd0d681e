//! [`Vocab`]: a GGUF vocabulary's tokens, scores and attributes, and the lookup from text to
//! id, as llama.cpp reads them (`llama_vocab::impl::load`).

use std::collections::HashMap;

use lantern_io::Metadata;

use crate::{Error, Result};

/// Token attributes, llama.cpp's `llama_token_attr` bits. GGUF stores a token *type* per
/// token (`tokenizer.ggml.token_type`); [`Attr::from_type`] maps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Attr(pub(crate) u16);

impl Attr {
    pub(crate) const UNKNOWN: Attr = Attr(1 << 0);
    pub(crate) const UNUSED: Attr = Attr(1 << 1);
    pub(crate) const NORMAL: Attr = Attr(1 << 2);
    pub(crate) const CONTROL: Attr = Attr(1 << 3);
    pub(crate) const USER_DEFINED: Attr = Attr(1 << 4);
    pub(crate) const BYTE: Attr = Attr(1 << 5);
    pub(crate) const LSTRIP: Attr = Attr(1 << 7);
    pub(crate) const RSTRIP: Attr = Attr(1 << 8);

    /// The attribute of a GGUF token type: normal 1, unknown 2, control 3, user-defined 4,
    /// unused 5, byte 6; anything else is undefined (no bit), which decodes to nothing.
    pub(crate) fn from_type(ty: i32) -> Attr {
        match ty {
            1 => Attr::NORMAL,
            2 => Attr::UNKNOWN,
            3 => Attr::CONTROL,
            4 => Attr::USER_DEFINED,
            5 => Attr::UNUSED,
            6 => Attr::BYTE,
            _ => Attr(0),
        }
    }

    /// Whether any bit of `other` is set.
    pub(crate) fn has(self, other: Attr) -> bool {
        self.0 & other.0 != 0
    }

    pub(crate) fn with(self, other: Attr) -> Attr {
        Attr(self.0 | other.0)
    }
}

impl std::ops::BitOr for Attr {
    type Output = Attr;
    fn bitor(self, rhs: Attr) -> Attr {
        self.with(rhs)
    }
}

/// The tokens of a GGUF vocabulary. Ids are indices (`u32`, checked at load).
#[derive(Clone, Debug)]
pub(crate) struct Vocab {
    texts: Vec<Box<str>>,
    scores: Vec<f32>,
    attrs: Vec<Attr>,
    /// Text to id; when two ids share a text, the later one, as in llama.cpp.
    ids: HashMap<Box<str>, u32>,
}

impl Vocab {
    /// Reads `tokenizer.ggml.tokens`, `scores` (f32 or i32, optional) and `token_type`
    /// (optional: every token normal).
    ///
    /// # Errors
    /// [`Error::Io`] for a missing or mistyped key, [`Error::InvalidTokenizer`] for an empty
    /// vocabulary, one past `u32`, or score and type arrays shorter than it.
    pub(crate) fn from_metadata(metadata: &Metadata) -> Result<Self> {
        let tokens = metadata.strings("tokenizer.ggml.tokens")?;
        let n = tokens.len();
        if n == 0 || u32::try_from(n).is_err() {
            return Err(Error::InvalidTokenizer {
                key: "tokenizer.ggml.tokens",
                reason: format!("{n} tokens"),
            });
        }
        let scores = match metadata.get("tokenizer.ggml.scores") {
            None => vec![0.0; n],
            Some(_) => match metadata.f32s("tokenizer.ggml.scores") {
                Ok(scores) => scores,
                Err(_) => {
                    metadata.i32s("tokenizer.ggml.scores")?.into_iter().map(|s| s as f32).collect()
                }
            },
        };
        if scores.len() < n {
            return Err(short("tokenizer.ggml.scores", scores.len(), n));
        }
        let attrs: Vec<Attr> = match metadata.get("tokenizer.ggml.token_type") {
            None => vec![Attr::NORMAL; n],
            Some(_) => {
                let types = metadata.i32s("tokenizer.ggml.token_type")?;
                if types.len() != n {
                    return Err(Error::InvalidTokenizer {
                        key: "tokenizer.ggml.token_type",
                        reason: format!("{} entries for {n} tokens", types.len()),
                    });
                }
                types.into_iter().map(Attr::from_type).collect()
            }
        };
        let mut texts = Vec::with_capacity(n);
        let mut ids = HashMap::with_capacity(n);
        for (id, &text) in tokens.iter().enumerate() {
            // llama.cpp names an empty token so that it cannot match any text.
            let text: Box<str> =
                if text.is_empty() { format!("[EMPTY_{id}]").into() } else { text.into() };
            // Ids fit in u32: checked above.
            ids.insert(text.clone(), id as u32);
            texts.push(text);
        }
        Ok(Self { texts, scores: scores[..n].to_vec(), attrs, ids })
    }

    /// Builds a vocabulary from parts, for unit tests.
    #[cfg(test)]
    pub(crate) fn from_parts(texts: &[&str], scores: &[f32], attrs: &[Attr]) -> Self {
        let ids = texts.iter().enumerate().map(|(i, t)| (Box::from(*t), i as u32)).collect();
        Self {
            texts: texts.iter().map(|t| Box::from(*t)).collect(),
            scores: scores.to_vec(),
            attrs: attrs.to_vec(),
            ids,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }

    /// The id of a token's exact text.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// A token's text as stored. Panics on an id out of range: callers check ids first.
    pub(crate) fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    pub(crate) fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }

    pub(crate) fn attr(&self, id: u32) -> Attr {
        self.attrs[id as usize]
    }

    pub(crate) fn set_attr(&mut self, id: u32, attr: Attr) {
        self.attrs[id as usize] = attr;
    }

    /// Every id with its text.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        self.texts.iter().enumerate().map(|(id, t)| (id as u32, &**t))
    }

    /// The byte a `<0xXX>` token stands for.
    pub(crate) fn byte_value(&self, id: u32) -> Option<u8> {
        let hex = self.text(id).strip_prefix("<0x")?.strip_suffix('>')?;
        u8::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 2)
    }
}

fn short(key: &'static str, len: usize, n: usize) -> Error {
    Error::InvalidTokenizer { key, reason: format!("{len} entries for {n} tokens") }
}
