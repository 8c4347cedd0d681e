//! [`State`]: one sequence's KV cache, worker threads and scratch buffers, allocated once,
//! and the observers calibration attaches to it.

use lantern_core::kernels::QuantizedInput;

use crate::adapter::side::ActiveAdapters;
use crate::attention::Scratch;
use crate::calibration::{ActivationHistograms, ActiveWindows, MatrixInputs};
use crate::ffn::Ffn;
use crate::kv_cache::KvCache;
use crate::matrix::LinearScratch;
use crate::workers::Workers;
use crate::{Activation, Error, Exits, FfnThresholds, ModelConfig, Result};

/// Per-sequence settings of a [`State`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateConfig {
    /// Positions the KV cache holds.
    pub ctx_len: usize,
    /// Most tokens computed in one batch; longer inputs are split.
    pub batch_size: usize,
    /// Worker threads.
    pub threads: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self { ctx_len: 4096, batch_size: 512, threads: 1 }
    }
}

/// One sequence's KV cache, worker threads and scratch buffers, allocated once.
#[derive(Debug)]
pub struct State {
    pub(crate) cache: KvCache,
    pub(crate) workers: Workers,
    pub(crate) batch_size: usize,
    pub(crate) buf: Buffers,
    pub(crate) logits: Vec<f32>,
    pub(crate) ffn: Ffn,
    /// Each block's FFN width, which per-neuron thresholds must match.
    ffn_widths: Vec<usize>,
    /// The FFN gate's activation, which the thresholds' scores assume is SiLU.
    activation: Activation,
    pub(crate) inputs: Option<Box<dyn MatrixInputs>>,
    /// The LoRA adapters applied to the products, with their scales.
    pub(crate) adapters: ActiveAdapters,
    /// Early exits and what they keep of a batch.
    pub(crate) exits: Option<ExitState>,
}

/// A state's early exits: the rule, the residual stream after each early exit for a batch
/// (as long as [`Buffers::x`]), the combined rows of a batch's logits, and which rows the
/// first confident exit has yet to settle.
#[derive(Debug)]
pub(crate) struct ExitState {
    pub(crate) exits: Exits,
    pub(crate) streams: Vec<Vec<f32>>,
    pub(crate) combined: Vec<f32>,
    pub(crate) open: Vec<bool>,
}

impl std::fmt::Debug for dyn MatrixInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MatrixInputs")
    }
}

/// Activations of one batch outside the FFN, each sized for `batch_size` tokens. Three
/// buffers serve twice in a block, since their first values are spent before the second
/// are written: a long prompt's activations are then resident once, not twice.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    /// The residual stream.
    pub(crate) x: Vec<f32>,
    /// Its normed values, and their quantization; after the Q, K and V products, the
    /// heads' mixed values (attention's output) and theirs.
    pub(crate) xn: Vec<f32>,
    pub(crate) xq: QuantizedInput,
    /// The queries; after attention, a block's output before it joins the residual.
    pub(crate) q: Vec<f32>,
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    pub(crate) linear: LinearScratch,
    /// Logits of a run of the output head's rows, when it is streamed in runs.
    pub(crate) head_run: Vec<f32>,
    pub(crate) attn_scratch: Scratch,
}

impl State {
    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// The LoRA adapters the forward pass applies, with their scales
    /// ([`Model::set_adapters`](crate::Model::set_adapters)).
    pub fn adapters(&self) -> &[(std::sync::Arc<crate::LoraAdapter>, f32)] {
        self.adapters.list()
    }

    /// The exits whose predictions the logits combine, if set ([`State::set_exits`]).
    pub fn exits(&self) -> Option<&Exits> {
        self.exits.as_ref().map(|e| &e.exits)
    }

    /// From the next forward pass on, the logits combine the predictions of `exits`
    /// ([`Exits`]); `None` reads the final layer alone.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when an exit is past this model's blocks, or the streams
    /// cannot be allocated.
    pub fn set_exits(&mut self, exits: Option<Exits>) -> Result<()> {
        let Some(exits) = exits else {
            self.exits = None;
            return Ok(());
        };
        self.check_layers("exits", *exits.layers().last().unwrap_or(&0))?;
        let len = self.buf.x.len();
        let streams = exits.early().iter().map(|_| try_filled(len, 0.0)).collect::<Option<_>>();
        let streams = streams.ok_or_else(|| Error::InvalidSetting {
            name: "exits",
            reason: format!("{} streams of {len} values cannot be allocated", exits.early().len()),
        })?;
        self.exits = Some(ExitState { exits, streams, combined: Vec::new(), open: Vec::new() });
        Ok(())
    }

    /// Positions the cache holds.
    pub fn ctx_len(&self) -> usize {
        self.cache.capacity()
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.workers.threads()
    }

    /// Forgets every position from `len` on, keeping the prefix for reuse, and returns the
    /// positions kept: `len`, or 0 when a sliding-window layer's cache has written over rows
    /// that position `len` attends to (the prefix must then be computed again).
    pub fn truncate(&mut self, len: usize) -> usize {
        self.cache.truncate(len)
    }

    /// Zeroes FFN neurons whose score is below their threshold ([`FfnThresholds`]) from the
    /// next forward pass on; `None` computes them all (the dense model). Resets
    /// [`State::ffn_zeroed_share`].
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when the thresholds are not for this model's layers.
    pub fn set_ffn_thresholds(&mut self, thresholds: Option<FfnThresholds>) -> Result<()> {
        if thresholds.is_some() {
            self.check_silu_gate("FFN thresholds")?;
        }
        if let Some(t) = &thresholds {
            let widths = &self.ffn_widths;
            let fits = |(l, &ff): (&Vec<f32>, &usize)| l.len() == 1 || l.len() == ff;
            if t.layers().len() != widths.len() || !t.layers().iter().zip(widths).all(fits) {
                return Err(Error::InvalidSetting {
                    name: "FFN thresholds",
                    reason: format!(
                        "thresholds for {} layers, not {} of one or their FFN widths {widths:?}",
                        t.layers().len(),
                        widths.len()
                    ),
                });
            }
        }
        self.ffn.sparsity.thresholds = thresholds;
        (self.ffn.sparsity.zeroed, self.ffn.sparsity.seen) = (0, 0);
        Ok(())
    }

    /// Activation sparsity's scores are those of a SiLU gate: `name` is refused otherwise.
    fn check_silu_gate(&self, name: &'static str) -> Result<()> {
        if self.activation == Activation::Silu {
            return Ok(());
        }
        Err(Error::InvalidSetting {
            name,
            reason: format!(
                "activation sparsity scores SiLU-gated FFNs; this model's gate is {:?}",
                self.activation
            ),
        })
    }

    /// The share of FFN neurons the thresholds zeroed since they were set.
    pub fn ffn_zeroed_share(&self) -> Option<f64> {
        let s = &self.ffn.sparsity;
        (s.seen > 0).then(|| s.zeroed as f64 / s.seen as f64)
    }

    /// Starts counting every FFN neuron's score into `histograms` (for calibration), or
    /// with `None` stops; returns what was counted before.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when the histograms are not for this model's layers.
    pub fn observe_ffn(
        &mut self,
        histograms: Option<ActivationHistograms>,
    ) -> Result<Option<ActivationHistograms>> {
        if let Some(h) = &histograms {
            self.check_silu_gate("FFN histograms")?;
            self.check_layers("FFN histograms", h.layers())?;
        }
        Ok(std::mem::replace(&mut self.ffn.sparsity.observer, histograms))
    }

    /// Starts counting, while thresholds zero neurons, how well the neurons active in the
    /// last tokens of each layer predict the next token's ([`ActiveWindows`]), or with
    /// `None` stops; returns what was counted before.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] when the windows are not for this model's layers.
    pub fn watch_active_windows(
        &mut self,
        windows: Option<ActiveWindows>,
    ) -> Result<Option<ActiveWindows>> {
        if let Some(w) = &windows {
            self.check_layers("active-neuron windows", w.layers())?;
        }
        Ok(std::mem::replace(&mut self.ffn.sparsity.windows, windows))
    }

    /// Hands the values every block's matrices multiply to `observer` from the next
    /// forward pass on, or with `None` stops; returns the observer that was watching.
    pub fn observe_matrix_inputs(
        &mut self,
        observer: Option<Box<dyn MatrixInputs>>,
    ) -> Option<Box<dyn MatrixInputs>> {
        std::mem::replace(&mut self.inputs, observer)
    }

    /// [`Error::InvalidSetting`] named `name` unless `layers` is this model's layer count.
    fn check_layers(&self, name: &'static str, layers: usize) -> Result<()> {
        if layers == self.cache.layers() {
            return Ok(());
        }
        Err(Error::InvalidSetting {
            name,
            reason: format!("{layers} layers for {}", self.cache.layers()),
        })
    }
}

impl State {
    /// A fresh state for a model of `c`: an empty KV cache of `config.ctx_len` positions;
    /// `k_quants` when some matrix reads 256-value activation blocks.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a zero context or batch size, or buffers too large to
    /// allocate; [`Error::ThreadPool`] if the workers cannot start.
    pub(crate) fn new(c: &ModelConfig, config: StateConfig, k_quants: bool) -> Result<Self> {
        for (name, v) in [("ctx_len", config.ctx_len), ("batch_size", config.batch_size)] {
            if v == 0 {
                return Err(Error::InvalidSetting { name, reason: "must be at least 1".into() });
            }
        }
        // A batch never holds more tokens than the context.
        let nb = config.batch_size.min(config.ctx_len);
        let windows: Vec<Option<usize>> =
            (0..c.n_layers).map(|l| c.is_local(l).then_some(c.sliding_window)).collect();
        let cache = KvCache::new(&windows, config.ctx_len, nb, c.kv_dim())?;
        // `xn` and `q` each hold a model-width and a query-width value per token in turn.
        let width = c.d_model.max(c.n_heads * c.head_dim);
        let buf = Buffers {
            x: batch_zeros(nb, c.d_model)?,
            xn: batch_zeros(nb, width)?,
            xq: QuantizedInput::new(k_quants),
            q: batch_zeros(nb, width)?,
            k: batch_zeros(nb, c.kv_dim())?,
            v: batch_zeros(nb, c.kv_dim())?,
            linear: LinearScratch::default(),
            head_run: Vec::new(),
            attn_scratch: Scratch::default(),
        };
        Ok(Self {
            cache,
            workers: Workers::new(config.threads)?,
            batch_size: nb,
            buf,
            logits: Vec::new(),
            ffn: Ffn::new(batch_zeros(nb, c.n_ff)?, batch_zeros(nb, c.n_ff)?, k_quants),
            ffn_widths: c.ffn_widths.clone(),
            activation: c.block.activation,
            inputs: None,
            adapters: ActiveAdapters::default(),
            exits: None,
        })
    }
}

/// Zeros for `tokens` tokens of `per_token` values each, or [`Error::InvalidSetting`] naming
/// the batch size when that many cannot be counted or allocated.
fn batch_zeros(tokens: usize, per_token: usize) -> Result<Vec<f32>> {
    let too_big = || Error::InvalidSetting {
        name: "batch_size",
        reason: format!("{tokens} tokens of {per_token} values each cannot be allocated"),
    };
    let len = tokens.checked_mul(per_token).ok_or_else(too_big)?;
    try_filled(len, 0.0).ok_or_else(too_big)
}

/// `len` copies of `value`, or `None` when the memory cannot be had: an allocation sized
/// from a setting fails with an error naming it, never an abort.
pub(crate) fn try_filled<T: Clone>(len: usize, value: T) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, value);
    Some(v)
}
