//! [`ChatTemplate`] and [`Message`]: a conversation to the prompt text a chat model was
//! trained on, through the Jinja template the model ships.

mod generation_tag;
mod strftime;
mod tojson;

use std::collections::BTreeMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::SystemTime;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{context, Environment, ErrorKind, State, Value};

use crate::{Error, Result, Tokenizer};

use strftime::DateTime;

/// A value a template variable can hold: a string, number, boolean, none, list or map, as
/// JSON has them. Build one with `TemplateValue::from` (`"text"`, `true`, `3`, a `Vec`), or
/// read JSON into one with `serde_json::from_str::<TemplateValue>(text)`, which keeps the
/// keys of each object in their order (Python's, so `tojson` writes them as transformers
/// does).
pub type TemplateValue = Value;

/// The name the template is stored under; it appears in error messages.
const NAME: &str = "chat_template";

/// Template instructions a render may run: the model file's template may loop for ever.
/// The most demanding real template measured (Gemma 4's, quadratic in the messages) needs
/// 4.4 M for 1,000 messages and 69 M for 4,000; this bounds a render to a few seconds.
const RENDER_FUEL: u64 = 100_000_000;

/// Bytes a rendered prompt may have: far more than any context holds (16 MiB is millions of
/// tokens), and far less than a hostile template could build.
const RENDER_BYTES: usize = 16 << 20;

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// Who speaks: `"system"`, `"user"` or `"assistant"` for most templates.
    pub role: String,
    /// What they say.
    pub content: String,
}

impl Message {
    /// A message with any role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template. Compile once, render per prompt.
///
/// Turns a conversation ([`Message`]s) into the prompt text a chat model was trained on, by
/// running the Jinja template the model ships (`tokenizer.chat_template`). Templates see what
/// HuggingFace's `apply_chat_template` passes them: `messages` (a list of `{role, content}`
/// maps), `add_generation_prompt`, `bos_token`, `eos_token`, and `tools` and `documents`
/// (none unless given to [`ChatTemplate::render_with`], which also passes any other variable
/// a template reads, such as Qwen3's `enable_thinking`). They are rendered as `transformers`
/// does, with `trim_blocks` and `lstrip_blocks` on, `{% break %}` and `{% continue %}`,
/// Python string methods (`.strip()`, `.startswith()`, …), a `tojson` filter that writes
/// Python's `json.dumps` text, a `raise_exception(msg)` function, and `strftime_now(format)`,
/// which writes the date (see [`ChatTemplate::with_time`]).
///
/// The real templates of Qwen 2.5, Qwen 3 and 3.5, Llama 3.1–3.3, Phi-3.5, Gemma 2 and 4,
/// SmolLM2 and 3, Mistral Nemo and DeepSeek R1 render to the same text as transformers'
/// (docs/CHAT_TEMPLATES.md).
///
/// # Example
///
/// ```
/// use lantern::{ChatTemplate, Message};
/// let template = ChatTemplate::new(
///     "{% for m in messages %}<|{{ m.role }}|>{{ m.content.strip() }}\n{% endfor %}\
///      {% if add_generation_prompt %}<|assistant|>{% endif %}",
/// )?;
/// let prompt = template.render(&[Message::user("  Hi ")], true)?;
/// assert_eq!(prompt, "<|user|>Hi\n<|assistant|>");
/// # Ok::<(), lantern::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The moment `strftime_now` formats; `None` reads the clock at each render.
    time: Option<SystemTime>,
}

impl ChatTemplate {
    /// Compiles a Jinja chat template.
    ///
    /// By default, `bos_token` and `eos_token` render as empty strings; set them with
    /// [`ChatTemplate::with_bos_token`] / [`ChatTemplate::with_eos_token`], or use
    /// [`ChatTemplate::from_tokenizer`].
    ///
    /// # Errors
    /// [`Error::TemplateSyntax`] with the template engine's message and line.
    pub fn new(source: &str) -> Result<Self> {
        let mut env = Environment::new();
        // transformers renders with these two on; without them, templates written as one
        // block per line leave stray newlines and indentation in the prompt.
        let syntax = SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.map_err(|source| Error::TemplateSyntax { source })?);
        // A template comes from the model file, which may loop for ever.
        env.set_fuel(Some(RENDER_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        // Python's tests, which differ from minijinja's on none (not iterable) and strings,
        // maps and undefined (sequences): `tools is iterable and tools | length > 0` must be
        // false, not an error, when there are no tools.
        env.add_test("iterable", |v: &Value| match v.kind() {
            ValueKind::None | ValueKind::Bool | ValueKind::Number | ValueKind::Plain => false,
            ValueKind::Undefined => true,
            _ => v.try_iter().is_ok(),
        });
        env.add_test("sequence", |v: &Value| {
            matches!(
                v.kind(),
                ValueKind::String
                    | ValueKind::Bytes
                    | ValueKind::Seq
                    | ValueKind::Map
                    | ValueKind::Undefined
            )
        });
        env.add_filter(
            "tojson",
            |state: &State<'_, '_>, value: &Value, args: &[Value], kwargs: Kwargs| {
                let json = tojson::tojson(value, args, &kwargs, RENDER_BYTES)?;
                // About what the engine's own `tojson` charges per byte written, so a
                // template cannot loop over large dumps for free.
                let bytes = json.as_str().map_or(0, str::len);
                state.consume_fuel(u64::try_from(bytes / 4).unwrap_or(u64::MAX))?;
                Ok::<_, minijinja::Error>(json)
            },
        );
        env.add_template_owned(NAME, generation_tag::rewrite(source).into_owned())
            .map_err(|source| Error::TemplateSyntax { source })?;
        Ok(Self { env, bos_token: String::new(), eos_token: String::new(), time: None })
    }

    /// The template stored in the tokenizer's model, with its BOS/EOS token strings; `None`
    /// if the model has no template.
    ///
    /// # Errors
    /// As [`ChatTemplate::new`].
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Option<Self>> {
        let Some(source) = tokenizer.chat_template() else { return Ok(None) };
        Ok(Some(Self::new(source)?.with_tokens_of(tokenizer)))
    }

    /// Sets `bos_token` and `eos_token` to the tokenizer's BOS and EOS token strings.
    #[must_use]
    pub fn with_tokens_of(self, tokenizer: &Tokenizer) -> Self {
        let token =
            |id: Option<u32>| id.and_then(|id| tokenizer.id_to_token(id)).unwrap_or_default();
        self.with_bos_token(token(tokenizer.bos())).with_eos_token(token(tokenizer.eos()))
    }

    /// Sets the text of `bos_token` in the template.
    ///
    /// By default, it is empty.
    #[must_use]
    pub fn with_bos_token(mut self, token: impl Into<String>) -> Self {
        self.bos_token = token.into();
        self
    }

    /// Sets the text of `eos_token` in the template.
    ///
    /// By default, it is empty.
    #[must_use]
    pub fn with_eos_token(mut self, token: impl Into<String>) -> Self {
        self.eos_token = token.into();
        self
    }

    /// Pins the moment `strftime_now(format)` formats, as a UTC date and time; templates such
    /// as Llama 3.x's write it into the system prompt ("Today Date: 26 Jul 2024"). Pin it for
    /// prompts that must not change from one day to the next (tests, prompt caches); for the
    /// local date, pass the time shifted by the local offset.
    ///
    /// By default, each render reads the system clock, as transformers does: a model told a
    /// stale date answers questions about today wrongly.
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use lantern::{ChatTemplate, Message};
    /// let template = ChatTemplate::new("{{ strftime_now('%d %b %Y') }}")?
    ///     .with_time(UNIX_EPOCH + Duration::from_secs(1_721_952_000));
    /// assert_eq!(template.render(&[Message::user("Hi")], true)?, "26 Jul 2024");
    /// # Ok::<(), lantern::Error>(())
    /// ```
    #[must_use]
    pub fn with_time(mut self, time: SystemTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Renders the conversation to prompt text. With `add_generation_prompt`, the template
    /// appends the header of the assistant's reply (`<|im_start|>assistant\n`), so the model
    /// answers rather than continuing the last message.
    ///
    /// The result may already start with the BOS token: encode it with
    /// `add_special = false` (see [`Tokenizer::encode`]).
    ///
    /// # Errors
    /// [`Error::TemplateRender`] if the template fails, including when it calls
    /// `raise_exception` (for example, on roles it does not accept).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &[])
    }

    /// Renders as [`ChatTemplate::render`], with more variables for the template: `tools` (a
    /// list of function definitions, as transformers takes them), `documents`, and whatever
    /// else a family's template reads, such as `enable_thinking` (Qwen3, SmolLM3, Gemma 4).
    /// A variable given here replaces the one the template would otherwise see (`tools` and
    /// `documents` are none by default, `bos_token`, `eos_token`, `strftime_now`); a variable
    /// the template reads and nobody gives is undefined, as in transformers.
    ///
    /// ```
    /// use lantern::{ChatTemplate, Message, TemplateValue};
    /// let template = ChatTemplate::new(
    ///     "{% if enable_thinking is defined and not enable_thinking %}/no_think {% endif %}\
    ///      {% for t in tools %}{{ t | tojson }}{% endfor %}",
    /// )?;
    /// let tools: TemplateValue = TemplateValue::from(vec![TemplateValue::from("get_weather")]);
    /// let extra = [("enable_thinking", TemplateValue::from(false)), ("tools", tools)];
    /// let prompt = template.render_with(&[Message::user("Hi")], true, &extra)?;
    /// assert_eq!(prompt, "/no_think \"get_weather\"");
    /// # Ok::<(), lantern::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ChatTemplate::render`], and [`Error::TemplateRender`] for an extra variable named
    /// `messages` or `add_generation_prompt`, which the arguments already give.
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &[(&str, TemplateValue)],
    ) -> Result<String> {
        if let Some((name, _)) =
            extra.iter().find(|(name, _)| matches!(*name, "messages" | "add_generation_prompt"))
        {
            return Err(Error::TemplateRender {
                source: minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("the extra variable `{name}` would replace an argument of the render"),
                ),
            });
        }
        let messages: Vec<_> = messages
            .iter()
            .map(|m| context! { role => m.role.as_str(), content => m.content.as_str() })
            .collect();
        let now = DateTime::from_system_time(self.time.unwrap_or_else(SystemTime::now));
        let strftime_now = Value::from_function(move |format: &str| now.format(format));
        let mut vars: BTreeMap<String, Value> = BTreeMap::from([
            ("messages".to_owned(), Value::from(messages)),
            ("add_generation_prompt".to_owned(), Value::from(add_generation_prompt)),
            ("bos_token".to_owned(), Value::from(self.bos_token.as_str())),
            ("eos_token".to_owned(), Value::from(self.eos_token.as_str())),
            ("tools".to_owned(), Value::from(())),
            ("documents".to_owned(), Value::from(())),
            ("strftime_now".to_owned(), strftime_now),
        ]);
        // A variable the host gives replaces the default of the same name.
        vars.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), value.clone())));
        let ctx = Value::from(vars);
        let mut out = Capped { bytes: Vec::new(), limit: RENDER_BYTES };
        let render = || self.env.get_template(NAME)?.render_captured_to(ctx, &mut out).map(drop);
        // The template engine must not take the host down with it on a hostile template.
        let rendered = catch_unwind(AssertUnwindSafe(render)).unwrap_or_else(|panic| {
            let text = panic.downcast_ref::<String>().map(String::as_str);
            let what = text.or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("a panic");
            Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                format!("the template engine failed: {what}"),
            ))
        });
        rendered.map_err(|source| Error::TemplateRender { source })?;
        // Every piece written was a str.
        String::from_utf8(out.bytes).map_err(|e| Error::TemplateRender {
            source: minijinja::Error::new(ErrorKind::InvalidOperation, e.to_string()),
        })
    }
}

/// The rendered text, refused past `limit` bytes.
struct Capped {
    bytes: Vec<u8>,
    limit: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            let limit = self.limit;
            return Err(io::Error::other(format!("the prompt would exceed {limit} bytes")));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `raise_exception(message)`, which HuggingFace templates call to reject a conversation.
fn raise_exception(message: String) -> std::result::Result<String, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}
