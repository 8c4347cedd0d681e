//! [`Generation`]: the tokens of one reply, computed as they are iterated.

use std::time::{Duration, Instant};

use lantern_runtime::Sampler;

use crate::stream_decoder::StreamDecoder;
use crate::{GenerateConfig, Result, Session};

/// One generated token and the text it completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token id; `None` for the last piece of a generation when it only releases text
    /// held back until the end (a possible stop-string prefix or an incomplete character).
    pub id: Option<u32>,
    /// Text released with this token: never a split UTF-8 character, and without text
    /// that might begin a stop string (held back until it is known not to).
    pub text: String,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-turn token.
    EndOfTurn,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// A [`CancelHandle`](crate::CancelHandle) asked it to stop.
    Cancelled,
    /// An error was returned; the session keeps the tokens computed before it.
    Error,
}

/// Prompt and generation speed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Prompt tokens computed (the cached prefix is not counted).
    pub prompt_tokens: usize,
    /// Time to compute them and produce the first logits.
    pub prompt_time: Duration,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Time spent generating after the prompt.
    pub generate_time: Duration,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        self.prompt_tokens as f64 / self.prompt_time.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Generated tokens per second.
    pub fn generate_tokens_per_second(&self) -> f64 {
        self.generated_tokens as f64 / self.generate_time.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// The reply to a prompt, as an iterator of [`Token`]s.
///
/// Each call to `next` computes one token. End-of-turn tokens are not yielded; text held back
/// at the end comes in a last item without an id.
#[derive(Debug)]
pub struct Generation<'s> {
    session: &'s mut Session,
    sampler: Sampler,
    decoder: StreamDecoder,
    stop: Vec<String>,
    max_tokens: usize,
    /// Logits of the prompt's last token, until the first token is sampled from them.
    prompt_logits: Vec<f32>,
    /// The last sampled token, fed before sampling the next one.
    pending: Option<u32>,
    /// Decoded text not yet released.
    held: String,
    stop_reason: Option<StopReason>,
    timings: Timings,
    started: Instant,
}

impl<'s> Generation<'s> {
    /// A generation whose prompt has been computed: `prompt_logits` are its last token's.
    /// Without them (the prompt was cancelled) the generation is over before it starts.
    pub(crate) fn new(
        session: &'s mut Session,
        sampler: Sampler,
        config: &GenerateConfig,
        prompt_logits: Option<Vec<f32>>,
        timings: Timings,
    ) -> Self {
        let stop_reason = prompt_logits.is_none().then_some(StopReason::Cancelled);
        Self {
            session,
            sampler,
            decoder: StreamDecoder::new(true),
            stop: config.stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            max_tokens: config.max_tokens,
            prompt_logits: prompt_logits.unwrap_or_default(),
            pending: None,
            held: String::new(),
            stop_reason,
            timings,
            started: Instant::now(),
        }
    }

    /// Why the generation ended; `None` while it is running.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop_reason
    }

    /// Prompt and generation speed so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Runs the generation to its end, calling `on_text` with each piece of text.
    ///
    /// # Errors
    /// The first error of the forward pass or the detokenizer.
    pub fn for_each_text(mut self, mut on_text: impl FnMut(&str)) -> Result<Completion> {
        let mut text = String::new();
        let mut tokens = Vec::new();
        for token in self.by_ref() {
            let token = token?;
            on_text(&token.text);
            text.push_str(&token.text);
            tokens.extend(token.id);
        }
        Ok(Completion {
            text,
            tokens,
            stop_reason: self.stop_reason.unwrap_or(StopReason::MaxTokens),
            timings: self.timings,
        })
    }

    /// Runs the generation to its end and returns the whole reply.
    ///
    /// # Errors
    /// As [`Generation::for_each_text`].
    pub fn complete(self) -> Result<Completion> {
        self.for_each_text(|_| {})
    }

    /// Ends the generation and returns the text still held back (none after a stop string).
    fn finish(&mut self, reason: StopReason) -> String {
        self.stop_reason = Some(reason);
        if let Ok(Some(rest)) = self.decoder.flush(&self.session.engine.inner().tokenizer) {
            self.held.push_str(&rest);
        }
        if reason == StopReason::StopString {
            self.held.clear();
        }
        std::mem::take(&mut self.held)
    }

    /// Ends the generation, releasing held-back text as a last item without an id.
    fn finish_with_text(&mut self, reason: StopReason) -> Option<Token> {
        let text = self.finish(reason);
        (!text.is_empty()).then_some(Token { id: None, text })
    }

    fn step(&mut self) -> Result<Option<Token>> {
        if self.timings.generated_tokens >= self.max_tokens {
            return Ok(self.finish_with_text(StopReason::MaxTokens));
        }
        if self.session.cancel.take() {
            return Ok(self.finish_with_text(StopReason::Cancelled));
        }
        let engine = self.session.engine.clone();
        let inner = engine.inner();
        let session = &mut *self.session;
        let logits = match self.pending {
            Some(token) => {
                let logits = inner.model.forward(&mut session.state, &[token], 0)?;
                session.fed.push(token);
                logits
            }
            None => &self.prompt_logits,
        };
        let id = self.sampler.sample(logits, &session.history);
        session.history.push(id);
        self.pending = Some(id);
        if inner.tokenizer.is_stop_token(id) {
            return Ok(self.finish_with_text(StopReason::EndOfTurn));
        }
        self.timings.generated_tokens += 1;
        self.timings.generate_time = self.started.elapsed();
        if let Some(piece) = self.decoder.step(&inner.tokenizer, id)? {
            self.held.push_str(&piece);
        }
        if let Some(at) = self.stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.held.truncate(at);
            let text = std::mem::take(&mut self.held);
            self.finish(StopReason::StopString);
            return Ok(Some(Token { id: Some(id), text }));
        }
        // The sampled token needs a position before another can be sampled.
        let text = if self.session.fed.len() >= self.session.ctx_len() {
            self.finish(StopReason::ContextFull)
        } else if self.timings.generated_tokens >= self.max_tokens {
            self.finish(StopReason::MaxTokens)
        } else {
            let released = self.held.len() - held_back(&self.held, &self.stop);
            let rest = self.held.split_off(released);
            std::mem::replace(&mut self.held, rest)
        };
        Ok(Some(Token { id: Some(id), text }))
    }
}

/// Bytes at the end of `text` that could be the start of a stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|stop| {
            (1..stop.len().min(text.len() + 1))
                .rev()
                .find(|&n| stop.is_char_boundary(n) && text.ends_with(&stop[..n]))
        })
        .max()
        .unwrap_or(0)
}

impl Iterator for Generation<'_> {
    type Item = Result<Token>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stop_reason.is_some() {
            return None;
        }
        match self.step() {
            Ok(token) => token.map(Ok),
            Err(e) => {
                self.stop_reason = Some(StopReason::Error);
                Some(Err(e))
            }
        }
    }
}

/// A finished reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The text, without stop strings or end-of-turn tokens.
    pub text: String,
    /// The token ids.
    pub tokens: Vec<u32>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Speed.
    pub timings: Timings,
}

#[cfg(test)]
mod tests {
    use super::held_back;

    #[test]
    fn holds_back_only_possible_stop_prefixes() {
        let stops = ["\nUser:".to_owned()];
        assert_eq!(held_back("Hello\nUs", &stops), 3);
        assert_eq!(held_back("Hello", &stops), 0);
        assert_eq!(held_back("Hello\n", &stops), 1);
    }
}
