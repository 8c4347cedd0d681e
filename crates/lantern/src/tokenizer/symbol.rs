//! [`Symbol`]: a piece of text in a doubly linked list, and [`merge_pairs`], the merge loop
//! both tokenizer kinds run over it (llama.cpp's `llm_symbol` and its bigram queue).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

/// A candidate merge of adjacent symbols `left` and `right`, of `len` bytes together when
/// queued. Max-heap order: the highest `priority` first, then the leftmost.
struct Bigram<P> {
    left: usize,
    right: usize,
    len: usize,
    priority: P,
}

impl<P: Ord> Ord for Bigram<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority.cmp(&other.priority).then_with(|| other.left.cmp(&self.left))
    }
}
impl<P: Ord> PartialOrd for Bigram<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<P: Ord> PartialEq for Bigram<P> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<P: Ord> Eq for Bigram<P> {}

/// Merges adjacent symbols pair by pair until no pair may merge: `priority(symbols, left,
/// right)` says whether a pair may (`Some`) and how early; the best pair is merged first,
/// the leftmost on a tie, and its new neighbours are offered in turn.
pub(crate) fn merge_pairs<P: Ord>(
    symbols: &mut [Symbol],
    mut priority: impl FnMut(&[Symbol], usize, usize) -> Option<P>,
) {
    let mut queue = BinaryHeap::new();
    let mut offer = |queue: &mut BinaryHeap<Bigram<P>>, symbols: &[Symbol], left, right| {
        let (Some(left), Some(right)) = (left, right) else { return };
        if let Some(priority) = priority(symbols, left, right) {
            let len = symbols[left].len + symbols[right].len;
            queue.push(Bigram { left, right, len, priority });
        }
    };
    for i in 1..symbols.len() {
        offer(&mut queue, symbols, Some(i - 1), Some(i));
    }
    while let Some(Bigram { left, right, len, .. }) = queue.pop() {
        // Skip a pair one of whose symbols has changed since it was queued.
        let (l, r) = (&symbols[left], &symbols[right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != len {
            continue;
        }
        Symbol::merge(symbols, left, right);
        offer(&mut queue, symbols, symbols[left].prev, Some(left));
        offer(&mut queue, symbols, Some(left), symbols[left].next);
    }
}
