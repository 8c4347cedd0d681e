//! SentencePiece-style merging (GGUF `tokenizer.ggml.model = "llama"`), as llama.cpp's
//! `llm_tokenizer_spm`: start from single characters, repeatedly merge the adjacent pair
//! whose concatenation is the vocabulary token with the highest score (leftmost on a tie),
//! then emit each piece as its token, or as `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::symbol::Symbol;
use super::vocab::Vocab;

/// A candidate merge of `left` and `right` symbols into a token of `score`.
#[derive(Debug)]
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

// Max-heap order: the highest score first, then the leftmost.
impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then_with(|| other.left.cmp(&self.left))
    }
}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}

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
    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left, right| {
        let (Some(left), Some(right)) = (left, right) else { return };
        let merged = Symbol::text_of_pair(text, symbols, left, right);
        if let Some(id) = vocab.id(merged) {
            queue.push(Bigram { left, right, score: vocab.score(id), len: merged.len() });
        }
    };
    for i in 1..symbols.len() {
        try_add(&mut queue, &symbols, Some(i - 1), Some(i));
    }
    while let Some(Bigram { left, right, len, .. }) = queue.pop() {
        // Skip a pair one of whose symbols has changed since it was queued.
        let (l, r) = (&symbols[left], &symbols[right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != len {
            continue;
        }
        Symbol::merge(&mut symbols, left, right);
        try_add(&mut queue, &symbols, symbols[left].prev, Some(left));
        try_add(&mut queue, &symbols, Some(left), symbols[left].next);
    }
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
