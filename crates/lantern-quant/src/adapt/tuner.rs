//! [`Tuner`]: one tuning run, a step at a time.
//!
//! A step trains at one exit `e`. Blocks below its window are computed with the updates
//! trained so far but without a graph (nothing of them is kept for the backward pass), the
//! window's blocks with their updates as variables, then the exit (the final norm and the
//! head) gives the logits, and the loss is the next-token cross-entropy. Blocks above `e`
//! are not computed. AdamW then steps the window's factors only.

use std::ops::{ControlFlow, Range};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::Tensor;
use lantern_runtime::{LoraAdapter, Model};

use crate::adapt::adamw::AdamW;
use crate::adapt::base::{self, Base};
use crate::adapt::config::{Plan, TuneConfig};
use crate::adapt::data::Batches;
use crate::adapt::lora::LoraParams;
use crate::adapt::memory::{estimate_memory, MemoryEstimate};
use crate::adapt::{checkpoint, fingerprint};
use crate::twin;
use crate::{Error, Result};

/// What one step did.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// Steps done, this one included.
    pub step: usize,
    /// The exit it trained at: a block count.
    pub exit: usize,
    /// The blocks it trained.
    pub window: Range<usize>,
    /// The mean next-token cross-entropy of its sequences at the exit, before the update.
    pub loss: f64,
    /// Tokens it predicted.
    pub tokens: usize,
    /// How long it took.
    pub elapsed: Duration,
}

/// Where and how often [`Tuner::run`] writes checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoints {
    /// The checkpoint file, replaced atomically each time.
    pub path: PathBuf,
    /// Steps between checkpoints; one is also written at the end, and when the run stops.
    pub every: usize,
}

/// A LoRA tuning run on a model: adaptive layer tuning (Edge-LLM), or full depth.
#[derive(Debug)]
pub struct Tuner<'m> {
    model: &'m Model,
    config: TuneConfig,
    plan: Plan,
    base: Base<'m>,
    data: Batches,
    lora: LoraParams,
    adam: AdamW,
    settings: checkpoint::Settings,
    pool: Option<rayon::ThreadPool>,
    step: usize,
}

impl<'m> Tuner<'m> {
    /// A run of `config` on `model` over the token stream `tokens`, no step taken.
    ///
    /// # Errors
    /// [`Error::TuneSetting`] for a setting out of range or a token outside the vocabulary;
    /// [`Error::TuneUnsupported`] for a model whose blocks tuning does not compute;
    /// [`Error::TooFewTokens`] for a text shorter than one sequence; [`Error::TuneBudget`]
    /// when the run's estimated peak exceeds `config.memory_budget`.
    pub fn new(model: &'m Model, config: TuneConfig, tokens: Vec<u32>) -> Result<Self> {
        let c = model.config();
        let plan = Plan::new(&config, c.n_layers)?;
        let estimate = estimate_memory(model, &config)?;
        if let Some(budget) = config.memory_budget.filter(|&b| b < estimate.total()) {
            return Err(Error::TuneBudget { budget, estimate: estimate.total() });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            let reason = format!("hold token {id}, outside the vocabulary of {}", c.vocab_size);
            return Err(Error::TuneSetting { name: "tokens", reason });
        }
        let data = Batches::new(tokens, config.seq_len, config.sequences, config.seed)?;
        let pool = match config.threads {
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::TuneSetting { name: "threads", reason: e.to_string() })?,
            ),
            None => None,
        };
        let lora = fresh_lora(model, &config, &plan)?;
        let settings = fingerprint::settings(model, &config, &plan, data.tokens());
        let adam = AdamW { lr: config.learning_rate, weight_decay: config.weight_decay };
        let base = Base::new(model, config.seq_len)?;
        Ok(Self { model, config, plan, base, data, lora, adam, settings, pool, step: 0 })
    }

    /// The exits and windows of the run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The run's settings.
    pub fn config(&self) -> &TuneConfig {
        &self.config
    }

    /// The run's estimated peak memory.
    ///
    /// # Errors
    /// None in practice: the settings were checked when the run was made.
    pub fn memory_estimate(&self) -> Result<MemoryEstimate> {
        estimate_memory(self.model, &self.config)
    }

    /// Steps done.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// Whether every step of `config.steps` is done.
    pub fn is_done(&self) -> bool {
        self.step >= self.config.steps
    }

    /// Values the run trains (the factors of every update).
    pub fn trained_values(&self) -> usize {
        self.lora.values()
    }

    /// Takes the next step, at the exit the schedule gives.
    ///
    /// # Errors
    /// [`Error::NonFiniteLoss`] when the loss is NaN or infinite (no update is made);
    /// [`Error::Training`] or [`Error::Core`] when a tensor operation fails.
    pub fn step(&mut self) -> Result<StepReport> {
        match self.pool.take() {
            Some(pool) => {
                let report = pool.install(|| self.step_here());
                self.pool = Some(pool);
                report
            }
            None => self.step_here(),
        }
    }

    fn step_here(&mut self) -> Result<StepReport> {
        let start = Instant::now();
        let exit = self.plan.exit_at(self.step, self.config.schedule, self.config.seed);
        let window = self.plan.window_of(exit);
        let sequences = self.data.at(self.step);
        let mut xs = sequences
            .iter()
            .map(|s| self.base.embed(&s[..s.len() - 1]))
            .collect::<Result<Vec<_>>>()?;
        for l in 0..exit {
            // Below the window nothing is kept for the backward pass.
            let tracked = window.contains(&l);
            let block = self.base.block(l)?;
            let factors = self.lora.block(l, tracked);
            let deltas = self.lora.deltas(&factors);
            for x in &mut xs {
                *x =
                    twin::adapted_block(&self.base.shape, &self.base.rotation, &block, &deltas, x)?;
            }
        }
        let targets: Vec<u32> = sequences.iter().flat_map(|s| s[1..].iter().copied()).collect();
        let tokens = targets.len();
        let loss = self.base.loss(&Tensor::cat(&xs, 0)?, targets)?;
        let value = f64::from(loss.to_scalar::<f32>()?);
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss { step: self.step + 1 });
        }
        let grads = loss.backward()?;
        for p in self.lora.params_of(window.clone()) {
            if let Some(grad) = grads.get(p.var.as_tensor()) {
                self.adam.step(p, grad)?;
            }
        }
        self.step += 1;
        let elapsed = start.elapsed();
        Ok(StepReport { step: self.step, exit, window, loss: value, tokens, elapsed })
    }

    /// Takes steps until `config.steps` are done or `on_step` breaks, writing `checkpoints`
    /// every so often, at the end and when stopped.
    ///
    /// # Errors
    /// As [`Tuner::step`] and [`Tuner::save_checkpoint`]; after an error the last
    /// checkpoint written holds the run up to then.
    pub fn run(
        &mut self,
        checkpoints: Option<&Checkpoints>,
        mut on_step: impl FnMut(&StepReport) -> ControlFlow<()>,
    ) -> Result<()> {
        while !self.is_done() {
            let report = self.step()?;
            let stop = on_step(&report).is_break();
            if let Some(c) = checkpoints {
                if stop || self.is_done() || self.step.is_multiple_of(c.every.max(1)) {
                    self.save_checkpoint(&c.path)?;
                }
            }
            if stop {
                break;
            }
        }
        Ok(())
    }

    /// Writes a checkpoint of the run to `path` (atomically).
    ///
    /// # Errors
    /// [`Error::File`] when it cannot be written.
    pub fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let position = self.data.position(self.step);
        checkpoint::write(path, &self.settings, self.step, position, &self.lora)
    }

    /// Goes on from the checkpoint at `path`: its factors, moments and steps done.
    ///
    /// # Errors
    /// [`Error::CheckpointMismatch`] for a checkpoint of another model, text or settings;
    /// [`Error::NotCheckpoint`] for a file that is not one; [`Error::File`] when it cannot be
    /// read. The run is unchanged after an error.
    pub fn resume(&mut self, path: &Path) -> Result<()> {
        // Read into fresh factors, so that a damaged file leaves this run as it was.
        let mut lora = fresh_lora(self.model, &self.config, &self.plan)?;
        let step = checkpoint::read(path, &self.settings, &mut lora)?;
        (self.lora, self.step) = (lora, step);
        Ok(())
    }

    /// The trained adapter, its exits recorded (none when the only exit is the top).
    ///
    /// # Errors
    /// [`Error::Model`] when a factor is not finite.
    pub fn adapter(&self) -> Result<LoraAdapter> {
        // One exit is the model's top: the adapter's "no exits".
        let exits = if self.plan.exits().len() > 1 { self.plan.exits() } else { &[] };
        self.lora.adapter(&self.model.config().architecture, exits)
    }
}

/// Untrained factors for every target matrix of each block some window trains.
fn fresh_lora(model: &Model, config: &TuneConfig, plan: &Plan) -> Result<LoraParams> {
    LoraParams::new(
        config.rank,
        config.alpha,
        &fingerprint::targets(config),
        (0..model.config().n_layers).filter(|&l| plan.covers(l)),
        |l| base::shapes(model, l),
        config.seed,
    )
}
