//! SentencePiece-style merging (GGUF `tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm`: start from single characters, repeatedly merge the adjacent pair
//! whose concatenation is the vocabulary token with the highest score (leftmost on a tie),
//! then emit each piece as its token, or as `<0xXX>` byte tokens.

use std::cmp::Ordering;

use super::symbol::{merge_pairs, Symbol};
use super::vocab::Vocab;

/// Encodes one fragment of text (spaces already written as `▁`), appending ids to `out`.
///
/// Every merge makes a vocabulary token, so each final piece is a token or a single
/// character without one; llama.cpp's split-back along the merges (`rev_merge`) never
/// applies, and such a character becomes its UTF-8 bytes' tokens. `byte_tokens[b]` is the
/// token of byte `b` (`<0xXX>`, or the byte itself); a byte without one is replaced by
/// `unknown`, or left out if there is none (llama.cpp fails there).
pub(crate) fn encode(
    vocab: &Vocab,
    byte_tokens: &[Option<u32>; 256],
    unknown: Option<u32>,
    text: &str,
    out: &mut Vec<u32>,
) {
    let mut symbols = Symbol::chars(text);
    if symbols.is_empty() {
        return;
    }
    // The highest score first: f32's total order, as llama.cpp compares scores.
    merge_pairs(&mut symbols, |symbols, left, right| {
        let id = vocab.id(Symbol::text_of_pair(text, symbols, left, right))?;
        Some(Score(vocab.score(id)))
    });
    for symbol in Symbol::chain(&symbols) {
        let piece = symbol.text(text);
        match vocab.id(piece) {
            Some(id) => out.push(id),
            None => {
                out.extend(piece.bytes().filter_map(|b| byte_tokens[usize::from(b)].or(unknown)))
            }
        }
    }
}

/// A token's score, ordered by `f32::total_cmp`.
#[derive(PartialEq)]
struct Score(f32);

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Eq for Score {}
