//! Token ids back to text, as llama.cpp's `llama_vocab::impl::detokenize`.

use super::gguf::GgufTokenizer;

impl GgufTokenizer {
    /// The bytes of `ids`: with `remove_special`, a leading BOS and a trailing EOS the model
    /// adds are dropped; with `unparse_special`, control tokens give their text. A
    /// SentencePiece text loses the space its encoding put first (unless a BOS was
    /// dropped before it, as in llama.cpp), and vocabularies that clean up spaces
    /// (`clean_up_tokenization_spaces`) do so. `ids` must be in range.
    pub(crate) fn detokenize(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos && self.bos.is_some() && ids.first() == self.bos.as_ref()
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special && self.add_eos && self.eos.is_some() && ids.last() == self.eos.as_ref() {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let start = out.len();
            self.piece(id, unparse_special, &mut out);
            if i == 0 && remove_space && out.get(start) == Some(&b' ') {
                out.remove(start);
            }
        }
        if self.clean_spaces {
            out = clean_spaces(&out);
        }
        out
    }
}

/// llama.cpp's three clean-up passes: no space before `?!.,`; `a ' b` becomes `a'b`; no
/// space before `'s`, `'m`, `'re`, `'ve`.
fn clean_spaces(text: &[u8]) -> Vec<u8> {
    let text = no_space_before_punctuation(text);
    let text = lone_apostrophes(&text);
    contractions(&text)
}

fn no_space_before_punctuation(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    out.extend(text.first());
    for i in 1..text.len() {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(x);
    }
    out
}

fn lone_apostrophes(text: &[u8]) -> Vec<u8> {
    // Works on a copy: llama.cpp blanks the space it drops after the apostrophe, which the
    // next step then reads.
    let mut text = text.to_vec();
    let mut out = Vec::with_capacity(text.len());
    out.extend(text.first());
    let mut i = 1;
    while i < text.len() {
        let x = text[i];
        if x == b'\'' && i + 1 < text.len() && text[i - 1] == b' ' && text[i + 1] == b' ' {
            out.pop();
            i += 1;
            text[i] = 0;
        }
        out.push(x);
        i += 1;
    }
    out
}

fn contractions(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    out.extend(text.first());
    for i in 1..text.len() {
        let x = text[i];
        if text[i - 1] == b' ' && x == b'\'' && i + 1 < text.len() {
            let x1 = text[i + 1];
            let x2 = text.get(i + 2).copied();
            let drop_space =
                matches!(x1, b's' | b'm') || matches!((x1, x2), (b'r' | b'v', Some(b'e')));
            if drop_space {
                out.pop();
            }
        }
        out.push(x);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_up_as_llama_cpp() {
        let clean = |s: &str| String::from_utf8(clean_spaces(s.as_bytes())).unwrap();
        assert_eq!(clean("Hello , world ! it 's a ' b we 're"), "Hello, world! it's a'b we're");
        assert_eq!(clean("don 't"), "don 't");
        assert_eq!(clean(""), "");
    }
}
