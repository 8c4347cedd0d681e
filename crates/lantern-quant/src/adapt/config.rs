//! What a tuning run does ([`TuneConfig`]), and the exits and windows that makes of one
//! model ([`Plan`]).

use std::ops::Range;

use lantern_runtime::BlockMatrix;

use crate::adapt::data::sub_seed;
use crate::{Error, Result};

/// How deep each step's backward pass reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Depth {
    /// Every block in every step, one exit at the top: plain LoRA.
    Full,
    /// Adaptive layer tuning (Edge-LLM): each step trains the `window` blocks just below one
    /// exit. `window` defaults to a fifth of the blocks, rounded up (6 of 30); `exits` (block
    /// counts, rising, the last the model's top) default to every `window` blocks counted
    /// from the top (6, 12, 18, 24, 30).
    Windows {
        /// Blocks a step trains.
        window: Option<usize>,
        /// Block counts after which the exits sit.
        exits: Option<Vec<usize>>,
    },
}

impl Default for Depth {
    fn default() -> Self {
        Self::Windows { window: None, exits: None }
    }
}

/// Which exit each step trains at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Schedule {
    /// The exits in turn, lowest first, one per step.
    #[default]
    Cyclic,
    /// An exit drawn at random for each step (seeded).
    Random,
}

impl Schedule {
    /// The name the command line gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cyclic => "cyclic",
            Self::Random => "random",
        }
    }
}

/// Settings of a tuning run ([`Tuner`](crate::Tuner)).
#[derive(Clone, Debug, PartialEq)]
pub struct TuneConfig {
    /// Rank of each low-rank update. By default, 8.
    pub rank: usize,
    /// LoRA's alpha: updates are scaled by `alpha / rank` (by 1 when alpha is 0), as the
    /// runtime applies them. By default, 16.
    pub alpha: f32,
    /// The block matrices that get an update. By default, all seven.
    pub targets: Vec<BlockMatrix>,
    /// How deep each step trains. By default, windows of a fifth of the blocks.
    pub depth: Depth,
    /// Which exit each step trains at. By default, cyclic.
    pub schedule: Schedule,
    /// Tokens of each training sequence (each predicts its next token). By default, 128.
    pub seq_len: usize,
    /// Sequences each step averages its loss over. By default, 1.
    pub sequences: usize,
    /// AdamW's step size. By default, 2e-4.
    pub learning_rate: f64,
    /// AdamW's decoupled weight decay. By default, 0.
    pub weight_decay: f64,
    /// Optimizer steps of the whole run. By default, 100.
    pub steps: usize,
    /// Seed of the factors' initial values, the order of the text's sequences and the
    /// random schedule. By default, 0.
    pub seed: u64,
    /// Bytes the run may take at its peak, the loaded model included; a run estimated to
    /// need more is refused before it starts. By default, no limit.
    pub memory_budget: Option<u64>,
    /// Threads of the tensor products. By default, candle's (one per core).
    pub threads: Option<usize>,
}

impl Default for TuneConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            targets: BlockMatrix::ALL.to_vec(),
            depth: Depth::default(),
            schedule: Schedule::Cyclic,
            seq_len: 128,
            sequences: 1,
            learning_rate: 2e-4,
            weight_decay: 0.0,
            steps: 100,
            seed: 0,
            memory_budget: None,
            threads: None,
        }
    }
}

/// The exits and windows of a run on a model of `n_layers` blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    window: usize,
    exits: Vec<usize>,
}

impl Plan {
    /// The plan `config` makes for a model of `n_layers` blocks, its settings checked.
    ///
    /// # Errors
    /// [`Error::TuneSetting`] naming the first setting out of range.
    pub fn new(config: &TuneConfig, n_layers: usize) -> Result<Self> {
        check_settings(config)?;
        let bad = |name, reason: String| Err(Error::TuneSetting { name, reason });
        if n_layers == 0 {
            return bad("model", "has no blocks".into());
        }
        let (window, exits) = match &config.depth {
            Depth::Full => (n_layers, None),
            Depth::Windows { window, exits } => {
                (window.unwrap_or(n_layers.div_ceil(5)).min(n_layers), exits.as_ref())
            }
        };
        if window == 0 {
            return bad("window", "of 0 blocks: a window trains at least one".into());
        }
        let exits = match exits {
            None => {
                let mut exits: Vec<usize> = (1..=n_layers).rev().step_by(window).collect();
                exits.reverse();
                exits
            }
            Some(exits) => {
                let rising = exits.windows(2).all(|w| w[0] < w[1]);
                if exits.is_empty() || !rising || exits[0] == 0 {
                    return bad("exits", format!("{exits:?}: need block counts rising from 1"));
                }
                if exits.last() != Some(&n_layers) {
                    return bad(
                        "exits",
                        format!("{exits:?}: the last must be the model's top, {n_layers} blocks"),
                    );
                }
                exits.clone()
            }
        };
        Ok(Self { window, exits })
    }

    /// Blocks a window holds at most.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Block counts after which the exits sit, rising; the last is the model's top.
    pub fn exits(&self) -> &[usize] {
        &self.exits
    }

    /// The blocks the exit after `exit` blocks trains: the `window` below it.
    pub fn window_of(&self, exit: usize) -> Range<usize> {
        exit.saturating_sub(self.window)..exit
    }

    /// The exit step `step` (from 0) trains at, by `schedule` and `seed`.
    pub fn exit_at(&self, step: usize, schedule: Schedule, seed: u64) -> usize {
        let i = match schedule {
            Schedule::Cyclic => step % self.exits.len(),
            Schedule::Random => {
                (sub_seed(seed, &[2, step as u64]) % self.exits.len() as u64) as usize
            }
        };
        self.exits[i]
    }

    /// Whether some window trains block `layer`.
    pub fn covers(&self, layer: usize) -> bool {
        self.exits.iter().any(|&e| self.window_of(e).contains(&layer))
    }
}

fn check_settings(config: &TuneConfig) -> Result<()> {
    let bad = |name, reason: String| Err(Error::TuneSetting { name, reason });
    if config.rank == 0 {
        return bad("rank", "of 0: an update needs rank 1 or more".into());
    }
    if !config.alpha.is_finite() || config.alpha < 0.0 {
        return bad("alpha", format!("of {}: need a finite number ≥ 0", config.alpha));
    }
    if config.targets.is_empty() {
        return bad("targets", "are empty: name at least one matrix".into());
    }
    if config.seq_len == 0 || config.sequences == 0 {
        return bad("sequences", "of 0 tokens, or 0 of them per step".into());
    }
    if !(config.learning_rate.is_finite() && config.learning_rate > 0.0) {
        return bad(
            "learning rate",
            format!("of {}: need a positive number", config.learning_rate),
        );
    }
    if !(config.weight_decay.is_finite() && config.weight_decay >= 0.0) {
        return bad("weight decay", format!("of {}: need a number ≥ 0", config.weight_decay));
    }
    if config.threads == Some(0) {
        return bad("threads", "of 0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(depth: Depth, n_layers: usize) -> Result<Plan> {
        Plan::new(&TuneConfig { depth, ..TuneConfig::default() }, n_layers)
    }

    #[test]
    fn exits_default_to_every_window_from_the_top() {
        let p = plan(Depth::Windows { window: Some(6), exits: None }, 30).unwrap();
        assert_eq!(p.exits(), [6, 12, 18, 24, 30]);
        let p = plan(Depth::Windows { window: Some(6), exits: None }, 32).unwrap();
        assert_eq!(p.exits(), [2, 8, 14, 20, 26, 32]);
        assert_eq!(p.window_of(2), 0..2);
        assert_eq!(p.window_of(8), 2..8);
        assert_eq!(plan(Depth::default(), 30).unwrap().window(), 6);
    }

    #[test]
    fn full_depth_is_one_window_of_every_block() {
        let p = plan(Depth::Full, 7).unwrap();
        assert_eq!((p.window(), p.exits()), (7, &[7][..]));
        assert!((0..7).all(|l| p.covers(l)));
    }

    #[test]
    fn exits_must_rise_to_the_top() {
        let exits = |e: Vec<usize>| Depth::Windows { window: Some(2), exits: Some(e) };
        assert!(plan(exits(vec![2, 4]), 4).is_ok());
        assert!(plan(exits(vec![2, 3]), 4).is_err());
        assert!(plan(exits(vec![0, 4]), 4).is_err());
        assert!(plan(exits(vec![3, 3, 4]), 4).is_err());
        assert!(plan(exits(vec![2, 6]), 4).is_err());
        let p = plan(exits(vec![3, 4]), 4).unwrap();
        assert!(!p.covers(0) && p.covers(1) && p.covers(3));
    }

    #[test]
    fn the_cyclic_schedule_takes_each_exit_in_turn() {
        let p = plan(Depth::Windows { window: Some(1), exits: None }, 3).unwrap();
        let order: Vec<_> = (0..6).map(|s| p.exit_at(s, Schedule::Cyclic, 0)).collect();
        assert_eq!(order, [1, 2, 3, 1, 2, 3]);
    }
}
