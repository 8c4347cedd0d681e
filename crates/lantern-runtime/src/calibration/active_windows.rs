//! How well the neurons active in the last few tokens predict the next token's: the
//! question a streamed model that reads only the predicted neurons' weights ("windowing")
//! must answer well to pay.
//!
//! For each window length `k`, the prediction for a token is every neuron active in any of
//! the `k` tokens before it in the same layer. A neuron active but not predicted is a miss,
//! read on demand; every predicted neuron is read ahead, active or not.

/// The window lengths [`ActiveWindows::new`] takes at most.
const MAX_WINDOW: usize = 64;

/// Counts of how the last tokens' active FFN neurons predict each token's, per layer kept
/// together, for a few window lengths.
#[derive(Clone, Debug)]
pub struct ActiveWindows {
    windows: Vec<usize>,
    /// Per layer, the active sets of the last `max(windows)` tokens, newest last, as bits.
    recent: Vec<Vec<Vec<u64>>>,
    /// Per window: neurons active, of them predicted, and neurons predicted.
    counts: Vec<WindowCounts>,
    /// Scratch: one token's active set and a prediction.
    active: Vec<u64>,
    predicted: Vec<u64>,
}

/// What one window length predicted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Active neurons of the tokens scored (tokens with a full window before them).
    pub active: u64,
    /// Of them, those the window predicted.
    pub hits: u64,
    /// Neurons predicted (read ahead).
    pub predicted: u64,
    /// Neurons the scored tokens had in all.
    pub neurons: u64,
}

impl WindowCounts {
    /// The share of active neurons the window did not predict.
    pub fn miss_rate(&self) -> f64 {
        1.0 - self.hits as f64 / self.active.max(1) as f64
    }

    /// The share of all neurons predicted, so read ahead.
    pub fn predicted_share(&self) -> f64 {
        self.predicted as f64 / self.neurons.max(1) as f64
    }
}

impl ActiveWindows {
    /// Counts for the window lengths `windows` (each 1 to 64) over `n_layers` layers.
    ///
    /// # Errors
    /// [`crate::Error::InvalidSetting`] for an empty list or a length out of range.
    pub fn new(windows: &[usize], n_layers: usize) -> crate::Result<Self> {
        if windows.is_empty() || windows.iter().any(|&k| k == 0 || k > MAX_WINDOW) {
            return Err(crate::Error::InvalidSetting {
                name: "active-neuron windows",
                reason: format!("{windows:?}: each from 1 to {MAX_WINDOW} tokens"),
            });
        }
        Ok(Self {
            windows: windows.to_vec(),
            recent: vec![Vec::new(); n_layers],
            counts: vec![WindowCounts::default(); windows.len()],
            active: Vec::new(),
            predicted: Vec::new(),
        })
    }

    /// Layers counted.
    pub fn layers(&self) -> usize {
        self.recent.len()
    }

    /// The window lengths with what each predicted, in the order given.
    pub fn counts(&self) -> impl Iterator<Item = (usize, WindowCounts)> + '_ {
        self.windows.iter().copied().zip(self.counts.iter().copied())
    }

    /// Counts one token of layer `layer`, whose neurons are active where `active` says.
    pub(crate) fn add(&mut self, layer: usize, active: impl ExactSizeIterator<Item = bool>) {
        let neurons = active.len();
        let words = neurons.div_ceil(64);
        self.active.clear();
        self.active.resize(words, 0);
        for (i, on) in active.enumerate() {
            self.active[i / 64] |= u64::from(on) << (i % 64);
        }
        let ones = |bits: &[u64]| bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
        let recent = &mut self.recent[layer];
        for (k, counts) in self.windows.iter().zip(&mut self.counts) {
            if recent.len() < *k {
                continue;
            }
            self.predicted.clear();
            self.predicted.resize(words, 0);
            for set in &recent[recent.len() - k..] {
                self.predicted.iter_mut().zip(set).for_each(|(p, s)| *p |= s);
            }
            let hits = self.active.iter().zip(&self.predicted).map(|(a, p)| a & p);
            counts.active += ones(&self.active);
            counts.hits += hits.map(|w| u64::from(w.count_ones())).sum::<u64>();
            counts.predicted += ones(&self.predicted);
            counts.neurons += neurons as u64;
        }
        let longest = self.windows.iter().copied().max().unwrap_or(1);
        if recent.len() == longest {
            // Reuse the oldest set's buffer for the newest.
            let mut oldest = recent.remove(0);
            oldest.clone_from(&self.active);
            recent.push(oldest);
        } else {
            recent.push(self.active.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_hits_misses_and_reads() {
        let mut w = ActiveWindows::new(&[1, 2], 1).unwrap();
        // Three tokens of four neurons: {0, 1}, {1, 2}, {2, 3}.
        for set in
            [[true, true, false, false], [false, true, true, false], [false, false, true, true]]
        {
            w.add(0, set.into_iter());
        }
        let counts: Vec<_> = w.counts().collect();
        // Window 1 scores tokens 2 and 3: each has 2 active, 1 predicted, 2 read.
        assert_eq!(counts[0], (1, WindowCounts { active: 4, hits: 2, predicted: 4, neurons: 8 }));
        // Window 2 scores token 3 only: {0, 1, 2} predicted, 2 of its {2, 3} hit once.
        assert_eq!(counts[1], (2, WindowCounts { active: 2, hits: 1, predicted: 3, neurons: 4 }));
        assert_eq!(counts[0].1.miss_rate(), 0.5);
        assert_eq!(counts[1].1.predicted_share(), 0.75);
        assert!(ActiveWindows::new(&[0], 1).is_err());
        assert!(ActiveWindows::new(&[], 1).is_err());
    }
}
