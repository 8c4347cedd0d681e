//! [`Session`]: one conversation's KV cache over a shared [`Engine`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use lantern_runtime::{
    ExitRule, Exits, FfnThresholds, LoraAdapter, SamplerConfig, State, StateConfig,
};

use crate::generation::{Generation, Timings};
use crate::{Engine, Error, Message, Result, TemplateValue};

/// Settings of a session, fixed when it is opened.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Positions the KV cache holds. By default, the model's training context capped at 4096.
    pub ctx_len: Option<usize>,
    /// Worker threads. By default, the number of CPUs available.
    pub threads: usize,
    /// Most prompt tokens computed in one batch. By default, 512.
    pub batch_size: usize,
    /// Which FFN neurons are zeroed (activation sparsity). By default, the thresholds the
    /// model's file carries, if any.
    pub sparsity: Sparsity,
    /// LoRA adapters applied on top of the shared weights, each with its scale. By default,
    /// none.
    pub adapters: Vec<(Arc<LoraAdapter>, f32)>,
    /// Early exits whose predictions the logits combine: the blocks after which the head
    /// reads the stream (the last block's exit is always one), and the rule. By default,
    /// none: the last block alone.
    pub exits: Option<(Vec<usize>, ExitRule)>,
}

/// Which FFN neurons a session zeroes.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Sparsity {
    /// The thresholds stored with the model (a `.lantern` container's metadata), or none.
    #[default]
    FromModel,
    /// None: every neuron is computed.
    Dense,
    /// These thresholds.
    Thresholds(FfnThresholds),
}

impl Default for SessionConfig {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            ctx_len: None,
            threads,
            batch_size: 512,
            sparsity: Sparsity::FromModel,
            adapters: Vec::new(),
            exits: None,
        }
    }
}

impl SessionConfig {
    /// Sets the context length. By default, the model's capped at 4096.
    #[must_use]
    pub fn ctx_len(mut self, ctx_len: usize) -> Self {
        self.ctx_len = Some(ctx_len);
        self
    }

    /// Sets the number of worker threads. By default, the number of CPUs available.
    #[must_use]
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Sets the prompt batch size. By default, 512.
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets which FFN neurons are zeroed. By default, [`Sparsity::FromModel`].
    #[must_use]
    pub fn sparsity(mut self, sparsity: Sparsity) -> Self {
        self.sparsity = sparsity;
        self
    }

    /// Adds a LoRA adapter at `scale` (1 applies it as trained). The engine's weights stay
    /// shared: each session runs its own adapters, as a low-rank product beside each
    /// adapted matrix. By default, none.
    #[must_use]
    pub fn adapter(mut self, adapter: Arc<LoraAdapter>, scale: f32) -> Self {
        self.adapters.push((adapter, scale));
        self
    }

    /// Combines the predictions of the exits after blocks `layers` (and after the last) by
    /// `rule`. By default, the last block alone.
    #[must_use]
    pub fn exits(mut self, layers: Vec<usize>, rule: ExitRule) -> Self {
        self.exits = Some((layers, rule));
        self
    }
}

/// Settings of one generation.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GenerateConfig {
    /// Most tokens to generate. By default, 512.
    pub max_tokens: usize,
    /// How tokens are picked. By default, [`SamplerConfig::default`].
    pub sampler: SamplerConfig,
    /// Strings that end the generation when they appear in the output; they are not
    /// part of the returned text. By default, none (the model's end-of-turn tokens always
    /// stop it).
    pub stop: Vec<String>,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self { max_tokens: 512, sampler: SamplerConfig::default(), stop: Vec::new() }
    }
}

impl GenerateConfig {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self { max_tokens, sampler: SamplerConfig::greedy(), stop: Vec::new() }
    }

    /// Sets the most tokens to generate. By default, 512.
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    /// Sets the sampler. By default, [`SamplerConfig::default`].
    #[must_use]
    pub fn sampler(mut self, sampler: SamplerConfig) -> Self {
        self.sampler = sampler;
        self
    }

    /// Adds a stop string. By default, there are none.
    #[must_use]
    pub fn stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }
}

/// Stops a running generation from another thread.
#[derive(Clone, Debug, Default)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the generation to stop after the token (or prompt batch) it is computing.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

/// One conversation: a KV cache, worker threads, and the tokens the cache holds.
///
/// A session remembers what it has seen: [`Session::generate`] continues after the
/// previous text, and [`Session::chat`] reuses the longest common prefix of the rendered
/// conversation, so each turn computes only its new tokens.
#[derive(Debug)]
pub struct Session {
    pub(crate) engine: Engine,
    pub(crate) state: State,
    /// Tokens whose keys and values are in the cache, in order.
    pub(crate) fed: Vec<u32>,
    /// The whole conversation's tokens: `fed` plus generated tokens not fed yet.
    pub(crate) history: Vec<u32>,
    pub(crate) cancel: CancelHandle,
    /// Prompt tokens per forward pass; cancellation is checked between them.
    batch_size: usize,
}

impl Session {
    pub(crate) fn new(engine: Engine, config: SessionConfig) -> Result<Self> {
        let ctx_len = config.ctx_len.unwrap_or_else(|| engine.config().train_ctx_len.min(4096));
        let mut state = engine.inner().model.new_state(StateConfig {
            ctx_len,
            batch_size: config.batch_size,
            threads: config.threads,
        })?;
        let thresholds = match config.sparsity {
            Sparsity::FromModel => engine.inner().ffn_thresholds.clone(),
            Sparsity::Dense => None,
            Sparsity::Thresholds(t) => Some(t),
        };
        state.set_ffn_thresholds(thresholds)?;
        let model = &engine.inner().model;
        model.set_adapters(&mut state, config.adapters)?;
        if let Some((layers, rule)) = config.exits {
            state.set_exits(Some(Exits::new(layers, rule, model.config().n_layers)?))?;
        }
        Ok(Self {
            engine,
            state,
            fed: Vec::new(),
            history: Vec::new(),
            cancel: CancelHandle::default(),
            // As the state: a batch never holds more tokens than the context.
            batch_size: config.batch_size.min(ctx_len),
        })
    }

    /// Switches the LoRA adapters this session applies (an empty list: the base model),
    /// without reloading the engine. The conversation is forgotten, since its cache was
    /// computed with the adapters it had.
    ///
    /// # Errors
    /// [`Error::Runtime`] for an adapter made for another model or a scale that is not
    /// finite; the session keeps its adapters and conversation then.
    pub fn set_adapters(&mut self, adapters: Vec<(Arc<LoraAdapter>, f32)>) -> Result<()> {
        self.engine.inner().model.set_adapters(&mut self.state, adapters)?;
        self.reset();
        Ok(())
    }

    /// The engine this session runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The conversation's tokens so far: prompts and generated tokens, including the
    /// end-of-turn tokens the model produced.
    pub fn tokens(&self) -> &[u32] {
        &self.history
    }

    /// Positions the context holds.
    pub fn ctx_len(&self) -> usize {
        self.state.ctx_len()
    }

    /// A handle that cancels this session's generations from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Forgets the conversation; the cache is kept allocated.
    pub fn reset(&mut self) {
        self.state.truncate(0);
        self.fed.clear();
        self.history.clear();
    }

    /// Generates a continuation of `prompt`, appended to what the session has seen.
    ///
    /// Special tokens written in the prompt (such as `<|im_start|>`) are recognised; the
    /// model's BOS token is added when the context is empty and the model asks for it.
    /// The prompt is computed before this returns; tokens are computed as the returned
    /// [`Generation`] is iterated.
    ///
    /// # Errors
    /// [`Error::PromptTooLong`] when the prompt does not fit in the context (nothing is
    /// computed), tokenizer errors, and sampler settings out of range.
    pub fn generate(&mut self, prompt: &str, config: &GenerateConfig) -> Result<Generation<'_>> {
        let tokenizer = &self.engine.inner().tokenizer;
        let prompt_tokens = tokenizer.encode(prompt, self.history.is_empty())?;
        let mut all = self.history.clone();
        all.extend_from_slice(&prompt_tokens);
        self.generate_tokens(&all, config)
    }

    /// Renders `messages` with the chat template and generates the assistant's reply.
    ///
    /// The whole conversation is passed each turn; the cached prefix it shares with the
    /// previous turn is reused.
    ///
    /// # Errors
    /// [`Error::NoChatTemplate`] when the model has no template,
    /// [`Error::BrokenChatTemplate`] when its template does not compile; otherwise as
    /// [`Session::generate`].
    pub fn chat(
        &mut self,
        messages: &[Message],
        config: &GenerateConfig,
    ) -> Result<Generation<'_>> {
        self.chat_with(messages, &[], config)
    }

    /// As [`Session::chat`], with more variables for the template, as
    /// [`ChatTemplate::render_with`](crate::ChatTemplate::render_with) takes them: `tools`, or `enable_thinking = false` for
    /// a Qwen3 reply without its reasoning.
    ///
    /// # Errors
    /// As [`Session::chat`].
    pub fn chat_with(
        &mut self,
        messages: &[Message],
        extra: &[(&str, TemplateValue)],
        config: &GenerateConfig,
    ) -> Result<Generation<'_>> {
        let inner = self.engine.inner();
        let template = inner.template.as_ref().ok_or_else(|| match &inner.template_error {
            Some(reason) => Error::BrokenChatTemplate { reason: reason.clone() },
            None => Error::NoChatTemplate,
        })?;
        let text = template.render_with(messages, true, extra)?;
        let mut tokens = inner.tokenizer.encode(&text, true)?;
        // Templates often write BOS themselves; the model asks for it once.
        if let (Some(bos), [first, second, ..]) = (inner.tokenizer.bos(), tokens.as_slice()) {
            if *first == bos && *second == bos {
                tokens.remove(0);
            }
        }
        self.generate_tokens(&tokens, config)
    }

    /// Generates after exactly `tokens` (the whole context), reusing the cached prefix.
    ///
    /// # Errors
    /// As [`Session::generate`].
    pub fn generate_tokens(
        &mut self,
        tokens: &[u32],
        config: &GenerateConfig,
    ) -> Result<Generation<'_>> {
        if tokens.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if tokens.len() >= self.ctx_len() {
            return Err(Error::PromptTooLong { tokens: tokens.len(), ctx_len: self.ctx_len() });
        }
        let sampler = lantern_runtime::Sampler::new(config.sampler.clone())?;
        let start = Instant::now();
        // Keep the common prefix, but recompute at least the last prompt token: its logits
        // pick the first new token.
        let keep = common_prefix(&self.fed, tokens).min(tokens.len() - 1);
        let keep = self.state.truncate(keep);
        self.fed.truncate(keep);
        self.history = tokens.to_vec();
        self.cancel.take();
        let todo = &tokens[keep..];
        let mut prompt_logits = None;
        for (i, batch) in todo.chunks(self.batch_size).enumerate() {
            let last = (i + 1) * self.batch_size >= todo.len();
            let logits_from = if last { batch.len() - 1 } else { batch.len() };
            let logits = self.engine.inner().model.forward(&mut self.state, batch, logits_from)?;
            if last {
                prompt_logits = Some(logits.to_vec());
            }
            self.fed.extend_from_slice(batch);
            if self.cancel.take() {
                prompt_logits = None;
                break;
            }
        }
        let timings = Timings {
            prompt_tokens: todo.len(),
            prompt_time: start.elapsed(),
            ..Timings::default()
        };
        Ok(Generation::new(self, sampler, config, prompt_logits, timings))
    }
}

impl Session {
    /// The share of FFN neurons the session's thresholds zeroed so far.
    pub fn ffn_zeroed_share(&self) -> Option<f64> {
        self.state.ffn_zeroed_share()
    }

    /// Appends `tokens` to the context and returns the logits of `tokens[logits_from..]`,
    /// one row of the vocabulary size per token: the low-level step under generation,
    /// for perplexity, scoring and benchmarks.
    ///
    /// # Errors
    /// [`Error::Runtime`] when the tokens do not fit in the context or an id is outside the
    /// vocabulary; nothing is computed then.
    pub fn eval(&mut self, tokens: &[u32], logits_from: usize) -> Result<&[f32]> {
        // Generated tokens not fed yet would otherwise sit between the context and these.
        self.history.truncate(self.fed.len());
        let logits = self.engine.inner().model.forward(&mut self.state, tokens, logits_from)?;
        self.fed.extend_from_slice(tokens);
        self.history.extend_from_slice(tokens);
        Ok(logits)
    }
}

/// Length of the longest common prefix.
fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
