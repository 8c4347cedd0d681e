//! [`StreamDecoder`]: token ids to text, one id at a time, never splitting a UTF-8 character.

use crate::tokenizer::Backend;
use crate::{Error, Result, Tokenizer};

/// Incremental detokenizer: token ids to text, one id at a time, never splitting a UTF-8
/// character.
///
/// Byte-level BPE can put the bytes of one character (an emoji, a CJK ideograph) in two or
/// more tokens (SentencePiece too, through `<0xXX>` byte tokens). The decoder keeps the
/// bytes (or, for a `tokenizer.json`, the ids) still needed and returns a piece only once
/// it is complete text.
///
/// For a GGUF vocabulary, the pieces are llama.cpp's `token_to_piece` for each id, as
/// llama.cpp prints generated text. Concatenating every piece, then
/// [`StreamDecoder::flush`], gives `tokenizer.decode(all_ids, skip_special)` except for
/// what decoding does to the whole text: a SentencePiece text's first space, which decode
/// drops, a BOS or EOS that `skip_special` drops, and the space clean-up of GPT-2-style
/// vocabularies. For a `tokenizer.json`, it gives exactly the decode.
///
/// It holds no reference to the [`Tokenizer`]: pass one to each call, so a session can keep
/// its decoder next to an `Arc` of the engine. The state is small (at most three bytes, or
/// a few ids and the text they decode to); the work per step is that window, not the
/// whole sequence. For a `tokenizer.json` the logic is `tokenizers`' `DecodeStream`, which
/// borrows its tokenizer; this one stores the same state and takes the tokenizer per call.
///
/// # Example
///
/// Decoding token by token with [`Tokenizer::decode`] would split `"é"` into two U+FFFD
/// when its bytes land in two tokens; the stream decoder waits for the second one:
///
/// ```no_run
/// # fn main() -> lantern::Result<()> {
/// use lantern::{StreamDecoder, Tokenizer};
/// let tokenizer = Tokenizer::from_file("tokenizer.json")?;
/// let mut stream = StreamDecoder::new(true);
/// let mut text = String::new();
/// for id in tokenizer.encode("Café 日本 🦀", false)? {
///     if let Some(piece) = stream.step(&tokenizer, id)? {
///         assert!(!piece.contains('\u{FFFD}'));
///         text.push_str(&piece);
///     }
/// }
/// text.extend(stream.flush(&tokenizer)?);
/// assert_eq!(text, "Café 日本 🦀");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    skip_special: bool,
    /// GGUF vocabularies: bytes of the last pieces that do not yet end a character.
    pending: Vec<u8>,
    /// `tokenizer.json`: ids still needed, those of the last returned piece (its context)
    /// then pending ones.
    ids: Vec<u32>,
    /// The text of `ids[..prefix_index]`, trimmed off the next decode.
    prefix: String,
    prefix_index: usize,
}

impl StreamDecoder {
    /// A decoder for a new sequence. With `skip_special`, control tokens produce no text,
    /// as in [`Tokenizer::decode`].
    pub fn new(skip_special: bool) -> Self {
        Self { skip_special, ..Self::default() }
    }

    /// Adds one generated id and returns the text it completes, if any.
    ///
    /// Returns `None` while the id ends inside a multi-byte character (or decodes to
    /// nothing, like a skipped control token); the text comes with a later id.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for an id outside the vocabulary (the state is unchanged),
    /// [`Error::Tokenizer`] if decoding fails.
    pub fn step(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<Option<String>> {
        tokenizer.check_ids(&[id])?;
        match tokenizer.backend() {
            Backend::Gguf(gguf) => {
                gguf.piece(id, !self.skip_special, &mut self.pending);
                Ok(self.take_complete())
            }
            Backend::Json(inner) => tokenizers::step_decode_stream(
                inner,
                vec![id],
                self.skip_special,
                &mut self.ids,
                &mut self.prefix,
                &mut self.prefix_index,
            )
            .map_err(|source| Error::Tokenizer { source }),
        }
    }

    /// The pending bytes up to the last whole character, invalid sequences as U+FFFD (as
    /// `String::from_utf8_lossy` would write them); a character still incomplete at the
    /// end stays pending.
    fn take_complete(&mut self) -> Option<String> {
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // Valid by the error's own account.
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let consumed = self.pending.len() - rest.len();
        self.pending.drain(..consumed);
        (!text.is_empty()).then_some(text)
    }

    /// Returns the text of the pending ids, if any, and starts a new sequence.
    ///
    /// Call it when generation stops: a sequence that ends inside a character (the model
    /// emitted an incomplete byte sequence) yields that text with U+FFFD in place of the
    /// missing bytes, instead of losing it.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] if decoding fails.
    pub fn flush(&mut self, tokenizer: &Tokenizer) -> Result<Option<String>> {
        let text = match tokenizer.backend() {
            Backend::Gguf(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.reset();
                return Ok((!text.is_empty()).then_some(text));
            }
            Backend::Json(inner) => inner
                .decode(&self.ids, self.skip_special)
                .map_err(|source| Error::Tokenizer { source })?,
        };
        let prefix = std::mem::take(&mut self.prefix);
        self.reset();
        Ok(match text.strip_prefix(prefix.as_str()) {
            Some(rest) if !rest.is_empty() => Some(rest.to_owned()),
            _ => None,
        })
    }

    /// Forgets all state, keeping the `skip_special` setting.
    pub fn reset(&mut self) {
        *self = Self::new(self.skip_special);
    }
}
