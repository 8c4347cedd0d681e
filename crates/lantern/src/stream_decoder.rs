//! [`StreamDecoder`]: token ids to text, one id at a time, never splitting a UTF-8 character.

use crate::{Error, Result, Tokenizer};

/// Incremental detokenizer: token ids to text, one id at a time, never splitting a UTF-8
/// character.
///
/// Byte-level BPE can put the bytes of one character (an emoji, a CJK ideograph) in two or
/// more tokens, and decoding a single token can change how the previous ones read. The
/// decoder keeps the few ids still needed and returns a piece only once it is complete
/// text. Concatenating every piece, then [`StreamDecoder::flush`], gives exactly
/// `tokenizer.decode(all_ids, skip_special)`.
///
/// It holds no reference to the [`Tokenizer`]: pass one to each call, so a session can keep
/// its decoder next to an `Arc` of the engine. The state is small (a few ids and the text
/// they decode to); the work per step is decoding that window, not the whole sequence.
/// The logic is `tokenizers`' `DecodeStream`, which borrows its tokenizer; this one stores
/// the same state (window of ids, text already returned) and takes the tokenizer per call.
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
    /// Ids still needed: those of the last returned piece (its context), then pending ones.
    ids: Vec<u32>,
    /// The text of `ids[..prefix_index]`, trimmed off the next decode.
    prefix: String,
    prefix_index: usize,
}

impl StreamDecoder {
    /// A decoder for a new sequence. With `skip_special`, special tokens produce no text,
    /// as in [`Tokenizer::decode`].
    pub fn new(skip_special: bool) -> Self {
        Self { skip_special, ..Self::default() }
    }

    /// Adds one generated id and returns the text it completes, if any.
    ///
    /// Returns `None` while the id ends inside a multi-byte character (or decodes to
    /// nothing, like a skipped special token); the text comes with a later id.
    ///
    /// # Errors
    /// [`Error::TokenOutOfRange`] for an id outside the vocabulary (the state is unchanged),
    /// [`Error::Tokenizer`] if decoding fails.
    pub fn step(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<Option<String>> {
        tokenizer.check_ids(&[id])?;
        tokenizers::step_decode_stream(
            tokenizer.inner(),
            vec![id],
            self.skip_special,
            &mut self.ids,
            &mut self.prefix,
            &mut self.prefix_index,
        )
        .map_err(|source| Error::Tokenizer { source })
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
        let text = tokenizer
            .inner()
            .decode(&self.ids, self.skip_special)
            .map_err(|source| Error::Tokenizer { source })?;
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
