//! Byte-level BPE merging (GGUF `tokenizer.ggml.model = "gpt2"`, and Gemma 4's `gemma4`),
//! as llama.cpp's `llm_tokenizer_bpe_session`: start from the characters of a word,
//! repeatedly merge the adjacent pair with the lowest rank in `tokenizer.ggml.merges`
//! (leftmost on a tie), then emit each piece as its token or, failing that, as byte tokens.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::symbol::{merge_pairs, Symbol};
use super::vocab::Vocab;
use crate::{Error, Result};

/// The merge ranks: `"left right"` (as GGUF stores it) to the rank and the length of
/// `left`, so that a left part holding a space is not confused with another split.
#[derive(Clone, Debug, Default)]
pub(crate) struct Merges {
    ranks: HashMap<Box<str>, (u32, u32)>,
}

impl Merges {
    /// Reads `tokenizer.ggml.merges` entries. A pair listed twice keeps its first rank.
    ///
    /// # Errors
    /// [`Error::InvalidTokenizer`] for an entry that is not two parts separated by a space.
    pub(crate) fn new(merges: &[&str]) -> Result<Self> {
        let mut ranks = HashMap::with_capacity(merges.len());
        for (rank, &merge) in merges.iter().enumerate() {
            // Split at the first space after the first character, as llama.cpp does.
            let first = merge.chars().next().map_or(0, char::len_utf8);
            let space = merge[first..].find(' ').map(|i| first + i);
            let (Some(space), Ok(rank)) = (space, u32::try_from(rank)) else {
                return Err(Error::InvalidTokenizer {
                    key: "tokenizer.ggml.merges",
                    reason: format!(
                        "merge {rank} ({merge:?}) is not two tokens separated by a space"
                    ),
                });
            };
            // `space` < merge.len() <= u32::MAX: GGUF strings are shorter.
            ranks.entry(Box::from(merge)).or_insert((rank, space as u32));
        }
        Ok(Self { ranks })
    }

    fn rank(&self, key: &mut String, left: &str, right: &str) -> Option<u32> {
        key.clear();
        key.push_str(left);
        key.push(' ');
        key.push_str(right);
        match self.ranks.get(key.as_str()) {
            Some(&(rank, left_len)) if left_len as usize == left.len() => Some(rank),
            _ => None,
        }
    }
}

/// How one word is merged.
pub(crate) struct WordMerger<'v> {
    pub(crate) vocab: &'v Vocab,
    pub(crate) merges: &'v Merges,
    /// A word that is a token is taken whole (Llama 3's `ignore_merges`).
    pub(crate) ignore_merges: bool,
    /// A word of newlines only is taken whole when it is a token (Gemma 4).
    pub(crate) whole_newlines: bool,
    /// The token of each byte, for pieces that are not tokens (bytes without one are
    /// left out, as in llama.cpp).
    pub(crate) byte_tokens: &'v [Option<u32>; 256],
}

impl WordMerger<'_> {
    /// Merges `word` (already in the vocabulary's byte form) and appends its ids to `out`.
    pub(crate) fn encode(&self, word: &str, out: &mut Vec<u32>) {
        if (self.ignore_merges || (self.whole_newlines && word.bytes().all(|b| b == b'\n')))
            && !word.is_empty()
        {
            if let Some(id) = self.vocab.id(word) {
                out.push(id);
                return;
            }
        }
        let mut symbols = Symbol::chars(word);
        let mut key = String::new();
        // The lowest rank first.
        merge_pairs(&mut symbols, |symbols, left, right| {
            let (l, r) = (&symbols[left], &symbols[right]);
            self.merges.rank(&mut key, l.text(word), r.text(word)).map(Reverse)
        });
        for symbol in Symbol::chain(&symbols) {
            let piece = symbol.text(word);
            match self.vocab.id(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_tokens[usize::from(b)])),
            }
        }
    }
}
