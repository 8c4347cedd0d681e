//! [`Model`]: the generic llama-family decoder.
//!
//! The forward pass takes a batch of tokens at the next positions of a [`State`] and
//! returns logits for the tokens asked for. A batch of one is decoding; a longer batch is
//! prefill, where each weight row is read once for the whole batch.

use std::sync::Arc;

use lantern_core::kernels::{self, Input};
use lantern_io::stream::{StreamStats, StreamedContainer};
use lantern_io::ModelFile;

use crate::adapter;
use crate::attention::{self, Heads};
use crate::calibration::{squared_column_norms, squared_row_norms, InputSite};
use crate::exits::{confidence, keep_max, softmax_rows, votes_to_logits};
use crate::ffn::{DownColumns, FfnWeights};
use crate::ops::{add_assign, add_rows, rms_norm, rms_norm_heads, rope, Rope};
use crate::state::State;
use crate::streamed::{Lease, StreamOptions, Streamed};
use crate::unfused::Unfused;
use crate::weights::{ffn_widths, matrix_dims};
use crate::workers::Workers;
use crate::{
    BlockMatrix, Error, ExitRule, LoraAdapter, ModelConfig, Projections, Result, StateConfig,
    Weights,
};

/// A loaded decoder: hyper-parameters and weights, resident or streamed. One model serves
/// many sessions on many threads; a streamed model runs their passes one at a time.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
    weights: Weights,
    streamed: Option<Streamed>,
    /// Column-major copies of the down matrices, for activation sparsity.
    down_columns: DownColumns,
    /// Whether decoding with gate thresholds reads only the active neurons' up rows.
    gather_up: bool,
    /// Whether some matrix reads activations quantized for K-quants.
    k_quants: bool,
}

impl Model {
    /// Builds the decoder from a parsed model file (GGUF or `.lantern`).
    ///
    /// # Errors
    /// See [`ModelConfig::from_metadata`] and [`Weights::load`].
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn load(file: &dyn ModelFile) -> Result<Self> {
        let embd = file.tensor("token_embd.weight")?;
        let vocab_size = embd.dims().get(1).copied().unwrap_or(0);
        let mut config = ModelConfig::from_metadata(file.metadata(), vocab_size)?;
        let file = &Unfused::new(file, &config)?;
        config.ffn_widths = ffn_widths(&config, &|name| matrix_dims(file, name))?;
        let weights = Weights::load(file, &config)?;
        let k_quants = weights.matrices().any(|t| kernels::reads_q8k(t.ty()));
        let down_columns = DownColumns::default();
        Ok(Self { config, weights, streamed: None, down_columns, gather_up: false, k_quants })
    }

    /// Builds the decoder over a container streamed from storage: norm gains and what
    /// `options.pin` names are read once, and the other matrices are read every pass by a
    /// prefetch thread, within `options.budget` bytes.
    ///
    /// # Errors
    /// As [`Model::load`], and [`lantern_io::Error::BudgetTooSmall`] (as [`Error::Io`])
    /// saying the minimum budget.
    #[tracing::instrument(level = "debug", skip_all)]
    pub fn load_streamed(file: StreamedContainer, options: StreamOptions) -> Result<Self> {
        let (config, weights, streamed) = Streamed::load(file, options)?;
        let k_quants = streamed.types().any(kernels::reads_q8k)
            || weights.matrices().any(|t| kernels::reads_q8k(t.ty()));
        let down_columns = DownColumns::default();
        let streamed = Some(streamed);
        Ok(Self { config, weights, streamed, down_columns, gather_up: false, k_quants })
    }

    /// This model with the FFN products that activation sparsity can skip: a session with
    /// FFN thresholds then reads, when it decodes, only the active neurons' rows of the up
    /// matrices (with thresholds on the gate alone, which decide before the up product) and
    /// their columns of the down matrices, bytes and work alike, with the results of every
    /// neuron computed and the zeroed ones left out.
    ///
    /// The up rows are read from the file layout ([`QTensor::gather_rows`]), so a file whose
    /// rows were interleaved at load maps them in again as they are read: up to the up
    /// matrices' bytes. The down columns are a column-major copy of every resident block's
    /// down matrix, where this CPU has a column kernel for its type (a copy rounds like the
    /// file rows for Q4_0, and once per block, not in ggml's eight lanes, for Q4_1): the
    /// down matrices' bytes again ([`Model::sparse_ffn_bytes`]). SWSC matrices take the
    /// dense products.
    ///
    /// [`QTensor::gather_rows`]: lantern_core::QTensor::gather_rows
    #[must_use]
    pub fn with_sparse_ffn(mut self) -> Self {
        let downs = self
            .weights
            .layers
            .iter()
            .map(|l| l.projections.as_ref().and_then(|p| p.down.blocks()));
        self.down_columns = DownColumns::new(downs);
        self.gather_up = true;
        self
    }

    /// Bytes of the column-major copies [`Model::with_sparse_ffn`] made.
    pub fn sparse_ffn_bytes(&self) -> usize {
        self.down_columns.bytes()
    }

    /// Weight bytes read to decode one token: every block's matrices and the output head
    /// (the embedding contributes one row).
    pub fn bytes_per_token(&self) -> usize {
        let resident = self.weights.matrix_bytes();
        resident + self.streamed.as_ref().map_or(0, Streamed::streamed_bytes)
    }

    /// The L2 norm of each FFN neuron's down column, per layer (as many as the layer's FFN
    /// width): how much a unit of the neuron's activation moves the block's output. `None`
    /// for streamed blocks.
    ///
    /// # Errors
    /// [`Error::Core`] when a down matrix cannot be dequantized.
    pub fn down_column_norms(&self) -> Result<Option<Vec<Vec<f32>>>> {
        self.ffn_norms(|p| Ok(squared_column_norms(&p.down.dequantize()?, p.down.row_len())))
    }

    /// The L2 norm of each FFN neuron's up row, per layer: how large its up projection can
    /// get for an input of unit norm. `None` for streamed blocks.
    ///
    /// # Errors
    /// [`Error::Core`] when an up matrix cannot be dequantized.
    pub fn up_row_norms(&self) -> Result<Option<Vec<Vec<f32>>>> {
        self.ffn_norms(|p| Ok(squared_row_norms(&p.up.dequantize()?, p.up.row_len())))
    }

    /// The square roots of `squares` of each block's projections, per layer; `None` when a
    /// block is streamed.
    fn ffn_norms(
        &self,
        squares: impl Fn(&Projections) -> Result<Vec<f64>>,
    ) -> Result<Option<Vec<Vec<f32>>>> {
        let mut layers = Vec::with_capacity(self.weights.layers.len());
        for layer in &self.weights.layers {
            let Some(p) = &layer.projections else { return Ok(None) };
            layers.push(squares(p)?.into_iter().map(|s| s.sqrt() as f32).collect());
        }
        Ok(Some(layers))
    }

    /// For a streamed model, what streaming has read and held so far.
    pub fn stream_stats(&self) -> Option<StreamStats> {
        self.streamed.as_ref().map(Streamed::stats)
    }

    /// For a streamed model, the loads the prefetcher reads ahead.
    pub fn stream_depth(&self) -> Option<usize> {
        self.streamed.as_ref().map(Streamed::depth)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// A fresh sequence state: an empty KV cache of `config.ctx_len` positions.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a zero context, batch or thread count;
    /// [`Error::ThreadPool`] if the workers cannot start.
    pub fn new_state(&self, config: StateConfig) -> Result<State> {
        State::new(&self.config, config, self.k_quants)
    }

    /// From the next forward pass on, `state` adds each adapter's updates, times its scale,
    /// to the products of the matrices it adapts, leaving the shared weights untouched; an
    /// empty list runs the base model.
    ///
    /// # Errors
    /// [`Error::AdapterMismatch`] for an adapter made for another model;
    /// [`Error::InvalidSetting`] for a scale that is not finite.
    pub fn set_adapters(
        &self,
        state: &mut State,
        adapters: Vec<(Arc<LoraAdapter>, f32)>,
    ) -> Result<()> {
        for (adapter, scale) in &adapters {
            adapter.check(&self.config)?;
            if !scale.is_finite() {
                let reason = format!("an adapter scale of {scale}");
                return Err(Error::InvalidSetting { name: "adapter scale", reason });
            }
        }
        state.adapters.set(adapters);
        Ok(())
    }

    /// Merges `adapter`'s updates, times `scale`, into the weights: every state of this
    /// model then runs the adapted model at the base model's speed. Each updated matrix is
    /// quantized again to its own type, which rounds the update.
    ///
    /// # Errors
    /// [`Error::AdapterMismatch`] for an adapter made for another model;
    /// [`Error::MergeUnsupported`] for a streamed block, a SWSC matrix or a type lantern
    /// cannot quantize to (nothing is merged then).
    pub fn merge_adapter(&mut self, adapter: &LoraAdapter, scale: f32) -> Result<()> {
        adapter.check(&self.config)?;
        adapter::merge::merge(&mut self.weights.layers, adapter, scale)
    }

    /// Runs `tokens` at the next positions of `state` and returns the logits of
    /// `tokens[logits_from..]`, one row of `vocab_size` values per token.
    ///
    /// # Errors
    /// [`Error::ContextFull`] when the tokens do not fit in the cache (nothing is computed),
    /// [`Error::InvalidToken`] for an id outside the vocabulary, [`Error::NonFiniteLogits`]
    /// when a logit is NaN or infinite.
    #[tracing::instrument(level = "trace", skip_all, fields(n = tokens.len()))]
    pub fn forward<'s>(
        &self,
        state: &'s mut State,
        tokens: &[u32],
        logits_from: usize,
    ) -> Result<&'s [f32]> {
        let vocab = self.config.vocab_size;
        let used = state.cache.len();
        if used + tokens.len() > state.cache.capacity() {
            return Err(Error::ContextFull {
                needed: tokens.len(),
                used,
                ctx_len: state.cache.capacity(),
            });
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::InvalidToken { id, vocab_size: vocab });
        }
        let n_logits = tokens.len().saturating_sub(logits_from);
        state.logits.resize(n_logits * vocab, 0.0);
        let batch_size = state.batch_size;
        let streamed_before = self.stream_stats();
        let mut lease = Lease::new(&self.weights, self.streamed.as_ref());
        for (b, batch) in tokens.chunks(batch_size).enumerate() {
            let first = b * batch_size;
            self.forward_batch(state, &mut lease, batch)?;
            // Logits of this batch's tokens at or after `logits_from`.
            let skip = logits_from.saturating_sub(first).min(batch.len());
            if skip < batch.len() {
                let out_start = (first + skip - logits_from) * vocab;
                let out_end = out_start + (batch.len() - skip) * vocab;
                if state.exits.is_some() {
                    self.exit_heads(state, &mut lease, skip..batch.len(), out_start..out_end)?;
                } else {
                    self.output_head(state, &mut lease, skip..batch.len(), out_start..out_end)?;
                }
            }
        }
        drop(lease);
        // A NaN would otherwise be sampled as some token, silently.
        if let Some(i) = state.logits.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteLogits { position: used + logits_from + i / vocab });
        }
        if let (Some(before), Some(after)) = (streamed_before, self.stream_stats()) {
            let pass = after.since(&before);
            tracing::debug!(
                bytes_read = pass.bytes_read,
                stall_us = pass.prefetch_stall.as_micros() as u64,
                decode_us = pass.decode_time.as_micros() as u64,
                peak_resident_bytes = pass.peak_resident_bytes,
                "streamed pass"
            );
        }
        Ok(&state.logits)
    }

    /// One batch through every block; leaves the residual stream in `buf.x`.
    fn forward_batch(
        &self,
        state: &mut State,
        lease: &mut Lease<'_>,
        tokens: &[u32],
    ) -> Result<()> {
        let c = &self.config;
        let n = tokens.len();
        let (d, kv_dim, q_dim) = (c.d_model, c.kv_dim(), c.q_dim());
        let pos0 = state.cache.len();
        let State { cache, workers, buf, ffn, inputs, adapters, exits, .. } = state;
        let mut observe = |l, site, x: &[f32]| {
            if let Some(o) = inputs.as_mut() {
                o.observe(l, site, x, n);
            }
        };

        lease.embed(tokens, &mut buf.x[..n * d])?;
        if c.block.embedding_scale {
            let scale = (d as f32).sqrt();
            buf.x[..n * d].iter_mut().for_each(|v| *v *= scale);
        }
        let query_scale = 1.0 / (c.head_dim as f32).sqrt();
        let ctx_len = cache.capacity();
        let factors = self.weights.rope_factors.as_ref();
        let factors = factors.map(|f| f.for_context(ctx_len, c.rope_original_ctx));
        let heads = Heads {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            scale: if c.block.scale_queries { 1.0 } else { query_scale },
        };
        for (l, vectors) in self.weights.layers.iter().enumerate() {
            let layer = lease.layer(l)?;
            // Attention.
            norm_on(workers, &buf.x[..n * d], &vectors.attn_norm, c.rms_eps, &mut buf.xn[..n * d])?;
            observe(l, InputSite::Attention, &buf.xn[..n * d]);
            let xn = buf.xq.quantize_on(Some(workers.pool()), &buf.xn[..n * d], n);
            let (q, k, v) =
                (&mut buf.q[..n * q_dim], &mut buf.k[..n * kv_dim], &mut buf.v[..n * kv_dim]);
            layer.wq.linear(workers, xn, q, &mut buf.linear)?;
            layer.wk.linear(workers, xn, k, &mut buf.linear)?;
            layer.wv.linear(workers, xn, v, &mut buf.linear)?;
            for (m, out) in
                [(BlockMatrix::AttnQ, &mut *q), (BlockMatrix::AttnK, k), (BlockMatrix::AttnV, v)]
            {
                adapters.add(workers, l, m, xn.values(), n, out)?;
            }
            if let Some([bq, bk, bv]) = &vectors.qkv_bias {
                add_rows(q, bq);
                add_rows(k, bk);
                add_rows(v, bv);
            }
            if let Some([q_norm, k_norm]) = &vectors.qk_norm {
                rms_norm_heads(q, q_norm, c.rms_eps);
                rms_norm_heads(k, k_norm, c.rms_eps);
            }
            let local = c.is_local(l);
            let turn = Rope {
                dim: c.rope_dim,
                base: if local { c.rope_base_local } else { c.rope_base },
                scale: if local { 1.0 } else { c.rope_scale },
                style: c.block.rope,
                factors,
                magnitude: c.rope_attn_factor,
            };
            for (x, dim) in [(q, q_dim), (k, kv_dim)] {
                workers.for_each_chunk(x, dim, |t, x| {
                    rope(x, pos0 + t, c.head_dim, &turn);
                    Ok(())
                })?;
            }
            if c.block.scale_queries {
                buf.q[..n * q_dim].iter_mut().for_each(|v| *v *= query_scale);
            }
            cache.store(l, pos0, &buf.k[..n * kv_dim], &buf.v[..n * kv_dim]);
            // The normed values and their quantization are spent: attention's output takes
            // their place, and the spent queries' place takes the block's output.
            let (q, att) = (&buf.q[..n * q_dim], &mut buf.xn[..n * q_dim]);
            let kv = cache.layer(l);
            attention::attend(workers, heads, q, kv, pos0, &mut buf.attn_scratch, att)?;
            observe(l, InputSite::AttentionOutput, &buf.xn[..n * q_dim]);
            let att = buf.xq.quantize_on(Some(workers.pool()), &buf.xn[..n * q_dim], n);
            layer.wo.linear(workers, att, &mut buf.q[..n * d], &mut buf.linear)?;
            adapters.add(
                workers,
                l,
                BlockMatrix::AttnOutput,
                att.values(),
                n,
                &mut buf.q[..n * d],
            )?;
            if let Some([post_attention, _]) = &vectors.post_norms {
                rms_norm_heads(&mut buf.q[..n * d], post_attention, c.rms_eps);
            }
            add_assign(&mut buf.x[..n * d], &buf.q[..n * d]);

            // Gated FFN.
            norm_on(workers, &buf.x[..n * d], &vectors.ffn_norm, c.rms_eps, &mut buf.xn[..n * d])?;
            observe(l, InputSite::Ffn, &buf.xn[..n * d]);
            let xn = buf.xq.quantize_on(Some(workers.pool()), &buf.xn[..n * d], n);
            let w = FfnWeights {
                layer: l,
                gate: &layer.gate,
                up: &layer.up,
                down: &layer.down,
                down_columns: &self.down_columns,
                gather_up: self.gather_up,
                activation: c.block.activation,
            };
            let mut observe_hidden = |h: &[f32]| observe(l, InputSite::FfnDown, h);
            let mix = &mut buf.q[..n * d];
            let mut side = |m, x: Input<'_>, out: &mut [f32]| {
                adapters.add(workers, l, m, x.values(), x.n(), out)
            };
            ffn.forward(workers, &mut buf.linear, w, xn, &mut observe_hidden, &mut side, mix)?;
            if let Some([_, post_ffn]) = &vectors.post_norms {
                rms_norm_heads(&mut buf.q[..n * d], post_ffn, c.rms_eps);
            }
            add_assign(&mut buf.x[..n * d], &buf.q[..n * d]);
            if let Some(e) = exits.as_mut() {
                if let Some(i) = e.exits.early().iter().position(|&after| after == l + 1) {
                    e.streams[i][..n * d].copy_from_slice(&buf.x[..n * d]);
                }
            }
        }
        cache.set_len(pos0 + n);
        Ok(())
    }

    /// The logits of batch rows `rows` into `state.logits[out]`, from the state's exits
    /// combined by their rule.
    fn exit_heads(
        &self,
        state: &mut State,
        lease: &mut Lease<'_>,
        rows: std::ops::Range<usize>,
        out: std::ops::Range<usize>,
    ) -> Result<()> {
        let vocab = self.config.vocab_size;
        let Some(mut e) = state.exits.take() else { return Ok(()) };
        e.combined.resize(out.len(), 0.0);
        e.combined.fill(0.0);
        let rule = e.exits.rule();
        let n_exits = e.exits.layers().len();
        // Rows still to settle, for the first confident exit.
        e.open.clear();
        e.open.resize(rows.len(), true);
        let mut result = Ok(());
        for i in 0..n_exits {
            let early = i + 1 < n_exits;
            if early {
                std::mem::swap(&mut state.buf.x, &mut e.streams[i]);
            }
            result = self.output_head(state, lease, rows.clone(), out.clone());
            if early {
                std::mem::swap(&mut state.buf.x, &mut e.streams[i]);
            }
            if result.is_err() {
                break;
            }
            let logits = &mut state.logits[out.clone()];
            match rule {
                ExitRule::Vote => {
                    softmax_rows(logits, vocab);
                    keep_max(&mut e.combined, logits);
                }
                ExitRule::FirstConfident { threshold } => {
                    let rows = logits.chunks_exact(vocab).zip(e.combined.chunks_exact_mut(vocab));
                    for ((row, chosen), open) in rows.zip(&mut e.open) {
                        if !*open {
                            continue;
                        }
                        chosen.copy_from_slice(row);
                        softmax_rows(chosen, vocab);
                        if confidence(chosen) >= threshold || !early {
                            chosen.copy_from_slice(row);
                            *open = false;
                        }
                    }
                    if !e.open.contains(&true) {
                        break;
                    }
                }
            }
        }
        if result.is_ok() {
            if rule == ExitRule::Vote {
                votes_to_logits(&mut e.combined, vocab);
            }
            state.logits[out].copy_from_slice(&e.combined);
        }
        state.exits = Some(e);
        result
    }

    /// Final norm and output head for batch rows `rows`, into `state.logits[out]`.
    fn output_head(
        &self,
        state: &mut State,
        lease: &mut Lease<'_>,
        rows: std::ops::Range<usize>,
        out: std::ops::Range<usize>,
    ) -> Result<()> {
        let (d, vocab) = (self.config.d_model, self.config.vocab_size);
        let n = rows.len();
        let State { workers, buf, logits, .. } = state;
        rms_norm(
            &buf.x[rows.start * d..rows.end * d],
            &self.weights.output_norm,
            self.config.rms_eps,
            &mut buf.xn[..n * d],
        );
        let xn = buf.xq.quantize_on(Some(workers.pool()), &buf.xn[..n * d], n);
        let logits = &mut logits[out];
        lease.head(|w, head_rows| {
            if head_rows.len() == vocab {
                return workers.linear(w, xn, logits, &mut buf.linear.transpose);
            }
            // A run of the head's rows: its logits token by token, then each into place.
            let m = head_rows.len();
            buf.head_run.resize(n * m, 0.0);
            workers.linear(w, xn, &mut buf.head_run[..n * m], &mut buf.linear.transpose)?;
            for (t, run) in buf.head_run.chunks_exact(m).enumerate() {
                logits[t * vocab + head_rows.start..][..m].copy_from_slice(run);
            }
            Ok(())
        })?;
        if let Some(cap) = self.config.logit_softcap {
            let inv = 1.0 / cap;
            logits.iter_mut().for_each(|v| *v = (*v * inv).tanh() * cap);
        }
        Ok(())
    }
}

/// [`rms_norm`] of each token of `x` into `out`, a share of the tokens per thread.
fn norm_on(workers: &Workers, x: &[f32], gain: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let d = gain.len().max(1);
    let tokens_per_task = (x.len() / d).div_ceil(workers.threads()).max(1);
    workers.for_each_chunk(out, d * tokens_per_task, |i, out| {
        let start = i * d * tokens_per_task;
        rms_norm(&x[start..start + out.len()], gain, eps, out);
        Ok(())
    })
}
