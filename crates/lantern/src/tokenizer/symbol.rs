//! [`Symbol`]: a piece of text in a doubly linked list, which the merge loops of both
//! tokenizer kinds join pair by pair (llama.cpp's `llm_symbol`).

/// A byte range of the text being merged, linked to its neighbours. A symbol merged into
/// its left neighbour keeps `len == 0` and is unlinked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Symbol {
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) prev: Option<usize>,
    pub(crate) next: Option<usize>,
}

impl Symbol {
    /// One symbol per character of `text`.
    pub(crate) fn chars(text: &str) -> Vec<Symbol> {
        let n = text.chars().count();
        text.char_indices()
            .enumerate()
            .map(|(i, (start, c))| Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: (i + 1 < n).then_some(i + 1),
            })
            .collect()
    }

    pub(crate) fn text<'t>(&self, text: &'t str) -> &'t str {
        &text[self.start..self.start + self.len]
    }

    /// The text of `left` followed by `right` (adjacent in the list, so contiguous).
    pub(crate) fn text_of_pair<'t>(
        text: &'t str,
        symbols: &[Symbol],
        left: usize,
        right: usize,
    ) -> &'t str {
        let start = symbols[left].start;
        &text[start..start + symbols[left].len + symbols[right].len]
    }

    /// Joins `right` into `left`, its left neighbour.
    pub(crate) fn merge(symbols: &mut [Symbol], left: usize, right: usize) {
        symbols[left].len += symbols[right].len;
        symbols[right].len = 0;
        symbols[left].next = symbols[right].next;
        if let Some(next) = symbols[right].next {
            symbols[next].prev = Some(left);
        }
    }

    /// The symbols still linked, from the first.
    pub(crate) fn chain(symbols: &[Symbol]) -> impl Iterator<Item = &Symbol> + '_ {
        let mut at = (!symbols.is_empty()).then_some(0);
        std::iter::from_fn(move || {
            let symbol = &symbols[at?];
            at = symbol.next;
            Some(symbol)
        })
    }
}
