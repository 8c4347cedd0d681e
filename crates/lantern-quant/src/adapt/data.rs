//! The training sequences: a token stream cut into non-overlapping chunks of `seq_len + 1`
//! tokens (each chunk's last token is only a target), taken in an order shuffled afresh each
//! epoch. The order is a function of the seed and the epoch alone, so the sequences of any
//! step follow from its number: a resumed run needs no generator state to continue exactly.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::{Error, Result};

/// The chunks of a token stream, in their seeded order.
#[derive(Debug)]
pub(crate) struct Batches {
    tokens: Vec<u32>,
    seq_len: usize,
    sequences: usize,
    seed: u64,
    /// The order of the epoch last asked for.
    order: Option<(u64, Vec<usize>)>,
}

impl Batches {
    /// `sequences` chunks of `seq_len + 1` tokens per step from `tokens`.
    ///
    /// # Errors
    /// [`Error::TooFewTokens`] when the stream holds no whole chunk.
    pub(crate) fn new(
        tokens: Vec<u32>,
        seq_len: usize,
        sequences: usize,
        seed: u64,
    ) -> Result<Self> {
        if tokens.len() < seq_len + 1 {
            return Err(Error::TooFewTokens { tokens: tokens.len(), needed: seq_len + 1 });
        }
        Ok(Self { tokens, seq_len, sequences, seed, order: None })
    }

    /// Chunks of the stream: consecutive chunks share their boundary token, one's target
    /// being the next one's first input.
    pub(crate) fn chunks(&self) -> usize {
        (self.tokens.len() - 1) / self.seq_len
    }

    /// The stream, for fingerprints.
    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Epoch and chunk within it that step `step` (from 0) starts at.
    pub(crate) fn position(&self, step: usize) -> (u64, u64) {
        let taken = step as u64 * self.sequences as u64;
        let chunks = self.chunks() as u64;
        (taken / chunks, taken % chunks)
    }

    /// The sequences of step `step` (from 0), each `seq_len + 1` tokens.
    pub(crate) fn at(&mut self, step: usize) -> Vec<Vec<u32>> {
        let chunks = self.chunks() as u64;
        let first = step as u64 * self.sequences as u64;
        (first..first + self.sequences as u64)
            .map(|taken| {
                let c = self.chunk_of(taken / chunks, (taken % chunks) as usize);
                self.tokens[c * self.seq_len..c * self.seq_len + self.seq_len + 1].to_vec()
            })
            .collect()
    }

    /// The chunk at `index` of epoch `epoch`'s order.
    fn chunk_of(&mut self, epoch: u64, index: usize) -> usize {
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut order: Vec<usize> = (0..self.chunks()).collect();
            order.shuffle(&mut StdRng::seed_from_u64(sub_seed(self.seed, &[1, epoch])));
            self.order = Some((epoch, order));
        }
        self.order.as_ref().map_or(index, |(_, order)| order[index])
    }
}

/// A seed for one use of `seed` (its `path`: a purpose and indices), so that uses draw
/// independent streams and none depends on how much another drew: splitmix64's mixing.
pub(crate) fn sub_seed(seed: u64, path: &[u64]) -> u64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    path.iter().fold(mix(seed), |h, &p| mix(h ^ mix(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_takes_every_chunk_once() {
        let mut b = Batches::new((0..41).collect(), 4, 2, 7).unwrap();
        assert_eq!(b.chunks(), 10);
        let firsts: Vec<u32> = (0..5).flat_map(|s| b.at(s)).map(|c| c[0]).collect();
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).map(|c| c * 4).collect::<Vec<_>>());
        assert_ne!(firsts, sorted, "shuffled");
        assert!(b.at(0).iter().all(|c| c.len() == 5 && c[4] == c[0] + 4));
        assert_eq!(b.position(6), (1, 2));
    }

    #[test]
    fn a_step_is_the_same_whatever_came_before() {
        let mut a = Batches::new((0..100).collect(), 8, 3, 1).unwrap();
        let mut b = Batches::new((0..100).collect(), 8, 3, 1).unwrap();
        let _ = a.at(2);
        assert_eq!(a.at(9), b.at(9));
        assert_ne!(b.at(4), Batches::new((0..100).collect(), 8, 3, 2).unwrap().at(4));
    }

    #[test]
    fn a_text_shorter_than_one_sequence_is_refused() {
        assert!(matches!(
            Batches::new(vec![1; 8], 8, 1, 0),
            Err(Error::TooFewTokens { tokens: 8, needed: 9 })
        ));
    }
}
