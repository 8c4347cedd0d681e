//! Special tokens as llama.cpp handles them: which end generation, which are matched in
//! text, and the split of a text around them (`tokenizer_st_partition`).

use aho_corasick::AhoCorasick;

use super::vocab::{Attr, Vocab};
use crate::{Error, Result};

/// Texts llama.cpp treats as end of generation in any vocabulary that has them
/// (`llama-vocab.cpp`, "maintain a list of tokens that cause end-of-generation").
pub(crate) const END_OF_GENERATION: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Tokens llama.cpp always renders as text, whatever their type (gpt-oss's channel markers).
const ALWAYS_TEXT: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// The end-of-generation ids of a vocabulary, sorted, with the attribute changes llama.cpp
/// makes on the way (an end-of-generation text is made a control token).
///
/// `named` holds the ids the metadata names: EOS, `eot_token_id`, `eom_token_id`.
pub(crate) fn end_of_generation(vocab: &mut Vocab, named: &[Option<u32>]) -> Vec<u32> {
    let mut eog: Vec<u32> = Vec::new();
    for (id, text) in vocab.iter() {
        if END_OF_GENERATION.contains(&text) {
            eog.push(id);
        }
    }
    for &id in &eog {
        let attr = vocab.attr(id);
        vocab.set_attr(id, attr | Attr::CONTROL);
    }
    let always_text: Vec<u32> =
        vocab.iter().filter(|(_, t)| ALWAYS_TEXT.contains(t)).map(|(id, _)| id).collect();
    for id in always_text {
        vocab.set_attr(id, Attr::USER_DEFINED);
    }
    for id in control_unused(vocab) {
        let attr = vocab.attr(id);
        vocab.set_attr(id, attr | Attr::UNUSED);
    }
    eog.extend(named.iter().flatten());
    eog.sort_unstable();
    eog.dedup();

    // o200k_harmony and solar-open end a message with <|end|> but a turn with
    // <|return|>/<|call|> (<|calls|>/<|flush|>): there, <|end|> is not a stop.
    let has = |eog: &[u32], vocab: &Vocab, t: &str| eog.iter().any(|&id| vocab.text(id) == t);
    let call = has(&eog, vocab, "<|call|>") || has(&eog, vocab, "<|calls|>");
    if call && (has(&eog, vocab, "<|return|>") || has(&eog, vocab, "<|flush|>")) {
        remove_text(&mut eog, vocab, "<|end|>", Attr::USER_DEFINED);
    }
    // Gemma 4 (and PLaMo) have an ordinary `</s>`.
    if has(&eog, vocab, "<|tool_response>") || has(&eog, vocab, "<|plamo:eos|>") {
        remove_text(&mut eog, vocab, "</s>", Attr::NORMAL);
    }
    eog
}

/// Takes the token of `text` out of `eog`, giving it `attr`.
fn remove_text(eog: &mut Vec<u32>, vocab: &mut Vocab, text: &str, attr: Attr) {
    if let Some(i) = eog.iter().position(|&id| vocab.text(id) == text) {
        let id = eog.remove(i);
        vocab.set_attr(id, attr);
    }
}

/// Control tokens whose text says "unused" (`<unused12>`), which llama.cpp marks unused.
fn control_unused(vocab: &Vocab) -> Vec<u32> {
    vocab
        .iter()
        .filter(|&(id, t)| vocab.attr(id).has(Attr::CONTROL) && t.contains("unused"))
        .map(|(id, _)| id)
        .collect()
}

/// C's `isspace` in the "C" locale, which llama.cpp's strip uses (it includes `\x0b`).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A piece of the input: raw text (a byte range of it) or a special token found in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fragment {
    Text { start: usize, end: usize },
    Token(u32),
}

/// The special tokens matched in text: control, user-defined and unknown tokens, longest
/// first, as llama.cpp's `cache_special_tokens`.
#[derive(Clone, Debug)]
pub(crate) struct SpecialTokens {
    /// Ids, longest text first (ties in id order).
    ids: Vec<u32>,
    /// Finds which of `ids` occur in a text at all, so a vocabulary with thousands of them
    /// (Gemma's `<unusedN>`) does not scan the text once per token.
    finder: Option<AhoCorasick>,
}

impl SpecialTokens {
    /// # Errors
    /// [`Error::InvalidTokenizer`] if the matcher cannot be built (too many tokens).
    pub(crate) fn new(vocab: &Vocab) -> Result<Self> {
        let mask = Attr::CONTROL | Attr::USER_DEFINED | Attr::UNKNOWN;
        let mut ids: Vec<u32> =
            vocab.iter().filter(|&(id, _)| vocab.attr(id).has(mask)).map(|(id, _)| id).collect();
        // Stable: equal lengths keep id order.
        ids.sort_by_key(|&id| std::cmp::Reverse(vocab.text(id).len()));
        let finder = if ids.is_empty() {
            None
        } else {
            let patterns = ids.iter().map(|&id| vocab.text(id));
            Some(AhoCorasick::new(patterns).map_err(|e| Error::InvalidTokenizer {
                key: "tokenizer.ggml.token_type",
                reason: format!("cannot match the special tokens: {e}"),
            })?)
        };
        Ok(Self { ids, finder })
    }

    /// Phi-3's attributes, which llama.cpp sets by model name: every special token
    /// swallows the whitespace after it, except `<unk>`, `<s>` and `<|endoftext|>`.
    pub(crate) fn mark_rstrip_phi3(&self, vocab: &mut Vocab) {
        for &id in &self.ids {
            vocab.set_attr(id, vocab.attr(id) | Attr::RSTRIP);
        }
        if let Some(id) = vocab.id("</s>") {
            vocab.set_attr(id, vocab.attr(id) | Attr::RSTRIP);
        }
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(id) = vocab.id(text) {
                vocab.set_attr(id, Attr(vocab.attr(id).0 & !Attr::RSTRIP.0));
            }
        }
    }

    /// Splits `text` around the special tokens in it, as llama.cpp does: each token in
    /// turn, longest first, splits every text fragment at each of its occurrences, left to
    /// right. Control and unknown tokens are matched only with `parse_special`;
    /// user-defined ones always. A token with the lstrip (rstrip) attribute swallows the
    /// whitespace before (after) it.
    pub(crate) fn partition(
        &self,
        vocab: &Vocab,
        text: &str,
        parse_special: bool,
    ) -> Vec<Fragment> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text { start: 0, end: text.len() });
        let Some(finder) = &self.finder else { return fragments };
        let mut present = vec![false; self.ids.len()];
        for m in finder.find_overlapping_iter(text) {
            present[m.pattern().as_usize()] = true;
        }
        let bytes = text.as_bytes();
        for (&id, _) in self.ids.iter().zip(&present).filter(|(_, &p)| p) {
            let attr = vocab.attr(id);
            if !parse_special && attr.has(Attr::CONTROL | Attr::UNKNOWN) {
                continue;
            }
            let needle = vocab.text(id);
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text { mut start, end } = fragment else {
                    next.push(fragment);
                    continue;
                };
                while let Some(at) = text[start..end].find(needle).map(|i| start + i) {
                    let mut left_end = at;
                    if attr.has(Attr::LSTRIP) {
                        while left_end > start && is_c_space(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        next.push(Fragment::Text { start, end: left_end });
                    }
                    next.push(Fragment::Token(id));
                    start = at + needle.len();
                    if attr.has(Attr::RSTRIP) {
                        while start < end && is_c_space(bytes[start]) {
                            start += 1;
                        }
                    }
                }
                if start < end {
                    next.push(Fragment::Text { start, end });
                }
            }
            fragments = next;
        }
        fragments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        let texts = ["a", "<s>", "<|end|>", "<x>", "<x><x>"];
        let attrs = [Attr::NORMAL, Attr::CONTROL, Attr::CONTROL, Attr::USER_DEFINED, Attr::CONTROL];
        Vocab::from_parts(&texts, &[0.0; 5], &attrs)
    }

    #[test]
    fn longest_first_and_parse_special() {
        let v = vocab();
        let s = SpecialTokens::new(&v).unwrap();
        let text = "a<x><x><x>a<s>";
        let frags = s.partition(&v, text, true);
        use Fragment::*;
        assert_eq!(
            frags,
            [Text { start: 0, end: 1 }, Token(4), Token(3), Text { start: 10, end: 11 }, Token(1)]
        );
        // Without parse_special, only the user-defined token splits.
        let frags = s.partition(&v, text, false);
        assert_eq!(
            frags,
            [Text { start: 0, end: 1 }, Token(3), Token(3), Token(3), Text { start: 10, end: 14 }]
        );
    }

    #[test]
    fn rstrip_swallows_following_whitespace() {
        let mut v = vocab();
        v.set_attr(2, Attr::CONTROL | Attr::RSTRIP);
        let s = SpecialTokens::new(&v).unwrap();
        let frags = s.partition(&v, "a<|end|> \n a", true);
        assert_eq!(
            frags,
            [
                Fragment::Text { start: 0, end: 1 },
                Fragment::Token(2),
                Fragment::Text { start: 11, end: 12 }
            ]
        );
    }

    #[test]
    fn eog_from_text_and_metadata() {
        let mut v = vocab();
        let eog = end_of_generation(&mut v, &[Some(0), None]);
        assert_eq!(eog, [0, 2]);
        assert!(v.attr(2).has(Attr::CONTROL));
    }
}
